//! Durations in the configuration are strings such as `"5s"`, `"250ms"` or
//! `"1m 30s"`, parsed by [`humantime`]. These serde helpers wrap it so that
//! a bad value says what was wrong in the words an operator reads
//! (`"5x" is not a duration: ...`), and so that the effective configuration
//! prints durations the same way.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

fn parse<E: serde::de::Error>(s: &str) -> Result<Duration, E> {
    humantime::parse_duration(s).map_err(|e| {
        E::custom(format!(
            "{s:?} is not a duration ({e}; write e.g. \"5s\" or \"250ms\")"
        ))
    })
}

/// `#[serde(with = "duration")]` for a `Duration`.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
    }
    match Raw::deserialize(d) {
        Ok(Raw::Text(s)) => parse(&s),
        Ok(Raw::Number(n)) => Err(D::Error::custom(format!(
            "{n} is not a duration: write it with a unit, e.g. \"{n}s\" or \"{n}ms\""
        ))),
        Err(_) => Err(D::Error::custom(
            "expected a duration such as \"5s\" or \"250ms\"",
        )),
    }
}

/// `#[serde(with = "duration::option")]` for an `Option<Duration>`.
pub mod option {
    use super::*;

    /// Serializes `Some` as a duration string (`None` is skipped by the
    /// field's `skip_serializing_if`).
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// A present value must be a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use std::time::Duration;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
    }

    fn parse(v: &str) -> Result<Duration, String> {
        serde_json::from_str::<T>(&format!("{{\"d\": {v}}}"))
            .map(|t| t.d)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_read_as_an_operator_writes_them() {
        assert_eq!(parse("\"5s\""), Ok(Duration::from_secs(5)));
        assert_eq!(parse("\"250ms\""), Ok(Duration::from_millis(250)));
        assert_eq!(parse("\"1m 30s\""), Ok(Duration::from_secs(90)));
        let e = parse("\"5x\"").unwrap_err();
        assert!(e.contains("\"5x\" is not a duration"), "{e}");
        let e = parse("5").unwrap_err();
        assert!(e.contains("write it with a unit"), "{e}");
    }
}
