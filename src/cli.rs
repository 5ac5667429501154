//! Command-line arguments, as given (validation of the config happens in `config`).

use std::ffi::OsString;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: logwisp [--config PATH] [--router] [--router-port N] [--check] [--version] [--help]";

pub const HELP: &str = "\
logwisp: tail log files and directories, stream every new line as JSON over TCP and SSE

usage: logwisp [--config PATH] [--router] [--router-port N] [--check] [--version] [--help]

options:
  --config PATH     config file (else $LOGWISP_CONFIG, else ~/.config/logwisp.toml,
                    else the built-in default: ./*.log on http://localhost:8080/stream)
  --router          serve HTTP streams that share a port from one listener,
                    at /{stream}{stream_path} and /{stream}{status_path}, plus /status
  --router-port N   router mode with every HTTP stream on port N (0: one free port)
  --check           load and validate the config, print its streams, exit
  --version         print version, commit and build time
  --help            print this help

exit codes: 0 ok, 1 config or startup error, 2 bad command line";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub router: bool,
    pub router_port: Option<u16>,
    pub check: bool,
    pub version: bool,
    pub help: bool,
}

/// What went wrong on the command line; printed with the usage line, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

pub fn parse<I>(args: I) -> Result<Args, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut out = Args::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => {
                let value = parser.value()?;
                if value.is_empty() {
                    return Err(UsageError("--config needs a non-empty path".into()));
                }
                out.config = Some(PathBuf::from(value));
            }
            Long("router") => out.router = true,
            Long("router-port") => {
                let raw = parser.value()?;
                let text = raw.to_string_lossy().into_owned();
                // 0 is allowed, as `port = 0` is: one free port for every HTTP stream.
                let port: u16 = text.parse().map_err(|_| {
                    UsageError(format!(
                        "--router-port: `{text}` is not a port (1-65535, or 0 for any free port)"
                    ))
                })?;
                out.router_port = Some(port);
                out.router = true;
            }
            Long("check") => out.check = true,
            Long("version") | Short('V') => out.version = true,
            Long("help") | Short('h') => out.help = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, UsageError> {
        parse(args.iter().copied())
    }

    #[test]
    fn parses_every_flag() {
        let a = p(&["--config", "x.toml", "--router-port", "8081", "--check"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
        assert_eq!(a.router_port, Some(8081));
        assert!(a.router && a.check && !a.version);
        assert_eq!(
            p(&["--config=y.toml"]).unwrap().config,
            Some("y.toml".into())
        );
        assert!(p(&["--version"]).unwrap().version);
        assert!(p(&["--help"]).unwrap().help);
        let any = p(&["--router-port", "0"]).unwrap();
        assert_eq!((any.router_port, any.router), (Some(0), true));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--config"]).is_err());
        assert!(p(&["--router-port", "70000"]).is_err());
        assert!(p(&["--router-port", "-1"]).is_err());
        assert!(p(&["stray"]).is_err());
    }
}
