//! A real PostgreSQL for tests: Debian's `initdb` and `pg_ctl` (package
//! `postgresql`, under `/usr/lib/postgresql/<version>/bin`, or `PG_BIN`),
//! a temporary data dir, a free port on 127.0.0.1, trust authentication,
//! stopped when dropped (so also when a test panics). Tests run it with
//! `fsync=off` ([`PostgresServer::start`]); benchmarks that report write
//! costs run it durable ([`PostgresServer::start_durable`]). Also used by
//! `crates/cluster/benches/grains.rs` through `#[path]`.
//!
//! PostgreSQL refuses to run as root: as root, the data dir is given to the
//! `postgres` system user (created by the package) and the server runs as
//! it through `runuser`.
//!
//! Without PostgreSQL installed, [`PostgresServer::start`] prints
//! `skipped: PostgreSQL not installed (apt-get install postgresql)` and
//! returns `None`, unless `CI_REQUIRE_POSTGRES=1`, where it panics so CI
//! cannot pass without running these tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use grain_storage_postgres::PostgresSettings;

/// How long the server may take to start or stop.
const START_BOUND: Duration = Duration::from_secs(30);
/// The unprivileged user that runs the server when the tests run as root.
const SERVER_USER: &str = "postgres";

/// The bin directory of the newest installed PostgreSQL.
fn find_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PG_BIN") {
        let bin = PathBuf::from(p);
        return bin.join("initdb").is_file().then_some(bin);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    // /proc/self belongs to the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "the system user {user:?} is missing (the postgresql package creates it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

/// One PostgreSQL server on 127.0.0.1.
pub struct PostgresServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
    running: bool,
    /// `fsync=off` (tests) or PostgreSQL's durable defaults.
    fsync: bool,
}

impl PostgresServer {
    /// Initialises a cluster and starts it with `fsync=off` (tests); `None`
    /// when PostgreSQL is not installed (and `CI_REQUIRE_POSTGRES` is not
    /// `1`).
    pub fn start() -> Option<Self> {
        Self::start_with_fsync(false)
    }

    /// [`start`](Self::start) with PostgreSQL's durable defaults (`fsync`
    /// and `synchronous_commit` on): what a benchmark of writes measures.
    pub fn start_durable() -> Option<Self> {
        Self::start_with_fsync(true)
    }

    fn start_with_fsync(fsync: bool) -> Option<Self> {
        let Some(bin) = find_bin() else {
            if std::env::var("CI_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL is not installed but CI_REQUIRE_POSTGRES=1: install the Debian \
                     package postgresql (./scripts/install-deps)"
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "skipped: PostgreSQL not installed (apt-get install postgresql)"
            );
            return None;
        };
        let as_root = running_as_root();
        // The postgres user must reach the dir: when TMPDIR is private to
        // root, use /tmp.
        let mut parent = std::env::temp_dir();
        if as_root && std::fs::metadata(&parent).map_or(true, |m| m.mode() & 0o001 == 0) {
            parent = PathBuf::from("/tmp");
        }
        let dir = tempfile::Builder::new()
            .prefix("pg-test-")
            .tempdir_in(parent)
            .expect("temporary dir for PostgreSQL");
        if as_root {
            let (uid, gid) = (id_of(SERVER_USER, "-u"), id_of(SERVER_USER, "-g"));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the temporary dir to the postgres user");
        }
        let mut server = Self {
            bin,
            dir,
            port: 0,
            as_root,
            running: false,
            fsync,
        };
        let out = server.run(
            "initdb",
            &[
                "-D",
                &server.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed:\n{}", text(&out));
        // A port picked by binding port 0 can be taken again before the
        // server binds it: retry with another.
        for attempt in 0..5 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return Some(server),
                Err(log) if log.contains("already in use") && attempt < 4 => {}
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    /// Settings for a store on this server (trust authentication as the
    /// `postgres` role, database `postgres`), with short timeouts.
    pub fn settings(&self) -> PostgresSettings {
        PostgresSettings::new("127.0.0.1", self.port, "postgres", "postgres")
            .connect_timeout(Duration::from_secs(3))
            .call_timeout(Duration::from_secs(3))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`: connections are
    /// closed, everything committed stays).
    pub fn stop(&mut self) {
        self.stop_mode("fast");
    }

    /// Stops the server as a crash would (`-m immediate`: no checkpoint;
    /// committed data is recovered from the WAL at the next start).
    pub fn crash(&mut self) {
        self.stop_mode("immediate");
    }

    /// Starts a stopped server again on the same port with the same data.
    pub fn start_again(&mut self) {
        if let Err(log) = self.launch() {
            panic!("PostgreSQL did not restart:\n{log}");
        }
    }

    /// Stops and starts the server.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Runs a PostgreSQL program, as the postgres user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut c = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }

    /// `pg_ctl start`, waiting until the server accepts connections; the
    /// log on failure.
    fn launch(&mut self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync={} -c max_connections=30",
            self.port,
            self.dir.path().display(),
            if self.fsync { "on" } else { "off" }
        );
        let log = self.log_path().to_string_lossy().into_owned();
        let timeout = START_BOUND.as_secs().to_string();
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", &timeout, "-o", &options, "start",
            ],
        );
        if out.status.success() {
            self.running = true;
            return Ok(());
        }
        // A server that failed to start may still be shutting down.
        self.stop_mode("immediate");
        Err(format!(
            "pg_ctl start: {}\n{}",
            text(&out),
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        ))
    }

    fn stop_mode(&mut self, mode: &str) {
        let data = self.data_dir();
        let timeout = START_BOUND.as_secs().to_string();
        let out = self.run(
            "pg_ctl",
            &["-D", &data, "-m", mode, "-w", "-t", &timeout, "stop"],
        );
        if !out.status.success() {
            // Not running, or it did not stop in time: kill the postmaster
            // by the PID in its own file.
            kill_postmaster(&self.dir.path().join("data"));
        }
        self.running = false;
    }
}

fn kill_postmaster(data: &Path) {
    let Ok(pidfile) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    if let Some(pid) = pidfile
        .lines()
        .next()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let _ = Command::new("kill")
            .args(["-KILL", pid])
            .stderr(Stdio::null())
            .status();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.running {
            self.stop_mode("immediate");
        }
    }
}
