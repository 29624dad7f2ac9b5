//! The HTTP layer: routing, ACL, request decoding and blocking queries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::agent::AgentState;
use crate::catalog::{ApiError, CheckDef, CheckStatus, ServiceDef};
use crate::{Access, lock};

/// The request is dropped: the connection closes without an answer.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake-consul: connection dropped (fault)")
    }
}

impl std::error::Error for Dropped {}

type Resp = Response<Full<Bytes>>;

const MAX_BODY: usize = 1 << 20;
const MAX_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

fn text(status: u16, body: impl Into<String>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_resp(v: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn err(e: ApiError) -> Resp {
    text(e.status, e.message)
}

/// The label of an endpoint in the request counters: method and path
/// without the trailing id (`PUT /v1/agent/check/pass`).
pub(crate) fn endpoint_label(method: &Method, path: &str) -> String {
    const PREFIXES: &[&str] = &[
        "/v1/agent/service/register",
        "/v1/agent/service/deregister",
        "/v1/agent/check/pass",
        "/v1/agent/check/warn",
        "/v1/agent/check/fail",
        "/v1/agent/check/update",
        "/v1/health/service",
        "/v1/agent/services",
        "/v1/agent/checks",
        "/v1/agent/self",
        "/v1/status/leader",
    ];
    let p = PREFIXES
        .iter()
        .find(|p| path == **p || path.starts_with(&format!("{p}/")))
        .copied()
        .unwrap_or("other");
    format!("{method} {p}")
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn token(req: &Request<Incoming>, q: &BTreeMap<String, String>) -> Option<String> {
    if let Some(t) = req.headers().get("x-consul-token") {
        return t.to_str().ok().map(str::to_owned);
    }
    if let Some(a) = req.headers().get(AUTHORIZATION)
        && let Ok(a) = a.to_str()
        && let Some(t) = a.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_owned());
    }
    q.get("token").cloned()
}

/// The permission a request needs.
#[derive(Clone, Copy)]
enum Need {
    Read,
    Write,
}

fn authorize(
    agent: &AgentState,
    token: Option<&str>,
    need: Need,
    what: &str,
) -> Result<(), ApiError> {
    let acl = lock(&agent.shared.acl);
    let Some(acl) = acl.as_ref() else {
        return Ok(());
    };
    let access = match token.filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match acl.get(t) {
            Some(a) => Some(*a),
            None => return Err(ApiError::new(403, "ACL not found")),
        },
    };
    let ok = match (need, access) {
        (_, None) => false,
        (Need::Read, Some(_)) => true,
        (Need::Write, Some(a)) => a == Access::Write,
    };
    // (`AgentRead` passes agent reads here; health and catalog reads use
    // `filtered` instead, which hides what it may not see.)
    if ok {
        Ok(())
    } else {
        let who = if access.is_none() {
            "anonymous token"
        } else {
            "token"
        };
        Err(ApiError::new(
            403,
            format!("Permission denied: {who} lacks permission '{what}'"),
        ))
    }
}

/// For reads that Consul filters by ACL (health, catalog): an unknown token
/// is refused (403 `ACL not found`); a token that may not read services and
/// nodes (anonymous under default deny, or `agent:read` only) gets an empty
/// result marked `X-Consul-Results-Filtered-By-ACLs: true`.
fn filtered(agent: &AgentState, token: Option<&str>) -> Result<bool, ApiError> {
    let acl = lock(&agent.shared.acl);
    let Some(acl) = acl.as_ref() else {
        return Ok(false);
    };
    match token.filter(|t| !t.is_empty()) {
        None => Ok(true),
        Some(t) => match acl.get(t) {
            None => Err(ApiError::new(403, "ACL not found")),
            Some(Access::AgentRead) => Ok(true),
            Some(_) => Ok(false),
        },
    }
}

/// Decodes a Go duration as Consul writes them ("10s", "1m30s", "100ms").
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    humantime::parse_duration(s).ok()
}

/// Looks a key up the way Go's JSON decoding and Consul's decode hooks do:
/// case-insensitively, `snake_case` accepted for `CamelCase`.
fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    let norm = |k: &str| k.replace('_', "").to_ascii_lowercase();
    let want = norm(name);
    obj.iter()
        .find(|(k, _)| norm(k) == want)
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn str_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::new(
            400,
            format!("Request decode failed: {name} must be a string"),
        )),
    }
}

fn duration_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<Duration>, ApiError> {
    match str_field(obj, name)? {
        None => Ok(None),
        Some(s) => parse_duration(&s).map(Some).ok_or_else(|| {
            ApiError::new(
                400,
                format!("Request decode failed: {name}: invalid duration {s:?}"),
            )
        }),
    }
}

fn decode_check(v: &Value) -> Result<CheckDef, ApiError> {
    let Value::Object(o) = v else {
        return Err(ApiError::new(
            400,
            "Request decode failed: Check must be an object",
        ));
    };
    for unsupported in [
        "HTTP",
        "TCP",
        "Args",
        "ScriptArgs",
        "GRPC",
        "AliasService",
        "H2PING",
        "UDP",
    ] {
        if field(o, unsupported).is_some() {
            return Err(ApiError::new(
                400,
                format!("fake-consul models TTL checks only ({unsupported} given)"),
            ));
        }
    }
    let ttl = duration_field(o, "TTL")?
        .ok_or_else(|| ApiError::new(400, "Invalid check: TTL must be > 0 for TTL checks"))?;
    if ttl.is_zero() {
        return Err(ApiError::new(
            400,
            "Invalid check: TTL must be > 0 for TTL checks",
        ));
    }
    let status = match str_field(o, "Status")? {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) => Some(CheckStatus::parse(&s).ok_or_else(|| {
            ApiError::new(400, format!("Invalid check: status {s:?} is not valid"))
        })?),
    };
    Ok(CheckDef {
        check_id: str_field(o, "CheckID")?
            .or(str_field(o, "ID")?)
            .filter(|s| !s.is_empty()),
        name: str_field(o, "Name")?.filter(|s| !s.is_empty()),
        ttl,
        deregister_after: duration_field(o, "DeregisterCriticalServiceAfter")?
            .filter(|d| !d.is_zero()),
        status,
        notes: str_field(o, "Notes")?.unwrap_or_default(),
    })
}

fn valid_meta(meta: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if meta.len() > 64 {
        return Err(ApiError::new(
            400,
            "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs",
        ));
    }
    for (k, v) in meta {
        if k.is_empty()
            || k.len() > 128
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ApiError::new(
                400,
                format!("Invalid Service Meta: Key contains invalid characters: {k:?}"),
            ));
        }
        if k.starts_with("consul-") {
            return Err(ApiError::new(
                400,
                format!("Invalid Service Meta: Key prefix 'consul-' is reserved: {k:?}"),
            ));
        }
        if v.len() > 512 {
            return Err(ApiError::new(
                400,
                format!("Invalid Service Meta: Value is too long (limit: 512 characters): {k:?}"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn decode_service(body: &[u8]) -> Result<ServiceDef, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, format!("Request decode failed: {e}")))?;
    let Value::Object(o) = v else {
        return Err(ApiError::new(
            400,
            "Request decode failed: expected an object",
        ));
    };
    let name = str_field(&o, "Name")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::new(400, "Missing service name"))?;
    let id = str_field(&o, "ID")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.clone());
    let port = match field(&o, "Port") {
        None => 0,
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| ApiError::new(400, "Request decode failed: Port must be 0..65535"))?,
    };
    let tags = match field(&o, "Tags") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::new(400, "Request decode failed: Tags must be strings"))?,
        Some(_) => {
            return Err(ApiError::new(
                400,
                "Request decode failed: Tags must be a list",
            ));
        }
    };
    let meta = match field(&o, "Meta") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect::<Option<BTreeMap<_, _>>>()
            .ok_or_else(|| {
                ApiError::new(400, "Request decode failed: Meta values must be strings")
            })?,
        Some(_) => {
            return Err(ApiError::new(
                400,
                "Request decode failed: Meta must be an object",
            ));
        }
    };
    valid_meta(&meta)?;
    let mut checks = Vec::new();
    if let Some(c) = field(&o, "Check") {
        checks.push(decode_check(c)?);
    }
    match field(&o, "Checks") {
        None => {}
        Some(Value::Array(a)) => {
            for c in a {
                checks.push(decode_check(c)?);
            }
        }
        Some(_) => {
            return Err(ApiError::new(
                400,
                "Request decode failed: Checks must be a list",
            ));
        }
    }
    Ok(ServiceDef {
        id,
        name,
        tags,
        address: str_field(&o, "Address")?.unwrap_or_default(),
        port,
        meta,
        checks,
    })
}

fn last_segment(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
    if rest.is_empty() {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(rest)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

async fn body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::new(400, format!("Request body unreadable: {e}")))
}

/// Serves one request.
pub(crate) async fn serve(agent: Arc<AgentState>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    agent.count(endpoint_label(&method, &path));
    // Faults, in the order a request meets them.
    let delay = *lock(&agent.faults.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if take_one(&agent.faults.drop_next) {
        return Err(Dropped);
    }
    if take_one(&agent.faults.fail_next) {
        return Ok(text(500, "fake-consul: injected failure"));
    }
    Ok(route(&agent, req, &method, &path).await.unwrap_or_else(err))
}

fn take_one(counter: &std::sync::atomic::AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn route(
    agent: &Arc<AgentState>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Resp, ApiError> {
    let q = query(&req);
    let tok = token(&req, &q);
    let tok = tok.as_deref();
    let node = agent.node.as_str();
    let put_only = |m: &Method| {
        if *m == Method::PUT {
            Ok(())
        } else {
            Err(ApiError::new(405, format!("method {m} not allowed")))
        }
    };
    let get_only = |m: &Method| {
        if *m == Method::GET {
            Ok(())
        } else {
            Err(ApiError::new(405, format!("method {m} not allowed")))
        }
    };
    if path == "/v1/status/leader" {
        get_only(method)?;
        return Ok(json_resp(&json!("127.0.0.1:8300")));
    }
    if path == "/v1/agent/self" {
        get_only(method)?;
        authorize(agent, tok, Need::Read, &format!("agent:read on \"{node}\""))?;
        let dc = lock(&agent.shared.catalog).datacenter.clone();
        return Ok(json_resp(&json!({
            "Config": {
                "Datacenter": dc,
                "NodeName": node,
                "NodeID": agent.node_id,
                "Server": true,
                "Revision": "fake",
                "Version": "1.20.0-fake",
            },
            "Member": {"Name": node, "Addr": "127.0.0.1", "Port": 8301, "Status": 1},
            "Meta": {},
        })));
    }
    if path == "/v1/agent/service/register" {
        put_only(method)?;
        let b = body(req).await?;
        let def = decode_service(&b)?;
        authorize(
            agent,
            tok,
            Need::Write,
            &format!("service:write on \"{}\"", def.name),
        )?;
        lock(&agent.shared.catalog).register(node, def, Instant::now())?;
        agent.shared.changed();
        return Ok(text(200, ""));
    }
    if let Some(id) = last_segment(path, "/v1/agent/service/deregister") {
        put_only(method)?;
        let name = {
            let c = lock(&agent.shared.catalog);
            c.nodes
                .get(node)
                .and_then(|n| n.services.get(&id))
                .map(|s| s.name.clone())
        };
        authorize(
            agent,
            tok,
            Need::Write,
            &format!("service:write on \"{}\"", name.as_deref().unwrap_or(&id)),
        )?;
        lock(&agent.shared.catalog).deregister(node, &id)?;
        agent.shared.changed();
        return Ok(text(200, ""));
    }
    for (verb, status) in [
        ("pass", Some(CheckStatus::Passing)),
        ("warn", Some(CheckStatus::Warning)),
        ("fail", Some(CheckStatus::Critical)),
        ("update", None),
    ] {
        let Some(check_id) = last_segment(path, &format!("/v1/agent/check/{verb}")) else {
            continue;
        };
        put_only(method)?;
        let (status, output) = match status {
            Some(s) => (s, q.get("note").cloned().unwrap_or_default()),
            None => {
                let b = body(req).await?;
                let v: Value = serde_json::from_slice(&b)
                    .map_err(|e| ApiError::new(400, format!("Request decode failed: {e}")))?;
                let o = v.as_object().cloned().unwrap_or_default();
                let s = str_field(&o, "Status")?.unwrap_or_default();
                let s = CheckStatus::parse(&s)
                    .ok_or_else(|| ApiError::new(400, format!("Invalid check status: {s:?}")))?;
                (s, str_field(&o, "Output")?.unwrap_or_default())
            }
        };
        let svc = lock(&agent.shared.catalog).check_service_name(node, &check_id);
        authorize(
            agent,
            tok,
            Need::Write,
            &format!(
                "service:write on \"{}\"",
                svc.as_deref().unwrap_or(&check_id)
            ),
        )?;
        if agent.faults.refuse_checks.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                500,
                "fake-consul: check updates refused (fault)",
            ));
        }
        lock(&agent.shared.catalog).update_ttl(node, &check_id, status, output, Instant::now())?;
        agent.shared.changed();
        return Ok(text(200, ""));
    }
    if path == "/v1/agent/services" || path == "/v1/agent/checks" {
        get_only(method)?;
        authorize(agent, tok, Need::Read, "service:read")?;
        let c = lock(&agent.shared.catalog);
        let v = if path.ends_with("services") {
            c.agent_services(node)
        } else {
            c.agent_checks(node)
        };
        return Ok(json_resp(&v));
    }
    if let Some(name) = last_segment(path, "/v1/health/service") {
        get_only(method)?;
        let hidden = filtered(agent, tok)?;
        return health_service(agent, &name, &q, hidden).await;
    }
    Err(ApiError::new(404, "404 page not found"))
}

/// `GET /v1/health/service/:name` with blocking-query semantics.
async fn health_service(
    agent: &Arc<AgentState>,
    name: &str,
    q: &BTreeMap<String, String>,
    hidden: bool,
) -> Result<Resp, ApiError> {
    let passing = q
        .get("passing")
        .is_some_and(|v| v.is_empty() || v == "true" || v == "1");
    let tag = q.get("tag").map(String::as_str);
    let min_index = match q.get("index") {
        None => 0,
        Some(i) => i
            .parse::<u64>()
            .map_err(|_| ApiError::new(400, "Invalid index"))?,
    };
    let wait = match q.get("wait") {
        None => DEFAULT_WAIT,
        Some(w) => parse_duration(w)
            .ok_or_else(|| ApiError::new(400, "Invalid wait time"))?
            .min(MAX_WAIT),
    };
    let mut rx = agent.shared.notify.subscribe();
    if min_index > 0 {
        // Like Consul: up to wait/16 of extra random time spreads wake-ups.
        let jitter_ms = u64::try_from(wait.as_millis() / 16).unwrap_or(0);
        let extra = Duration::from_millis(fastrand::u64(0..=jitter_ms));
        let deadline = Instant::now() + wait + extra;
        agent.blocking.fetch_add(1, Ordering::SeqCst);
        let _guard = Decrement(&agent.blocking);
        loop {
            rx.borrow_and_update();
            if lock(&agent.shared.catalog).health_index(name) > min_index {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The wait is over, or the cluster is gone.
                Err(_) | Ok(Err(_)) => break,
            }
        }
    }
    let (index, entries) = {
        let c = lock(&agent.shared.catalog);
        let entries = if hidden {
            Vec::new()
        } else {
            c.health_entries(name, passing, tag)
        };
        (c.health_index(name), entries)
    };
    let mut r = if take_one(&agent.faults.malformed_next) {
        let mut r = Response::new(Full::new(Bytes::from_static(b"[{\"Node\": {\"Node\": ")));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    } else {
        json_resp(&Value::Array(entries))
    };
    let h = r.headers_mut();
    h.insert("x-consul-index", HeaderValue::from(index));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    if hidden {
        h.insert(
            "x-consul-results-filtered-by-acls",
            HeaderValue::from_static("true"),
        );
    }
    Ok(r)
}

struct Decrement<'a>(&'a std::sync::atomic::AtomicU64);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
