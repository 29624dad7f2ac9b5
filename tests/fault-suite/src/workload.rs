//! The workload client: runs inside a host's namespace next to its node
//! (`fault-suite agent ...`), sends a steady stream of probe-grain
//! requests through the node's admin port, and looks at its membership.
//!
//! - one thread per grain: `POST /grains/probe-counter/g<k>`, then a
//!   pause, forever; every request becomes a [`Request`] line in
//!   `requests-<node>.jsonl`;
//! - one thread: `GET /health/ready` and `GET /cluster/members` every
//!   `observe_ms`, an [`Observation`] line in `observations-<node>.jsonl`
//!   and the latest one in `status-<node>.json` (written whole, then
//!   renamed) for the controller's waits.
//!
//! The agent never stops by itself; the controller kills it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::history::{Appender, OK, Observation, Request, now_ms};

/// What one agent does.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Its node's id.
    pub node: String,
    /// Its node's admin address.
    pub admin: SocketAddr,
    /// Grains `g0` .. `g<grains-1>`.
    pub grains: usize,
    /// Pause between two requests of one grain.
    pub interval_ms: u64,
    /// Pause between two observations.
    pub observe_ms: u64,
    /// Bound of one request (longer than the node's request timeout).
    pub timeout_ms: u64,
    /// Where the files go.
    pub dir: PathBuf,
}

/// The latest observation, with readiness (`status-<node>.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// `GET /health/ready` answered 200.
    pub ready: bool,
    /// The observation.
    pub observation: Observation,
}

/// A plain HTTP/1.1 exchange: (status, body); `Err` is the client's own
/// error code.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), &'static str> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500).min(timeout))
        .map_err(|_| "client.connect")?;
    s.set_read_timeout(Some(timeout)).map_err(|_| "client.io")?;
    s.set_write_timeout(Some(timeout))
        .map_err(|_| "client.io")?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).map_err(|_| "client.io")?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err("client.timeout");
        }
        Err(_) => return Err("client.io"),
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("client.http")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("client.http")?;
    Ok((status, body.to_owned()))
}

/// One probe request, as a history record.
pub fn probe(c: &AgentConfig, grain: &str, seq: u64) -> Request {
    let start_ms = now_ms();
    let answer = http(
        c.admin,
        "POST",
        &format!("/grains/probe-counter/{grain}"),
        Duration::from_millis(c.timeout_ms),
    );
    let end_ms = now_ms();
    let mut r = Request {
        id: format!("{}-{seq}", c.node),
        asked: c.node.clone(),
        grain: grain.to_owned(),
        answered_by: None,
        activation: None,
        value: None,
        start_ms,
        end_ms,
        result: String::new(),
    };
    match answer {
        Ok((200, body)) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) => {
                r.answered_by = v["answered_by"].as_str().map(str::to_owned);
                r.activation = v["activation"].as_str().map(str::to_owned);
                r.value = v["value"].as_u64();
                r.result = OK.to_owned();
            }
            Err(_) => r.result = "client.http".to_owned(),
        },
        Ok((status, body)) => {
            r.result = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("http.{status}"));
        }
        Err(code) => r.result = code.to_owned(),
    }
    r
}

/// One look at the node.
pub fn observe(c: &AgentConfig) -> Status {
    let t = Duration::from_millis(1_000);
    // Stamped before asking: an observation newer than a restart is an
    // answer of the restarted process.
    let t_ms = now_ms();
    let ready = matches!(http(c.admin, "GET", "/health/ready", t), Ok((200, _)));
    let mut o = Observation {
        node: c.node.clone(),
        t_ms,
        answered: false,
        hash: None,
        seq_no: 0,
        up: Vec::new(),
        quarantined: Vec::new(),
        failovers: 0,
        status: String::new(),
    };
    if let Ok((200, body)) = http(c.admin, "GET", "/cluster/members", t)
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
    {
        o.answered = true;
        o.hash = v["hash"].as_str().map(str::to_owned);
        o.seq_no = v["seq_no"].as_u64().unwrap_or(0);
        o.failovers = v["failovers"].as_u64().unwrap_or(0);
        o.status = v["status"].as_str().unwrap_or_default().to_owned();
        for m in v["members"].as_array().into_iter().flatten() {
            let name = m["node"].as_str().unwrap_or_default().to_owned();
            match m["state"].as_str() {
                Some("up") => o.up.push(name),
                Some("quarantined") => o.quarantined.push(name),
                _ => {}
            }
        }
    }
    Status {
        ready,
        observation: o,
    }
}

/// The file names of `node`'s records in `dir`.
pub fn files(dir: &Path, node: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("requests-{node}.jsonl")),
        dir.join(format!("observations-{node}.jsonl")),
        dir.join(format!("status-{node}.json")),
    )
}

/// Runs the agent until the process is killed.
pub fn run(c: AgentConfig) -> std::io::Result<()> {
    let (requests, observations, status) = files(&c.dir, &c.node);
    let requests = Arc::new(Mutex::new(Appender::open(&requests)?));
    let mut observations = Appender::open(&observations)?;
    let seq = Arc::new(AtomicU64::new(0));
    for k in 0..c.grains {
        let c = c.clone();
        let requests = Arc::clone(&requests);
        let seq = Arc::clone(&seq);
        std::thread::spawn(move || {
            // Spread the grains' loops over one interval.
            let offset = c.interval_ms * k as u64 / c.grains.max(1) as u64;
            std::thread::sleep(Duration::from_millis(offset));
            let grain = format!("g{k}");
            loop {
                let r = probe(&c, &grain, seq.fetch_add(1, Ordering::Relaxed));
                let failed = !r.ok();
                if let Ok(mut w) = requests.lock() {
                    let _ = w.push(&r);
                }
                // After a refused connection, do not spin.
                let pause = if failed {
                    c.interval_ms.max(100)
                } else {
                    c.interval_ms
                };
                std::thread::sleep(Duration::from_millis(pause));
            }
        });
    }
    let tmp = status.with_extension("tmp");
    loop {
        let s = observe(&c);
        observations.push(&s.observation)?;
        if let Ok(text) = serde_json::to_vec(&s) {
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &status)?;
        }
        std::thread::sleep(Duration::from_millis(c.observe_ms));
    }
}

/// Reads an agent's latest status.
pub fn read_status(dir: &Path, node: &str) -> Option<Status> {
    let (_, _, status) = files(dir, node);
    serde_json::from_slice(&std::fs::read(status).ok()?).ok()
}
