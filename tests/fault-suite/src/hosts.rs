//! Hosts: one network namespace per host, joined by one bridge, with
//! addresses from 198.18.0.0/15 (reserved for benchmarking, RFC 2544) and
//! no route out.
//!
//! ```text
//!   fs-<pid>-<rand>-sw   (switch namespace)      fs-<pid>-<rand>-<host>
//!   ┌───────────────────────────┐                ┌────────────────────┐
//!   │ br0 ── v1 ────────────────┼── veth pair ───┼─ eth0 198.18.0.1/24│
//!   │     ── v2 ...             │                │ lo (127.0.0.1)     │
//!   └───────────────────────────┘                └────────────────────┘
//! ```
//!
//! The bridge lives in a namespace of its own, so nothing of the harness
//! touches the root namespace (its firewall, its routes, its interface
//! names). A partition is a blackhole route inside a host's namespace
//! (`ip route add blackhole <peer>/32`): packets to that peer are dropped
//! at the sender, in one direction; both directions make a symmetric cut.
//!
//! [`Net`] is a guard: dropping it (also when a test panics) deletes every
//! namespace it created, which removes the veths and the bridge with them.
//! Names carry the creating process's pid, so a later run removes what a
//! killed run left behind ([`Net::remove_stale`]) without touching a run
//! that is still alive.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The prefix of every namespace the harness creates.
pub const PREFIX: &str = "fs-";

/// Why the harness cannot work here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `ip <args>`; an error names the command and ip's message.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether namespaces can be created here: root, and `ip` works. The error
/// names what is missing.
pub fn check_supported() -> Result<(), Unsupported> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Err(Unsupported(
            "network namespaces need root (run as root, e.g. in CI)".into(),
        ));
    }
    let probe = format!("{PREFIX}probe-{}", std::process::id());
    ip(&["netns", "add", &probe])
        .map_err(|e| Unsupported(format!("cannot create a namespace: {e}")))?;
    let bridge = ip(&["-n", &probe, "link", "add", "br0", "type", "bridge"]);
    let veth = ip(&[
        "-n", &probe, "link", "add", "va", "type", "veth", "peer", "name", "vb",
    ]);
    let _ = ip(&["netns", "del", &probe]);
    bridge.map_err(|e| Unsupported(format!("cannot create a bridge: {e}")))?;
    veth.map_err(|e| Unsupported(format!("cannot create a veth pair: {e}")))?;
    Ok(())
}

/// One host: a namespace with one address.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its short name (`n1`, `etcd`).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its address on the bridge.
    pub ip: Ipv4Addr,
}

/// The namespaces of one run; removes them on drop.
#[derive(Debug)]
pub struct Net {
    /// The run's id (in every name).
    pub run_id: String,
    switch: String,
    hosts: Vec<Host>,
    /// Blackhole routes in place: (in the namespace of, to the address of).
    cuts: BTreeSet<(String, String)>,
}

impl Net {
    /// A new switch namespace with a bridge. Removes leftovers of dead
    /// runs first.
    pub fn new() -> Result<Self, String> {
        Self::remove_stale();
        let run_id = format!("{}-{:04x}", std::process::id(), fastrand::u16(..));
        let switch = format!("{PREFIX}{run_id}-sw");
        let net = Self {
            run_id,
            switch: switch.clone(),
            hosts: Vec::new(),
            cuts: BTreeSet::new(),
        };
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "set", "lo", "up"])?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        Ok(net)
    }

    /// Adds a host with the next address (198.18.0.1, .2, ...).
    pub fn add_host(&mut self, name: &str) -> Result<Host, String> {
        let index = self.hosts.len() + 1;
        let octet = u8::try_from(index).map_err(|_| "too many hosts".to_owned())?;
        let ns = format!("{PREFIX}{}-{name}", self.run_id);
        let host = Host {
            name: name.to_owned(),
            ns: ns.clone(),
            ip: Ipv4Addr::new(198, 18, 0, octet),
        };
        ip(&["netns", "add", &ns])?;
        // Registered before the rest, so the guard removes a half-made host.
        self.hosts.push(host.clone());
        let veth = format!("v{index}");
        let addr = format!("{}/24", host.ip);
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &self.switch,
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ])?;
        ip(&["-n", &self.switch, "link", "set", &veth, "master", "br0"])?;
        ip(&["-n", &self.switch, "link", "set", &veth, "up"])?;
        ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(host)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Drops packets from `from` to `to` (one direction).
    pub fn cut(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (f, t) = self.pair(from, to)?;
        if self.cuts.insert((f.clone(), t.clone())) {
            ip(&["-n", &f, "route", "add", "blackhole", &format!("{t}/32")])?;
        }
        Ok(())
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&mut self, a: &str, b: &str) -> Result<(), String> {
        self.cut(a, b)?;
        self.cut(b, a)
    }

    /// Removes every cut.
    pub fn heal_all(&mut self) -> Result<(), String> {
        let cuts = std::mem::take(&mut self.cuts);
        let mut first_error = Ok(());
        for (ns, to) in cuts {
            if let Err(e) = ip(&["-n", &ns, "route", "del", "blackhole", &format!("{to}/32")])
                && first_error.is_ok()
            {
                first_error = Err(e);
            }
        }
        first_error
    }

    fn pair(&self, from: &str, to: &str) -> Result<(String, String), String> {
        let f = self.host(from).ok_or_else(|| format!("no host {from}"))?;
        let t = self.host(to).ok_or_else(|| format!("no host {to}"))?;
        Ok((f.ns.clone(), t.ip.to_string()))
    }

    /// Removes namespaces of earlier runs whose process is gone (a run
    /// killed before its guard ran): their processes are killed first.
    pub fn remove_stale() {
        for ns in ip_output(&["netns", "list"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
        {
            let Some(rest) = ns.strip_prefix(PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            remove_namespace(ns);
        }
    }
}

/// Kills every process in `ns`, then deletes it.
fn remove_namespace(ns: &str) {
    for pid in ip_output(&["netns", "pids", ns]).split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    let _ = ip(&["netns", "del", ns]);
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            remove_namespace(&h.ns);
        }
        remove_namespace(&self.switch);
    }
}
