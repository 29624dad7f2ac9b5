//! The HTTP side of the fake: routing, `Status` errors, lists with
//! pagination, chunked watches, merge patches, discovery.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::selector::Selector;
use crate::store::{Change, Store, StoreError, metadata_mut};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A verb of the pods resource, as RBAC names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// `get` one pod.
    Get,
    /// `list` pods.
    List,
    /// `watch` pods.
    Watch,
    /// `patch` a pod.
    Patch,
    /// `create` a pod.
    Create,
    /// `delete` a pod.
    Delete,
}

impl Verb {
    /// The RBAC verb.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Patch => "patch",
            Self::Create => "create",
            Self::Delete => "delete",
        }
    }
}

#[derive(Default)]
pub(crate) struct Faults {
    pub delay: Duration,
    pub refuse_watches: bool,
    pub forbidden: BTreeSet<Verb>,
}

/// Requests served, by kind (counted when they arrive, before faults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `GET .../pods` without `watch`.
    pub list: u64,
    /// `GET .../pods?watch=true`.
    pub watch: u64,
    /// `GET .../pods/{name}`.
    pub get: u64,
    /// `PATCH .../pods/{name}`.
    pub patch: u64,
    /// `POST .../pods`.
    pub create: u64,
    /// `DELETE .../pods/{name}`.
    pub delete: u64,
    /// `/version`, `/api`, `/api/v1`, `/apis`, health endpoints.
    pub discovery: u64,
    /// Anything else (answered 404 or 405).
    pub other: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    list: AtomicU64,
    watch: AtomicU64,
    get: AtomicU64,
    patch: AtomicU64,
    create: AtomicU64,
    delete: AtomicU64,
    discovery: AtomicU64,
    other: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> RequestCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            list: l(&self.list),
            watch: l(&self.watch),
            get: l(&self.get),
            patch: l(&self.patch),
            create: l(&self.create),
            delete: l(&self.delete),
            discovery: l(&self.discovery),
            other: l(&self.other),
        }
    }
}

/// State shared by the handle and every connection.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    /// Bumped after every write (its value: the store's resource version).
    pub changed: watch::Sender<u64>,
    /// Bumped to end every open watch.
    pub drop_watches: watch::Sender<u64>,
    /// Bumped to make every open watch with bookmarks send one now.
    pub bookmark_now: watch::Sender<u64>,
    pub faults: Mutex<Faults>,
    pub counters: Counters,
    pub open_watches: AtomicUsize,
    pub bookmarks_sent: AtomicU64,
    pub bookmark_interval: Duration,
    pub addr: Mutex<SocketAddr>,
    /// While true, watches send nothing more (not even their end).
    pub stall: watch::Sender<bool>,
    /// When each request of a [`Verb`] arrived (the last [`LOG_LIMIT`]).
    pub log: Mutex<VecDeque<(Verb, std::time::Instant)>>,
}

/// How many request arrival times [`Shared::log`] keeps.
pub(crate) const LOG_LIMIT: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    /// Records the arrival of a request.
    pub fn log_request(&self, verb: Verb) {
        let mut log = lock(&self.log);
        if log.len() >= LOG_LIMIT {
            log.pop_front();
        }
        log.push_back((verb, std::time::Instant::now()));
    }

    /// Runs a write and wakes the watches.
    pub fn write<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self.store();
        let out = f(&mut store);
        let rv = store.rv;
        drop(store);
        self.changed.send_replace(rv);
        out
    }
}

// ---------- responses ----------

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A `Status` object, the API's error body.
pub(crate) fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn error(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status(code, reason, message, details),
    )
}

fn store_error(e: &StoreError) -> Response<Body> {
    match e {
        StoreError::NotFound { name, .. } => error(
            404,
            "NotFound",
            &e.to_string(),
            Some(json!({"name": name, "kind": "pods"})),
        ),
        StoreError::AlreadyExists { name, .. } => error(
            409,
            "AlreadyExists",
            &e.to_string(),
            Some(json!({"name": name, "kind": "pods"})),
        ),
        StoreError::Invalid(m) => error(422, "Invalid", m, Some(json!({"kind": "Pod"}))),
        StoreError::Conflict(m) => error(409, "Conflict", m, Some(json!({"kind": "pods"}))),
    }
}

fn forbidden(verb: Verb, ns: Option<&str>, name: Option<&str>) -> Response<Body> {
    let user = format!(
        "system:serviceaccount:{}:fake-kube",
        ns.unwrap_or("default")
    );
    let what = match name {
        Some(n) => format!("pods \"{n}\" is forbidden"),
        None => "pods is forbidden".to_owned(),
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    let message = format!(
        "{what}: User \"{user}\" cannot {} resource \"pods\" in API group \"\" {scope}",
        verb.as_str()
    );
    let mut details = json!({"kind": "pods"});
    if let Some(n) = name {
        details["name"] = json!(n);
    }
    error(403, "Forbidden", &message, Some(details))
}

// ---------- routing ----------

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query());
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let delay = shared.faults().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let c = &shared.counters;
    let bump = |a: &AtomicU64| {
        a.fetch_add(1, Ordering::Relaxed);
    };
    match (&method, segs.as_slice()) {
        (&Method::GET, ["version"]) => {
            bump(&c.discovery);
            json_response(StatusCode::OK, &version())
        }
        (&Method::GET, ["healthz" | "readyz" | "livez"]) => {
            bump(&c.discovery);
            let mut r = Response::new(Full::new(Bytes::from_static(b"ok")).boxed_unsync());
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        (&Method::GET, ["api"]) => {
            bump(&c.discovery);
            let addr = *lock(&shared.addr);
            json_response(
                StatusCode::OK,
                &json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
                }),
            )
        }
        (&Method::GET, ["api", "v1"]) => {
            bump(&c.discovery);
            json_response(StatusCode::OK, &api_v1_resources())
        }
        (&Method::GET, ["apis"]) => {
            bump(&c.discovery);
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
            )
        }
        (&Method::GET, ["api", "v1", "pods"]) => collection(&shared, None, &query, &req).await,
        (&Method::GET, ["api", "v1", "namespaces", ns, "pods"]) => {
            let ns = (*ns).to_owned();
            collection(&shared, Some(&ns), &query, &req).await
        }
        (&Method::POST, ["api", "v1", "namespaces", ns, "pods"]) => {
            bump(&c.create);
            shared.log_request(Verb::Create);
            let ns = (*ns).to_owned();
            if shared.faults().forbidden.contains(&Verb::Create) {
                return forbidden(Verb::Create, Some(&ns), None);
            }
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            create(&shared, &ns, body)
        }
        (&Method::GET, ["api", "v1", "namespaces", ns, "pods", name]) => {
            bump(&c.get);
            shared.log_request(Verb::Get);
            if shared.faults().forbidden.contains(&Verb::Get) {
                return forbidden(Verb::Get, Some(ns), Some(name));
            }
            match shared.store().get(ns, name) {
                Some(p) if wants_table(&req) => {
                    json_response(StatusCode::OK, &table(std::slice::from_ref(p), None))
                }
                Some(p) => json_response(StatusCode::OK, p),
                None => store_error(&StoreError::NotFound {
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                }),
            }
        }
        (&Method::PATCH, ["api", "v1", "namespaces", ns, "pods", name]) => {
            bump(&c.patch);
            shared.log_request(Verb::Patch);
            let (ns, name) = ((*ns).to_owned(), (*name).to_owned());
            if shared.faults().forbidden.contains(&Verb::Patch) {
                return forbidden(Verb::Patch, Some(&ns), Some(&name));
            }
            patch(&shared, &ns, &name, &query, req).await
        }
        (&Method::DELETE, ["api", "v1", "namespaces", ns, "pods", name]) => {
            bump(&c.delete);
            shared.log_request(Verb::Delete);
            if shared.faults().forbidden.contains(&Verb::Delete) {
                return forbidden(Verb::Delete, Some(ns), Some(name));
            }
            match shared.write(|s| s.delete(ns, name)) {
                Ok(p) => json_response(StatusCode::OK, &p),
                Err(e) => store_error(&e),
            }
        }
        (_, ["api", "v1", "namespaces", _, "pods", ..] | ["api", "v1", "pods"]) => {
            bump(&c.other);
            error(
                405,
                "MethodNotAllowed",
                &format!(
                    "the server does not allow this method on the requested resource ({method} {path})"
                ),
                None,
            )
        }
        _ => {
            bump(&c.other);
            error(
                404,
                "NotFound",
                "the server could not find the requested resource",
                None,
            )
        }
    }
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(error(
                400,
                "BadRequest",
                &format!("reading the body: {e}"),
                None,
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            400,
            "BadRequest",
            &format!("the body of the request was in an unknown format: {e}"),
            None,
        )
    })
}

fn wants_table(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=Table"))
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake-kube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "none (fake-kube, Rust)",
        "compiler": "fake-kube",
        "platform": "linux/amd64",
    })
}

fn api_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [{
            "name": "pods",
            "singularName": "pod",
            "namespaced": true,
            "kind": "Pod",
            "verbs": ["create", "delete", "get", "list", "patch", "watch"],
            "shortNames": ["po"],
            "categories": ["all"],
        }],
    })
}

fn create(shared: &Shared, ns: &str, mut body: Value) -> Response<Body> {
    if body
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Pod")
    {
        return error(400, "BadRequest", "the body must be a Pod", None);
    }
    let meta = metadata_mut(&mut body);
    match meta.get("namespace").and_then(Value::as_str) {
        Some(n) if n != ns => {
            return error(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
                None,
            );
        }
        _ => {
            meta.insert("namespace".into(), json!(ns));
        }
    }
    match shared.write(|s| s.create(body)) {
        Ok(p) => json_response(StatusCode::CREATED, &p),
        Err(e) => store_error(&e),
    }
}

async fn patch(
    shared: &Shared,
    ns: &str,
    name: &str,
    query: &Query,
    req: Request<Incoming>,
) -> Response<Body> {
    let ctype = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let dry_run = query.get("dryRun") == Some("All");
    let apply = |pod: &mut Value| -> Result<(), StoreError> {
        match ctype.as_str() {
            // Strategic merge differs from JSON merge only for lists with
            // patch strategies; for metadata maps they agree.
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                if !body.is_object() {
                    return Err(StoreError::Invalid(
                        "a merge patch must be a JSON object".into(),
                    ));
                }
                json_patch::merge(pod, &body);
                Ok(())
            }
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_value(body.clone())
                    .map_err(|e| StoreError::Invalid(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(pod, &ops)
                    .map_err(|e| StoreError::Invalid(format!("the JSON patch failed: {e}")))
            }
            _ => Err(StoreError::Invalid("unsupported patch type".into())),
        }
    };
    if !matches!(
        ctype.as_str(),
        "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/json-patch+json"
    ) {
        return error(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ctype:?})"
            ),
            None,
        );
    }
    if dry_run {
        let Some(mut pod) = shared.store().get(ns, name).cloned() else {
            return store_error(&StoreError::NotFound {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            });
        };
        return match apply(&mut pod) {
            Ok(()) => json_response(StatusCode::OK, &pod),
            Err(e) => store_error(&e),
        };
    }
    match shared.write(|s| s.update(ns, name, apply)) {
        Ok(p) => json_response(StatusCode::OK, &p),
        Err(e) => store_error(&e),
    }
}

// ---------- list ----------

async fn collection(
    shared: &Arc<Shared>,
    ns: Option<&str>,
    q: &Query,
    req: &Request<Incoming>,
) -> Response<Body> {
    let watching = q.flag("watch");
    // Subscribed before any fault is checked: a `drop_watches` that comes
    // after this request arrived ends the watch it opens.
    let dropped = shared.drop_watches.subscribe();
    let c = &shared.counters;
    let counter = if watching { &c.watch } else { &c.list };
    counter.fetch_add(1, Ordering::Relaxed);
    let verb = if watching { Verb::Watch } else { Verb::List };
    shared.log_request(verb);
    if shared.faults().forbidden.contains(&verb) {
        return forbidden(verb, ns, None);
    }
    let sel = match Selector::everything()
        .add_labels(q.get("labelSelector").unwrap_or(""))
        .and_then(|s| s.add_fields(q.get("fieldSelector").unwrap_or("")))
    {
        Ok(s) => s,
        Err(m) => return error(400, "BadRequest", &m, None),
    };
    if watching {
        if shared.faults().refuse_watches {
            return error(
                503,
                "ServiceUnavailable",
                "fake-kube: watches are refused (fault injected)",
                None,
            );
        }
        return watch(shared, ns, sel, q, dropped);
    }
    list(shared, ns, &sel, q, wants_table(req))
}

fn parse_rv(s: &str) -> Option<u64> {
    s.parse::<u64>().ok()
}

fn bad_rv(s: &str) -> Response<Body> {
    error(
        400,
        "BadRequest",
        &format!("invalid resource version {s:?}"),
        None,
    )
}

/// The continue token: `<list resource version>.<namespace>/<name>` of the
/// last item returned. Opaque to clients.
fn continue_token(rv: u64, key: &(String, String)) -> String {
    format!("{rv}.{}/{}", key.0, key.1)
}

fn parse_continue(t: &str) -> Option<(u64, (String, String))> {
    let (rv, rest) = t.split_once('.')?;
    let (ns, name) = rest.split_once('/')?;
    Some((rv.parse().ok()?, (ns.to_owned(), name.to_owned())))
}

fn list(
    shared: &Shared,
    ns: Option<&str>,
    sel: &Selector,
    q: &Query,
    as_table: bool,
) -> Response<Body> {
    let store = shared.store();
    let limit = match q.get("limit").map(str::parse::<usize>) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return error(400, "BadRequest", "invalid limit", None),
    };
    let rv_param = q.get("resourceVersion").unwrap_or("");
    let rv_match = q.get("resourceVersionMatch").unwrap_or("");
    let (list_rv, after) = if let Some(token) = q.get("continue").filter(|t| !t.is_empty()) {
        let Some((rv, key)) = parse_continue(token) else {
            return error(400, "BadRequest", "invalid continue token", None);
        };
        if rv < store.compacted {
            return error(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                None,
            );
        }
        (rv, Some(key))
    } else {
        if !rv_param.is_empty() && rv_param != "0" {
            let Some(asked) = parse_rv(rv_param) else {
                return bad_rv(rv_param);
            };
            match rv_match {
                "Exact" if asked != store.rv => {
                    return error(
                        410,
                        "Expired",
                        &format!("too old resource version: {asked} ({})", store.rv),
                        None,
                    );
                }
                _ if asked > store.rv => {
                    return error(
                        504,
                        "Timeout",
                        &format!("Too large resource version: {asked}, current: {}", store.rv),
                        Some(
                            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                        ),
                    );
                }
                _ => {}
            }
        } else if rv_match == "Exact" {
            return error(
                400,
                "BadRequest",
                "resourceVersionMatch \"Exact\" requires a resourceVersion",
                None,
            );
        }
        (store.rv, None)
    };
    let mut items = Vec::new();
    let mut last_key = None;
    let mut remaining = 0usize;
    for (k, p) in store.select(ns, sel, after.as_ref()) {
        if limit.is_some_and(|l| items.len() >= l) {
            remaining += 1;
            continue;
        }
        items.push(p.clone());
        last_key = Some(k.clone());
    }
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0
        && let Some(k) = &last_key
    {
        metadata["continue"] = json!(continue_token(list_rv, k));
        metadata["remainingItemCount"] = json!(remaining);
    }
    drop(store);
    if as_table {
        return json_response(StatusCode::OK, &table(&items, Some(metadata)));
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": items}),
    )
}

/// A `meta.k8s.io/v1` Table, as `kubectl get` asks for.
fn table(items: &[Value], metadata: Option<Value>) -> Value {
    let col = |name: &str, ty: &str, format: &str, desc: &str, prio: u8| json!({"name": name, "type": ty, "format": format, "description": desc, "priority": prio});
    let rows: Vec<Value> = items
        .iter()
        .map(|p| {
            let s = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).unwrap_or("").to_owned();
            let ready = p
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                })
                .and_then(|c| c.get("status").and_then(Value::as_str))
                == Some("True");
            let containers = p
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready_col = format!("{}/{}", if ready { containers } else { 0 }, containers);
            let mut phase = s("/status/phase");
            if p.pointer("/metadata/deletionTimestamp").is_some() {
                phase = "Terminating".into();
            }
            let meta = p.get("metadata").cloned().unwrap_or_else(|| json!({}));
            json!({
                "cells": [s("/metadata/name"), ready_col, phase, 0, s("/metadata/creationTimestamp"), s("/status/podIP"), s("/spec/nodeName")],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata.unwrap_or_else(|| json!({})),
        "columnDefinitions": [
            col("Name", "string", "name", "Name of the pod", 0),
            col("Ready", "string", "", "Ready containers / containers", 0),
            col("Status", "string", "", "The pod's phase, or Terminating", 0),
            col("Restarts", "integer", "", "Container restarts (always 0 in the fake)", 0),
            col("Created", "string", "", "creationTimestamp", 0),
            col("IP", "string", "", "status.podIP", 1),
            col("Node", "string", "", "spec.nodeName", 1),
        ],
        "rows": rows,
    })
}

// ---------- watch ----------

struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Cursor {
    shared: Arc<Shared>,
    ns: Option<String>,
    sel: Selector,
    rv: u64,
    pending: VecDeque<Bytes>,
    done: bool,
    changed: watch::Receiver<u64>,
    dropped: watch::Receiver<u64>,
    bookmark_now: watch::Receiver<u64>,
    stall: watch::Receiver<bool>,
    bookmarks: bool,
    next_bookmark: Instant,
    bookmark_interval: Duration,
    deadline: Instant,
    _open: OpenWatch,
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": "Pod", "apiVersion": "v1", "metadata": meta}),
    )
}

impl Cursor {
    fn in_scope(&self, ns: &str, obj: &Value) -> bool {
        self.ns.as_deref().is_none_or(|n| n == ns) && self.sel.matches(obj)
    }

    /// Queues a `BOOKMARK` at the latest resource version, after the
    /// changes up to it (a bookmark promises that nothing before its
    /// version is left to send).
    fn bookmark(&mut self) {
        if self.catch_up() {
            self.shared.bookmarks_sent.fetch_add(1, Ordering::Relaxed);
            self.pending.push_back(bookmark(self.rv, false));
        }
    }

    /// Queues the changes after `self.rv`; false when the watch must end.
    fn catch_up(&mut self) -> bool {
        let store = self.shared.store();
        let Some(entries) = store.history_since(self.rv) else {
            let msg = format!("too old resource version: {} ({})", self.rv, store.rv);
            self.pending
                .push_back(event_line("ERROR", &status(410, "Expired", &msg, None)));
            self.done = true;
            return false;
        };
        let mut lines = Vec::new();
        for e in entries {
            let was = e
                .old
                .as_ref()
                .is_some_and(|o| self.in_scope(&e.namespace, o));
            let is = e.change != Change::Deleted && self.in_scope(&e.namespace, &e.new);
            let kind = match (was, is) {
                (false, true) => "ADDED",
                (true, true) => "MODIFIED",
                (true, false) => "DELETED",
                (false, false) => continue,
            };
            lines.push(event_line(kind, &e.new));
        }
        self.rv = store.rv;
        drop(store);
        self.pending.extend(lines);
        true
    }
}

/// The longest `timeoutSeconds` honoured (larger values are capped): a
/// year.
const MAX_WATCH_TIMEOUT_S: u64 = 365 * 24 * 3600;

fn watch(
    shared: &Arc<Shared>,
    ns: Option<&str>,
    sel: Selector,
    q: &Query,
    dropped: watch::Receiver<u64>,
) -> Response<Body> {
    let rv_param = q.get("resourceVersion").unwrap_or("");
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.flag("sendInitialEvents");
    let timeout = match q.get("timeoutSeconds").map(str::parse::<u64>) {
        None => Duration::from_secs(1800),
        // Capped: `Instant + Duration` would overflow (and panic) for
        // absurd values such as u64::MAX.
        Some(Ok(s)) => Duration::from_secs(s.min(MAX_WATCH_TIMEOUT_S)),
        Some(Err(_)) => return error(400, "BadRequest", "invalid timeoutSeconds", None),
    };
    if send_initial && q.get("resourceVersionMatch") != Some("NotOlderThan") {
        return error(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            None,
        );
    }
    shared.open_watches.fetch_add(1, Ordering::Relaxed);
    let open = OpenWatch(shared.clone());
    let mut cursor = Cursor {
        shared: shared.clone(),
        ns: ns.map(str::to_owned),
        sel,
        rv: 0,
        pending: VecDeque::new(),
        done: false,
        changed: shared.changed.subscribe(),
        dropped,
        bookmark_now: shared.bookmark_now.subscribe(),
        stall: shared.stall.subscribe(),
        bookmarks,
        next_bookmark: Instant::now() + shared.bookmark_interval,
        bookmark_interval: shared.bookmark_interval,
        deadline: Instant::now() + timeout,
        _open: open,
    };
    let from_state = rv_param.is_empty() || rv_param == "0" || send_initial;
    if from_state {
        // "Get state and start at most recent": synthetic ADDED events for
        // the current objects, then the changes after them.
        let store = shared.store();
        let lines: Vec<Bytes> = store
            .select(cursor.ns.as_deref(), &cursor.sel, None)
            .map(|(_, p)| event_line("ADDED", p))
            .collect();
        cursor.rv = store.rv;
        drop(store);
        cursor.pending.extend(lines);
        if send_initial && bookmarks {
            cursor.pending.push_back(bookmark(cursor.rv, true));
        }
    } else {
        match parse_rv(rv_param) {
            Some(rv) => cursor.rv = rv.min(shared.store().rv),
            None => return bad_rv(rv_param),
        }
        cursor.catch_up();
    }
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if *c.stall.borrow_and_update() {
                // Stalled: nothing at all, not even the end at the timeout;
                // only `drop_watches` (or the connection closing) ends it.
                tokio::select! {
                    r = c.stall.changed() => if r.is_err() { return None },
                    _ = c.dropped.changed() => return None,
                }
                continue;
            }
            if let Some(line) = c.pending.pop_front() {
                return Some((line, c));
            }
            if c.done {
                return None;
            }
            if !c.catch_up() {
                continue;
            }
            if !c.pending.is_empty() {
                continue;
            }
            tokio::select! {
                r = c.changed.changed() => if r.is_err() { return None },
                _ = c.dropped.changed() => return None,
                r = c.stall.changed() => if r.is_err() { return None },
                _ = c.bookmark_now.changed(), if c.bookmarks => c.bookmark(),
                _ = tokio::time::sleep_until(c.next_bookmark), if c.bookmarks => {
                    c.next_bookmark = Instant::now() + c.bookmark_interval;
                    c.bookmark();
                }
                _ = tokio::time::sleep_until(c.deadline) => return None,
            }
        }
    });
    let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut r = Response::new(BodyExt::boxed_unsync(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
