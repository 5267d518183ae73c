//! The real `clickstream` binary as a child process, with its bound addresses read from its
//! JSON start-up log line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// Every log line so far.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `clickstream serve --config <config>` in `dir` with extra environment variables,
    /// and returns once it serves.
    pub fn start(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Process {
        Self::spawn(&[], dir, config, env, true)
    }

    /// Like [`Process::start`], with the binary started by `wrapper`, a command that runs the
    /// rest of its line in its own place (`prlimit --nofile=256:256 --`): the child's id is
    /// then the server's.
    pub fn start_under(wrapper: &[&str], dir: &Path, config: &Path) -> Process {
        Self::spawn(wrapper, dir, config, &[], true)
    }

    /// Like [`Process::start`], but returns as soon as the admin listener is up (`addr` is then
    /// the admin address too).
    pub fn start_admin_only(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Process {
        Self::spawn(&[], dir, config, env, false)
    }

    fn spawn(wrapper: &[&str], dir: &Path, config: &Path, env: &[(&str, &str)], wait_for_serving: bool) -> Process {
        let binary = env!("CARGO_BIN_EXE_clickstream");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = logs.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let admin = v["fields"]["admin"].as_str().map(|a| a.parse::<SocketAddr>().unwrap());
                    let listen = v["fields"]["listen"].as_str().map(|l| l.parse::<SocketAddr>().unwrap());
                    match (listen, admin) {
                        (Some(l), Some(a)) => {
                            let _ = tx.send((l, a));
                            sent = true;
                        }
                        (None, Some(a)) if !wait_for_serving => {
                            let _ = tx.send((a, a));
                            sent = true;
                        }
                        _ => {}
                    }
                }
                if std::env::var_os("CLICKSTREAM_TEST_LOGS").is_some() {
                    eprintln!("[child] {line}");
                }
                keep.lock().unwrap().push(line);
            }
        });
        let (addr, admin) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the binary logs its addresses at start-up");
        Process {
            child,
            addr,
            admin,
            logs,
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory, in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    /// Waits until the sample `name` of `/metrics` is at least `value`; fails with the value it
    /// had after `limit`.
    pub async fn wait_for_metric(&self, name: &str, value: u64, limit: Duration) {
        let url = format!("http://{}/metrics", self.admin);
        super::wait_for_sample(&url, name, |now| now >= value, limit).await;
    }

    pub async fn metrics(&self) -> String {
        super::client()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
