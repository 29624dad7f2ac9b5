//! Who quarantined whom, and why: the quarantine, lift and stall lines of
//! the node logs (`<node>.log`), for the report. The observations say
//! *that* a node was quarantined; only the log says *why* (`heartbeat
//! timeout` in all-to-all mode, `monitors' verdict: a, b` in ring mode,
//! issue 17).
//!
//! Pure parsing ([`parse`]) and one reader ([`read`]); the timestamps are
//! tracing's UTC RFC 3339 (`2026-12-07T01:39:56.545075Z`), turned into Unix
//! milliseconds like the histories.

use std::path::Path;

/// What a log line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `node quarantined node=X ... reason=...`: the observer reported X.
    Quarantined {
        /// The node quarantined.
        node: String,
        /// The reason as logged.
        reason: String,
    },
    /// `node reactivated: quarantine lifted node=X`.
    Lifted {
        /// The node whose quarantine was lifted.
        node: String,
    },
    /// `this process was stalled` (FS-1's stall detection, all-to-all), or
    /// the ring core's stall line.
    Stalled,
}

/// One event of one node's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    /// Unix ms.
    pub t_ms: u64,
    /// The node whose log it is.
    pub observer: String,
    /// What happened.
    pub event: Event,
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-07T01:39:56.545075Z` → Unix ms; `None` when it is not one.
pub fn rfc3339_ms(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(str::parse::<i64>);
    let (h, min, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let frac_ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    let ms = ((days_from_civil(y, m, day) * 24 + h) * 60 + min) * 60 + sec;
    u64::try_from(ms * 1_000 + frac_ms).ok()
}

/// The value of `key=` in a tracing line (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    Some(rest.split(' ').next().unwrap_or(rest).trim_matches('"'))
}

/// One line of `observer`'s log, if it is a quarantine, a lift or a stall.
pub fn parse(observer: &str, line: &str) -> Option<LogEvent> {
    let t_ms = rfc3339_ms(line.split(' ').next()?)?;
    let event = if line.contains(" node quarantined ") {
        let node = field(line, "node")?.to_owned();
        // The reason is the last field and may hold spaces.
        let reason = line
            .find(" reason=")
            .map(|i| line[i + 8..].trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        Event::Quarantined { node, reason }
    } else if line.contains(" quarantine lifted ") {
        Event::Lifted {
            node: field(line, "node")?.to_owned(),
        }
    } else if line.contains(" was stalled") {
        Event::Stalled
    } else {
        return None;
    };
    Some(LogEvent {
        t_ms,
        observer: observer.to_owned(),
        event,
    })
}

/// Every node's events from `<dir>/<node>.log`, by time.
pub fn read(dir: &Path, nodes: &[String]) -> Vec<LogEvent> {
    let mut out: Vec<LogEvent> = nodes
        .iter()
        .flat_map(|n| {
            let text = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default();
            text.lines().filter_map(|l| parse(n, l)).collect::<Vec<_>>()
        })
        .collect();
    out.sort_by_key(|e| e.t_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue17_log_timestamps_are_unix_ms() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        // 2026-12-07T01:39:56.545Z, checked with `date -d ... +%s%3N`.
        assert_eq!(
            rfc3339_ms("2026-12-07T01:39:56.545075Z"),
            Some(1_796_607_596_545)
        );
        assert_eq!(rfc3339_ms("not a time"), None);
    }

    #[test]
    fn issue17_quarantine_lines_give_observer_target_and_reason() {
        let q = "2026-12-07T01:39:56.545075Z  WARN provisioning_actors::supervisor::provisioning_core: node quarantined node=n3 incarnation=1796607590287180 reason=heartbeat timeout";
        assert_eq!(
            parse("n1", q).map(|e| e.event),
            Some(Event::Quarantined {
                node: "n3".into(),
                reason: "heartbeat timeout".into()
            })
        );
        let r = "2026-12-07T01:39:56.545075Z  WARN provisioning_actors::supervisor::provisioning_core: node quarantined node=n3 incarnation=1 reason=monitors' verdict: n1, n2";
        assert_eq!(
            parse("n1", r).map(|e| e.event),
            Some(Event::Quarantined {
                node: "n3".into(),
                reason: "monitors' verdict: n1, n2".into()
            })
        );
        let l = "2026-12-07T01:40:11.0Z  INFO provisioning_actors::supervisor::provisioning_core: node reactivated: quarantine lifted node=n2 incarnation=1 listed=true";
        assert_eq!(
            parse("n1", l).map(|e| (e.t_ms, e.event)),
            Some((1_796_607_611_000, Event::Lifted { node: "n2".into() }))
        );
        let s = "2026-12-07T01:40:09.677925Z  INFO cluster::remoting::actor: this process was stalled: the peers' silence during the stall is not counted stalled=6.087309328s";
        assert_eq!(parse("n2", s).map(|e| e.event), Some(Event::Stalled));
        assert_eq!(parse("n1", "2026-12-07T01:40:09.677925Z  INFO other"), None);
    }
}
