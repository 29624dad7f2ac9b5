//! What a run records: the workload's requests, the nodes' observed
//! membership, and the nemesis's faults. Times are Unix milliseconds (the
//! one clock every process of the machine shares). Each file is JSON
//! lines, so a killed writer loses at most its last line.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The result of a request that answered.
pub const OK: &str = "ok";

/// One grain request of the workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unique in the run (`<node asked>-<sequence>`).
    pub id: String,
    /// The node whose admin port was asked.
    pub asked: String,
    /// The grain id.
    pub grain: String,
    /// The node hosting the activation that answered.
    #[serde(default)]
    pub answered_by: Option<String>,
    /// The activation that answered.
    #[serde(default)]
    pub activation: Option<String>,
    /// The counter's value after the request.
    #[serde(default)]
    pub value: Option<u64>,
    /// Sent.
    pub start_ms: u64,
    /// Answered or failed.
    pub end_ms: u64,
    /// [`OK`], or an error code: the node's (`placement.timeout`, ...),
    /// or the client's (`client.connect`, `client.timeout`, `client.http`).
    pub result: String,
}

impl Request {
    /// Whether it was answered.
    pub fn ok(&self) -> bool {
        self.result == OK
    }
}

/// One look at a node's membership (`GET /cluster/members`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The node looked at.
    pub node: String,
    /// When.
    pub t_ms: u64,
    /// Whether it answered at all.
    pub answered: bool,
    /// The topology hash.
    #[serde(default)]
    pub hash: Option<String>,
    /// The topology's sequence number.
    #[serde(default)]
    pub seq_no: u64,
    /// Members that are up.
    #[serde(default)]
    pub up: Vec<String>,
    /// Members this node quarantined.
    #[serde(default)]
    pub quarantined: Vec<String>,
    /// Changes of the active provider since the node started.
    #[serde(default)]
    pub failovers: u64,
    /// Provisioning status.
    #[serde(default)]
    pub status: String,
}

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL of one node, restarted at the heal.
    Kill,
    /// SIGSTOP of one node for longer than the failure timeout, then SIGCONT.
    Pause,
    /// A majority and a minority that cannot reach each other.
    Partition,
    /// One node cannot send to the others; they can send to it.
    OneWay,
    /// One node cannot reach etcd (it still reaches the other nodes).
    EtcdCut,
    /// etcd killed (SIGKILL) and restarted on its data.
    EtcdRestart,
    /// Every node restarted in turn (SIGTERM: graceful leave, then start).
    Rolling,
}

impl FaultKind {
    /// Every kind, in the CI scenario's order.
    pub const ALL: [Self; 7] = [
        Self::Kill,
        Self::Pause,
        Self::Partition,
        Self::OneWay,
        Self::EtcdCut,
        Self::EtcdRestart,
        Self::Rolling,
    ];

    /// Its name in files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Pause => "pause",
            Self::Partition => "partition",
            Self::OneWay => "one-way",
            Self::EtcdCut => "etcd-cut",
            Self::EtcdRestart => "etcd-restart",
            Self::Rolling => "rolling",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it needs etcd (the file provider variant leaves it out).
    pub fn needs_etcd(self) -> bool {
        matches!(self, Self::EtcdCut | Self::EtcdRestart)
    }

    /// Whether members can disagree on the owner of a grain while it lasts
    /// (a cut between members, or a member that is paused and comes back):
    /// double activations are bounded there, and zero elsewhere.
    pub fn splits_views(self) -> bool {
        matches!(
            self,
            Self::Pause | Self::Partition | Self::OneWay | Self::EtcdCut
        )
    }
}

/// One fault as the nemesis applied it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Its position in the schedule.
    pub index: usize,
    /// What.
    pub kind: FaultKind,
    /// The nodes (or `etcd`) it hit; for a partition, the minority.
    pub targets: Vec<String>,
    /// When it began.
    pub start_ms: u64,
    /// When it was healed (for a kill or a rolling restart: when the last
    /// restarted node was ready again).
    pub heal_ms: u64,
}

/// Appends JSON lines to a file, one write per line.
#[derive(Debug)]
pub struct Appender(std::fs::File);

impl Appender {
    /// Opens (creates) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Self)
    }

    /// Appends one record.
    pub fn push<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.0.write_all(&line)
    }
}

/// Reads a JSON-lines file; a torn last line (a killed writer) is skipped.
pub fn read_lines<T: DeserializeOwned>(path: &Path) -> std::io::Result<Vec<T>> {
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if let Ok(v) = serde_json::from_str(&line) {
            out.push(v);
        }
    }
    Ok(out)
}
