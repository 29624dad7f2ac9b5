//! The object store of the fake: pods keyed by namespace and name, a global
//! resource version (like etcd's revision), and the history of changes that
//! watches replay.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::selector::Selector;

/// What happened to an object, as a watch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One change, kept for watches that resume from an older resource version.
#[derive(Clone, Debug)]
pub(crate) struct HistoryEntry {
    pub rv: u64,
    pub change: Change,
    pub namespace: String,
    /// The object before (modifications and deletions).
    pub old: Option<Value>,
    /// The object after (for deletions: its last state).
    pub new: Value,
}

/// Why a store operation failed; the HTTP layer turns it into a `Status`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// No such pod.
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A pod with this name exists.
    AlreadyExists {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The object is not valid (HTTP 422).
    Invalid(String),
    /// `metadata.resourceVersion` did not match (HTTP 409).
    Conflict(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound { name, .. } => write!(f, "pods \"{name}\" not found"),
            Self::AlreadyExists { name, .. } => write!(f, "pods \"{name}\" already exists"),
            Self::Invalid(m) => write!(f, "{m}"),
            Self::Conflict(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub(crate) struct Store {
    pods: BTreeMap<(String, String), Value>,
    /// The current resource version: the last write's.
    pub rv: u64,
    /// Resource versions at or below this one are compacted: a watch or
    /// list asking for them gets 410 Gone.
    pub compacted: u64,
    history: VecDeque<HistoryEntry>,
    history_limit: usize,
    uid_counter: u64,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self {
            pods: BTreeMap::new(),
            rv: 1,
            compacted: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            uid_counter: 0,
        }
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<&Value> {
        self.pods.get(&(ns.to_owned(), name.to_owned()))
    }

    /// Pods of `ns` (all namespaces when `None`) matching `sel`, in key
    /// order, starting after `after` (a `(namespace, name)` key).
    pub fn select<'a>(
        &'a self,
        ns: Option<&'a str>,
        sel: &'a Selector,
        after: Option<&'a (String, String)>,
    ) -> impl Iterator<Item = (&'a (String, String), &'a Value)> + 'a {
        let start = match after {
            Some(k) => std::ops::Bound::Excluded(k.clone()),
            None => std::ops::Bound::Unbounded,
        };
        self.pods
            .range((start, std::ops::Bound::Unbounded))
            .filter(move |((pns, _), _)| ns.is_none_or(|n| n == pns))
            .filter(move |(_, p)| sel.matches(p))
    }

    pub fn all(&self, ns: Option<&str>) -> Vec<Value> {
        self.pods
            .iter()
            .filter(|((pns, _), _)| ns.is_none_or(|n| n == pns))
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Changes after `rv`, oldest first; `None` if some were compacted.
    pub fn history_since(&self, rv: u64) -> Option<impl Iterator<Item = &HistoryEntry>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.history.iter().filter(move |e| e.rv > rv))
    }

    /// Forgets every resource version before the current one.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
    }

    fn record(&mut self, change: Change, ns: &str, old: Option<Value>, new: Value) {
        self.history.push_back(HistoryEntry {
            rv: self.rv,
            change,
            namespace: ns.to_owned(),
            old,
            new,
        });
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = self.compacted.max(e.rv);
            }
        }
    }

    /// Creates a pod; fills in uid, resourceVersion, creationTimestamp.
    pub fn create(&mut self, mut pod: Value) -> Result<Value, StoreError> {
        let (ns, name) = key_of(&pod)?;
        validate(&pod)?;
        if self.pods.contains_key(&(ns.clone(), name.clone())) {
            return Err(StoreError::AlreadyExists {
                namespace: ns,
                name,
            });
        }
        self.rv += 1;
        self.uid_counter += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uid_counter);
        let meta = metadata_mut(&mut pod);
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!(now_rfc3339()));
        if let Some(o) = pod.as_object_mut() {
            o.insert("apiVersion".into(), json!("v1"));
            o.insert("kind".into(), json!("Pod"));
        }
        self.pods.insert((ns.clone(), name), pod.clone());
        self.record(Change::Added, &ns, None, pod.clone());
        Ok(pod)
    }

    /// Replaces a pod by `f(old)`; a no-op change writes nothing (like the
    /// API server, which does not bump the resource version then).
    pub fn update(
        &mut self,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<(), StoreError>,
    ) -> Result<Value, StoreError> {
        let key = (ns.to_owned(), name.to_owned());
        let old = self.pods.get(&key).cloned().ok_or(StoreError::NotFound {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })?;
        let mut new = old.clone();
        f(&mut new)?;
        // Fields the client cannot change.
        let requested_rv = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(r) = requested_rv
            && Some(r.as_str())
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(StoreError::Conflict(format!(
                "Operation cannot be fulfilled on pods \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            )));
        }
        for field in ["name", "namespace", "uid", "creationTimestamp"] {
            let ptr = format!("/metadata/{field}");
            if new.pointer(&ptr) != old.pointer(&ptr) {
                return Err(StoreError::Invalid(format!(
                    "Pod \"{name}\" is invalid: metadata.{field}: Invalid value: field is immutable"
                )));
            }
        }
        validate(&new)?;
        // Compare without the resource version.
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            v
        };
        if strip(&new) == strip(&old) {
            return Ok(old);
        }
        self.rv += 1;
        metadata_mut(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.pods.insert(key, new.clone());
        self.record(Change::Modified, ns, Some(old), new.clone());
        Ok(new)
    }

    /// Restores a backup in one step: every pod becomes `f(pod)` with one
    /// new resource version, and every earlier resource version expires
    /// (an API server restarted on a restored etcd: watches and lists from
    /// before get 410 Gone and must relist).
    pub fn restore(&mut self, f: impl Fn(&mut Value)) {
        self.rv += 1;
        let rv = self.rv;
        for pod in self.pods.values_mut() {
            f(pod);
            metadata_mut(pod).insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.compact();
    }

    pub fn delete(&mut self, ns: &str, name: &str) -> Result<Value, StoreError> {
        let key = (ns.to_owned(), name.to_owned());
        let old = self.pods.remove(&key).ok_or(StoreError::NotFound {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })?;
        self.rv += 1;
        let mut last = old.clone();
        metadata_mut(&mut last).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.record(Change::Deleted, ns, Some(old), last.clone());
        Ok(last)
    }
}

fn key_of(pod: &Value) -> Result<(String, String), StoreError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            StoreError::Invalid("Pod is invalid: metadata.name: Required value".into())
        })?;
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    Ok((ns.to_owned(), name.to_owned()))
}

pub(crate) fn metadata_mut(pod: &mut Value) -> &mut Map<String, Value> {
    if !pod.is_object() {
        *pod = json!({});
    }
    let obj = pod.as_object_mut().expect("made an object above");
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("made an object above")
}

/// The validation the API server does that matters to clients patching
/// metadata: label keys and values, annotation values being strings.
fn validate(pod: &Value) -> Result<(), StoreError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(labels) = pod.pointer("/metadata/labels") {
        let Some(labels) = labels.as_object() else {
            return Err(StoreError::Invalid(format!(
                "Pod \"{name}\" is invalid: metadata.labels: must be a map of strings"
            )));
        };
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                return Err(StoreError::Invalid(format!(
                    "Pod \"{name}\" is invalid: metadata.labels: Invalid value: {k}: must be a string"
                )));
            };
            if let Err(why) = crate::selector::check_key(k) {
                return Err(StoreError::Invalid(format!(
                    "Pod \"{name}\" is invalid: metadata.labels: Invalid value: \"{k}\": {why}"
                )));
            }
            if let Err(why) = crate::selector::check_value(v) {
                return Err(StoreError::Invalid(format!(
                    "Pod \"{name}\" is invalid: metadata.labels: Invalid value: \"{v}\": {why}"
                )));
            }
        }
    }
    if let Some(ann) = pod.pointer("/metadata/annotations") {
        let ok = ann.as_object().is_some_and(|m| {
            m.iter()
                .all(|(k, v)| v.is_string() && crate::selector::check_key(k).is_ok())
        });
        if !ok {
            return Err(StoreError::Invalid(format!(
                "Pod \"{name}\" is invalid: metadata.annotations: must be a map of valid keys to strings"
            )));
        }
    }
    Ok(())
}

/// Now as RFC 3339 with seconds, the format of Kubernetes timestamps.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "labels": {"a": "b"}}})
    }

    #[test]
    fn writes_bump_the_resource_version_and_no_ops_do_not() {
        let mut s = Store::new(100);
        let p = s.create(pod("p1")).unwrap();
        assert_eq!(p["metadata"]["resourceVersion"], "2");
        let same = s.update("ns", "p1", |_| Ok(())).unwrap();
        assert_eq!(same["metadata"]["resourceVersion"], "2");
        let changed = s
            .update("ns", "p1", |p| {
                p["metadata"]["labels"]["c"] = json!("d");
                Ok(())
            })
            .unwrap();
        assert_eq!(changed["metadata"]["resourceVersion"], "3");
        assert_eq!(s.history_since(2).unwrap().count(), 1);
        s.compact();
        assert!(s.history_since(2).is_none(), "compacted");
        assert_eq!(s.history_since(3).unwrap().count(), 0);
    }

    #[test]
    fn bad_labels_and_stale_resource_versions_are_refused() {
        let mut s = Store::new(100);
        s.create(pod("p1")).unwrap();
        let e = s
            .update("ns", "p1", |p| {
                p["metadata"]["labels"]["x"] = json!("has space");
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
        let e = s
            .update("ns", "p1", |p| {
                p["metadata"]["resourceVersion"] = json!("1");
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    }

    #[test]
    fn a_short_history_compacts_the_oldest_versions() {
        let mut s = Store::new(2);
        for i in 0..4 {
            s.create(pod(&format!("p{i}"))).unwrap();
        }
        assert!(s.history_since(2).is_none());
        assert_eq!(s.history_since(s.compacted).unwrap().count(), 2);
    }
}
