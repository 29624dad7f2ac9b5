//! A real dnsmasq per test, on a free loopback port, serving generated
//! files: A records from a hosts file (changed by rewriting it and sending
//! SIGHUP), SRV and TXT records from a conf file (dnsmasq reads those only
//! at start, so changing them restarts it on the same port). Killed on
//! drop.
//!
//! Without dnsmasq the tests skip with one line, unless
//! `CI_REQUIRE_DNSMASQ=1`, when they fail.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The dnsmasq binary, or `None` (the test then skips, or fails under
/// `CI_REQUIRE_DNSMASQ=1`).
pub fn binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI_REQUIRE_DNSMASQ").as_deref() != Ok("1"),
            "CI_REQUIRE_DNSMASQ=1 but dnsmasq is not installed (scripts/install-deps installs dnsmasq-base)"
        );
        eprintln!("skipped: dnsmasq is not installed (Debian package dnsmasq-base)");
    }
    found
}

pub struct Dnsmasq {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// SRV, TXT and forward lines of the conf file.
    conf: Vec<String>,
}

impl Dnsmasq {
    /// Starts dnsmasq with an empty hosts file; `None` when it is not
    /// installed (see [`binary`]).
    pub fn start() -> Option<Self> {
        let bin = binary()?;
        let dir = tempfile::tempdir().unwrap();
        // dnsmasq may drop privileges: let it read the files.
        set_mode(dir.path(), 0o755);
        let mut d = Self {
            bin,
            dir,
            port: 0,
            child: None,
            conf: Vec::new(),
        };
        d.write_hosts(&[]);
        d.spawn();
        Some(d)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    fn write_hosts(&self, records: &[(&str, &str)]) {
        let text: String = records
            .iter()
            .map(|(ip, name)| format!("{ip} {name}\n"))
            .collect();
        let tmp = self.dir.path().join("hosts.tmp");
        std::fs::write(&tmp, text).unwrap();
        set_mode(&tmp, 0o644);
        std::fs::rename(&tmp, self.hosts()).unwrap();
    }

    fn write_conf(&self) -> PathBuf {
        let path = self.dir.path().join("dnsmasq.conf");
        let text: String = self.conf.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        set_mode(&path, 0o644);
        path
    }

    fn spawn(&mut self) {
        let conf = self.write_conf();
        // A free port (UDP and TCP); retried when dnsmasq cannot bind it.
        for _ in 0..20 {
            let port = if self.port == 0 {
                super::free_port()
            } else {
                self.port
            };
            let mut cmd = Command::new(&self.bin);
            cmd.arg("--no-daemon")
                .arg(format!("--port={port}"))
                .arg("--listen-address=127.0.0.1")
                .arg("--bind-interfaces")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg("--no-poll")
                .arg("--cache-size=0")
                .arg("--local-ttl=0")
                .arg("--pid-file=")
                .arg("--local=/test/")
                .arg(format!("--addn-hosts={}", self.hosts().display()))
                .arg(format!("--conf-file={}", conf.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if is_root() {
                cmd.arg("--user=root").arg("--group=root");
            }
            let mut child = cmd.spawn().expect("spawn dnsmasq");
            // Ready when it answers on TCP (it binds UDP and TCP together).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut ready = false;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: the port was taken
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    ready = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if ready {
                self.port = port;
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            if self.port != 0 {
                // A restart on a fixed port: wait for it to be released.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("dnsmasq did not start");
    }

    /// Replaces the A records (`(ip, name)` pairs) and reloads (SIGHUP).
    pub fn set_hosts(&self, records: &[(&str, &str)]) {
        self.write_hosts(records);
        if let Some(child) = &self.child {
            let ok = Command::new("kill")
                .arg("-HUP")
                .arg(child.id().to_string())
                .status()
                .unwrap()
                .success();
            assert!(ok, "SIGHUP dnsmasq");
        }
        // dnsmasq rereads the file when it handles the signal.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Replaces the conf-file records (`srv-host=...`, `txt-record=...`,
    /// `server=...` lines) and restarts dnsmasq on the same port.
    pub fn set_conf(&mut self, lines: &[String]) {
        self.conf = lines.to_vec();
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_root() -> bool {
    // Without libc: the owner of /proc/self is the effective user.
    std::fs::metadata("/proc/self")
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        })
        .unwrap_or(false)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An SRV line for the conf file.
pub fn srv(name: &str, target: &str, port: u16) -> String {
    format!("srv-host={name},{target},{port}")
}
