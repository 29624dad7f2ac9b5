//! Issue 18, done when: a two-process service hosting an `Order` grain
//! keeps 10 of 10 orders across a graceful leave and across a crash, with a
//! store (SQLite, one file shared by the processes of one machine), over
//! the `file` provider. Every process is killed when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_orders-service");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"cluster = "orders"
node_id = "{name}"
bind = "127.0.0.1:0"

[admin]
enabled = false

[remoting]
heartbeat_interval = "100ms"
failure_timeout = "1s"

[leave]
deadline = "5s"

[storage]
kind = "sqlite"
path = {db:?}

[[providers]]
id = "shared-dir"
kind = "file"
settings = {{ dir = {members:?}, poll = "50ms" }}
"#,
            db = dir.join("orders.db").display().to_string(),
            members = dir.join("members").display().to_string(),
        ),
    )
    .unwrap();
    path
}

/// A serving process, driven through its stdin.
struct Server {
    proc: Proc,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// Sends a command and waits for its answer line (at most 60 s).
    fn ask(&mut self, command: &str) -> String {
        use std::io::Write;
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no answer to {command:?}"))
    }
}

fn serve(dir: &Path, name: &str) -> Server {
    use std::io::BufRead;
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve"])
        .arg(config(dir, name))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the node becomes ready");
    assert_eq!(first, "serving");
    Server {
        proc: Proc(child),
        stdin,
        lines,
    }
}

fn wait_exit(p: &mut Proc, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < timeout, "did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

#[test]
fn g18_two_processes_keep_10_of_10_orders_across_a_leave_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("members")).unwrap();
    let mut a = serve(d, "a");
    let mut b = serve(d, "b");
    assert_eq!(a.ask("fill 10"), "filled 10", "{}", log(d, "a"));

    // A graceful leave of b (SIGTERM): its orders move to a with their
    // items (b deactivates them before it deregisters).
    Command::new("kill")
        .args(["-TERM", &b.proc.0.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut b.proc, Duration::from_secs(10)).success());
    assert_eq!(
        a.ask("check 10"),
        "10 of 10 orders intact",
        "{}",
        log(d, "a")
    );

    // A second process joins; then a crashes (SIGKILL): c detects it,
    // and loads every order from the store.
    let mut c = serve(d, "c");
    assert_eq!(
        c.ask("check 10"),
        "10 of 10 orders intact",
        "{}",
        log(d, "c")
    );
    a.proc.0.kill().unwrap();
    let _ = a.proc.0.wait();
    assert_eq!(
        c.ask("check 10"),
        "10 of 10 orders intact",
        "{}",
        log(d, "c")
    );
}
