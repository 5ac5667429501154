//! Brokers as child processes in a temp dir of their own, killed on drop. Shared by the
//! engine tests (tests/brokers) and the forwarding tests (tests/integration/forward.rs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::process::{find_program, line_with, lines};
use super::tcp::free_port;

/// How long a broker may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The path of `binary`, or a panic naming the Debian package that provides it. Debian
/// puts both brokers in /usr/sbin, which is not on every user's PATH.
pub fn find_binary(binary: &str, package: &str) -> PathBuf {
    let also = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .map(|d| format!("{d}/{binary}"));
    find_program(binary, &also.each_ref().map(String::as_str)).unwrap_or_else(|| {
        panic!(
            "`{binary}` not found on PATH or in /usr/sbin: these tests need the Debian \
             package `{package}` (apt-get install -y {package})"
        )
    })
}

/// A running broker. Its log lines arrive on a channel (a thread drains the pipe, so the
/// broker never blocks on a full one); `log` keeps what was seen, for failure messages.
pub struct Broker {
    child: Child,
    lines: Receiver<String>,
    pub log: Vec<String>,
    pub port: u16,
}

impl Broker {
    fn spawn(mut cmd: Command) -> Broker {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let lines = lines(child.stderr.take().unwrap());
        Broker {
            child,
            lines,
            log: Vec::new(),
            port: 0,
        }
    }

    /// Waits for a log line containing `needle` (after those already seen); `None` if the
    /// broker exits first.
    pub fn wait_log(&mut self, needle: &str) -> Option<String> {
        let log = &mut self.log;
        let found = line_with(&self.lines, needle, START_TIMEOUT, |l| log.push(l.into()));
        match found {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!(
                "no {needle:?} in {START_TIMEOUT:?}; log so far:\n{}",
                self.log.join("\n")
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the broker (SIGKILL: nothing is flushed or said goodbye to).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nats-server with JetStream, storing in `store`, on `port` (0: a free port, which the
/// server picks itself, so there is no race for it), with optional user and password.
pub fn nats_server(store: &Path, port: u16, auth: Option<(&str, &str)>) -> Broker {
    nats_server_with(store, port, auth, &[])
}

/// One node of a JetStream cluster `c` listening for routes on `cluster_port`, routed
/// to the `routes` ports (the other nodes').
pub fn nats_node(store: &Path, name: &str, port: u16, cluster_port: u16, routes: &[u16]) -> Broker {
    let routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let cluster = format!("nats://127.0.0.1:{cluster_port}");
    nats_server_with(
        store,
        port,
        None,
        &[
            "--server_name",
            name,
            "--cluster_name",
            "c",
            "--cluster",
            &cluster,
            "--routes",
            &routes,
        ],
    )
}

/// nats-server as [`nats_server`], with more arguments.
pub fn nats_server_with(
    store: &Path,
    port: u16,
    auth: Option<(&str, &str)>,
    extra: &[&str],
) -> Broker {
    let mut cmd = Command::new(find_binary("nats-server", "nats-server"));
    let port_arg = if port == 0 {
        "-1".to_owned()
    } else {
        port.to_string()
    };
    cmd.args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
        .arg(store);
    if let Some((user, pass)) = auth {
        cmd.args(["--user", user, "--pass", pass]);
    }
    cmd.args(extra);
    let mut b = Broker::spawn(cmd);
    let line = b
        .wait_log("Listening for client connections on")
        .unwrap_or_else(|| panic!("nats-server exited:\n{}", b.log.join("\n")));
    b.port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    b.wait_log("Server is ready")
        .unwrap_or_else(|| panic!("nats-server exited:\n{}", b.log.join("\n")));
    b
}

/// mosquitto on a free loopback port. mosquitto cannot pick a port itself, so a port
/// that is free a moment before is used, and another one tried if it was taken meanwhile.
/// `users`: `(name, password)` pairs; none means anonymous access.
pub fn mosquitto(dir: &Path, users: &[(&str, &str)]) -> Broker {
    let mut auth = "allow_anonymous true\n".to_owned();
    if !users.is_empty() {
        let passwd = dir.join("passwd");
        for (i, (user, pass)) in users.iter().enumerate() {
            let mut cmd = Command::new(find_binary("mosquitto_passwd", "mosquitto"));
            if i == 0 {
                cmd.arg("-c");
            }
            let status = cmd
                .arg("-b")
                .arg(&passwd)
                .args([user, pass])
                .status()
                .unwrap();
            assert!(status.success(), "mosquitto_passwd failed");
        }
        auth = format!(
            "allow_anonymous false\npassword_file {}\n",
            passwd.display()
        );
    }
    for _ in 0..5 {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            // No cap on messages queued for a slow subscriber (the default drops after
            // 1000), so a test that publishes faster than it reads loses nothing. The
            // default log types, and subscriptions (`<client id> <qos> <topic>`), so a
            // test can wait until its subscriber is in.
            format!(
                "listener {port} 127.0.0.1\n{auth}persistence false\nlog_dest stderr\n\
                 log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
                 log_type subscribe\nmax_queued_messages 0\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(find_binary("mosquitto", "mosquitto"));
        cmd.arg("-c").arg(&conf);
        let mut b = Broker::spawn(cmd);
        if b.wait_log(" running").is_some() {
            b.port = port;
            return b;
        }
        assert!(
            b.log.iter().any(|l| l.contains("Address already in use")),
            "mosquitto exited:\n{}",
            b.log.join("\n")
        );
    }
    panic!("mosquitto found no free port in 5 tries");
}
