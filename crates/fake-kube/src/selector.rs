//! Label and field selectors, as the Kubernetes API documents them
//! ("Labels and Selectors", "Field Selectors").
//!
//! Label selectors: equality-based (`k=v`, `k==v`, `k!=v`), set-based
//! (`k in (a,b)`, `k notin (a,b)`), existence (`k`, `!k`), comma-separated
//! and ANDed. Field selectors: `=`, `==`, `!=` on `metadata.name`,
//! `metadata.namespace`, `status.phase`, `status.podIP` and `spec.nodeName`.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Field(String, String, bool),
}

/// A parsed selector (labels and fields, ANDed); the empty selector
/// matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<Req>,
}

impl Selector {
    /// Everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses a `labelSelector` and adds it; `Err` says why it is invalid.
    pub fn add_labels(mut self, s: &str) -> Result<Self, String> {
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            self.reqs.push(parse_label_req(part)?);
        }
        Ok(self)
    }

    /// Parses a `fieldSelector` and adds it.
    pub fn add_fields(mut self, s: &str) -> Result<Self, String> {
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v, eq) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, true)
            } else {
                return Err(format!("invalid field selector requirement {part:?}"));
            };
            let k = k.trim();
            if field_pointer(k).is_none() {
                return Err(format!(
                    "field label not supported: {k} (supported: metadata.name, metadata.namespace, status.phase, status.podIP, spec.nodeName)"
                ));
            }
            self.reqs
                .push(Req::Field(k.to_owned(), v.trim().to_owned(), eq));
        }
        Ok(self)
    }

    /// Whether `obj` matches.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => label(k) == Some(v.as_str()),
            Req::NotEq(k, v) => label(k) != Some(v.as_str()),
            Req::In(k, vs) => label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => label(k).is_some(),
            Req::NotExists(k) => label(k).is_none(),
            Req::Field(k, v, eq) => {
                let actual = field_pointer(k)
                    .and_then(|p| obj.pointer(p))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                (actual == v) == *eq
            }
        })
    }
}

fn field_pointer(k: &str) -> Option<&'static str> {
    Some(match k {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "status.phase" => "/status/phase",
        "status.podIP" => "/status/podIP",
        "spec.nodeName" => "/spec/nodeName",
        _ => return None,
    })
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_label_req(part: &str) -> Result<Req, String> {
    let bad = |why: &str| format!("unable to parse requirement {part:?}: {why}");
    if let Some(k) = part.strip_prefix('!') {
        let k = k.trim();
        check_key(k).map_err(|e| bad(&e))?;
        return Ok(Req::NotExists(k.to_owned()));
    }
    for (op, neg) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = part.split_once(op) {
            let k = k.trim();
            check_key(k).map_err(|e| bad(&e))?;
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad("expected a parenthesized list of values"))?;
            let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
            for v in &vals {
                check_value(v).map_err(|e| bad(&e))?;
            }
            return Ok(if neg {
                Req::NotIn(k.to_owned(), vals)
            } else {
                Req::In(k.to_owned(), vals)
            });
        }
    }
    let (k, v, eq) = if let Some((k, v)) = part.split_once("!=") {
        (k, v, false)
    } else if let Some((k, v)) = part.split_once("==") {
        (k, v, true)
    } else if let Some((k, v)) = part.split_once('=') {
        (k, v, true)
    } else {
        let k = part.trim();
        check_key(k).map_err(|e| bad(&e))?;
        return Ok(Req::Exists(k.to_owned()));
    };
    let (k, v) = (k.trim(), v.trim());
    check_key(k).map_err(|e| bad(&e))?;
    check_value(v).map_err(|e| bad(&e))?;
    Ok(if eq {
        Req::Eq(k.to_owned(), v.to_owned())
    } else {
        Req::NotEq(k.to_owned(), v.to_owned())
    })
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label or annotation key: an optional DNS-subdomain prefix and `/`, then
/// a name of at most 63 characters.
pub(crate) fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err("prefix part must be a DNS subdomain".into());
        }
    }
    if !is_name_part(name) {
        return Err(
            "name part must be 1 to 63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]`
/// starting and ending with an alphanumeric character.
pub(crate) fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_name_part(v) {
        Ok(())
    } else {
        Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn equality_set_and_existence_requirements() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| Selector::everything().add_labels(s).unwrap().matches(&p);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web,tier=front"));
        assert!(!m("app=db"));
        assert!(m("app!=db"));
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front)"));
        assert!(m("app"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("missing notin (x)"));
        assert!(Selector::everything().add_labels("a=b c").is_err());
        assert!(Selector::everything().add_labels("x in y").is_err());
    }

    #[test]
    fn field_selectors_on_supported_fields_only() {
        let p = pod(json!({}));
        let f = |s: &str| Selector::everything().add_fields(s).map(|x| x.matches(&p));
        assert_eq!(f("metadata.name=p"), Ok(true));
        assert_eq!(f("status.phase!=Running"), Ok(false));
        assert!(f("spec.unknown=x").is_err());
    }

    #[test]
    fn label_keys_and_values_follow_the_documented_syntax() {
        assert!(check_key("cluster-provisioning.io/cluster").is_ok());
        assert!(check_key("app").is_ok());
        assert!(check_key("Bad_Prefix/x").is_err());
        assert!(check_key("-x").is_err());
        assert!(check_value("").is_ok());
        assert!(check_value("node:1").is_err());
        assert!(check_value(&"a".repeat(64)).is_err());
    }
}
