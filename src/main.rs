//! Command-line entry: parse arguments, load the config, run the reactor; every error
//! becomes an exit code (0 ok, 1 config or startup error, 2 bad command line).

use std::process::ExitCode;

use logwisp::config::{self, Config, Overrides};
use logwisp::{cli, reactor, version};

/// A server's protections, for the summary: ` tls`, ` auth bearer`, ` ip lists`.
fn guards(
    tls: Option<&config::TlsConfig>,
    auth: Option<&config::AuthConfig>,
    acl: &logwisp::acl::Acl,
) -> String {
    let mut out = String::new();
    match tls {
        Some(t) if t.client_ca_file.is_some() => out.push_str(" tls (client certificates)"),
        Some(_) => out.push_str(" tls"),
        None => {}
    }
    if let Some(a) = auth {
        out.push_str(&format!(" auth {}", a.kind.as_str()));
    }
    if !acl.is_open() {
        out.push_str(" ip lists");
    }
    out
}

fn describe(cfg: &Config) -> String {
    let mut out = String::new();
    for s in &cfg.streams {
        out.push_str(&format!(
            "stream `{}` (check every {} ms)\n",
            s.name, s.check_interval_ms
        ));
        for t in &s.targets {
            match &t.matcher {
                config::NameMatcher::Exact(_) => {
                    out.push_str(&format!("  file      {}\n", t.path.display()))
                }
                config::NameMatcher::Glob(g) => {
                    out.push_str(&format!("  directory {} pattern {g}\n", t.path.display()))
                }
            }
        }
        for j in &s.journals {
            out.push_str(&format!("  {}\n", j.describe()));
        }
        let prefix = if cfg.router {
            format!("/{}", s.name)
        } else {
            String::new()
        };
        if let Some(h) = &s.http {
            out.push_str(&format!(
                "  http      {}:{} stream {prefix}{} status {prefix}{} metrics {prefix}{} buffer {}{}\n",
                h.address,
                h.port,
                h.stream_path,
                h.status_path,
                h.metrics_path,
                h.buffer_size,
                guards(h.tls.as_ref(), h.auth.as_ref(), &h.acl)
            ));
        }
        if let Some(t) = &s.tcp {
            out.push_str(&format!(
                "  tcp       {}:{} buffer {}{}\n",
                t.address,
                t.port,
                t.buffer_size,
                guards(t.tls.as_ref(), None, &t.acl)
            ));
        }
        for f in &s.forward {
            out.push_str(&format!("  {}\n", f.describe(&s.name)));
        }
    }
    let log = &cfg.logging;
    let output = match &log.output {
        config::LogOutput::Stderr => "stderr".to_string(),
        config::LogOutput::Stdout => "stdout".to_string(),
        config::LogOutput::File(p) => format!("file {}", p.display()),
    };
    let summary = match log.stats_interval_secs {
        0 => "off".to_string(),
        n => format!("every {n} s"),
    };
    out.push_str(&format!(
        "logging: level {}, format {}, to {output}, console summary {summary}\n",
        log.level.as_str(),
        log.format.as_str()
    ));
    let reload = if cfg.config_auto_reload { "on" } else { "off" };
    out.push_str(&format!("config auto-reload: {reload}\n"));
    out
}

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("logwisp: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{}", cli::HELP);
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("{}", version::line());
        return ExitCode::SUCCESS;
    }
    let source = config::locate(args.config.as_deref());
    let overrides = Overrides {
        router: args.router,
        router_port: args.router_port,
    };
    let cfg = match config::load(&source, overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logwisp: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check {
        print!("config OK: {source}\n{}", describe(&cfg));
        match cfg.state_dir.clone().or_else(logwisp::state::default_dir) {
            Some(dir) => println!("state kept in {}", dir.display()),
            None => println!("state: no directory (positions are not kept across restarts)"),
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = logwisp::log::configure(&cfg.logging) {
        eprintln!("logwisp: {e}");
        return ExitCode::from(1);
    }
    reactor::raise_fd_limit();
    let mut service = match reactor::Reactor::new(cfg, &source, overrides) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("logwisp: {e}");
            return ExitCode::from(1);
        }
    };
    match service.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logwisp: event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}
