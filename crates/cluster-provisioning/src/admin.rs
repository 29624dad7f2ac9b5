//! The admin HTTP surface of a node (N2), on its own address (default
//! `127.0.0.1:8558`), built on axum.
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /health/live` | 200 when the actor system answers (provisioning replies within 1 s), else 503 |
//! | `GET /health/ready` | 200 once this node has a topology from a healthy provider that lists itself, Remoting serves and it is not draining; else 503 with the reason ([`crate::view::readiness`]: it never waits for other members) |
//! | `GET /cluster/members` | JSON [`MembersView`](crate::view::MembersView) |
//! | `GET /cluster/providers` | JSON [`ProvidersView`](crate::view::ProvidersView) |
//! | `GET /metrics` | Prometheus text (404 when the application installed its own recorder) |
//! | `POST /cluster/leave` | 202: the graceful leave starts |
//! | `POST /cluster/reload` | 200 with the number of providers, or 400 with the one-line reason (the running set stays) |
//! | `POST /grains/probe-counter/{id}` | only with `[diagnostics] probe_counter = true` (else 404): JSON [`ProbeAnswer`](crate::probe::ProbeAnswer) ([`crate::probe`]) |
//!
//! The `POST`s need `Authorization: Bearer <admin.token>` whenever a
//! token is configured; a node refuses to start with the admin port off
//! loopback and no token. No handler reads a request body; anything else is
//! a 404 or 405. The server bounds what a client can hold: at most
//! [`MAX_CONNECTIONS`] connections (more are closed at once), request
//! headers within [`HEADER_TIMEOUT`], a connection at most
//! [`CONNECTION_LIFETIME`].
//!
//! In the `cluster-node` program, `POST /cluster/leave` ends the process
//! (exit 0) once the node has left; under Kubernetes the container is then
//! restarted and the node joins again with a new incarnation.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::node::Node;
use crate::view;

/// The router of the admin surface for `node`.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/cluster/members", get(members))
        .route("/cluster/providers", get(providers))
        .route("/metrics", get(metrics))
        .route("/cluster/leave", post(leave))
        .route("/cluster/reload", post(reload))
        .route("/grains/probe-counter/{id}", post(crate::probe::route))
        .with_state(node)
}

/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (keep-alive included) is closed after this long.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Serves the admin surface on `listener` until the node shuts down.
pub async fn serve(listener: tokio::net::TcpListener, node: Node) {
    let mut stop = node.admin_stopped();
    let app = router(node);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off a little.
                tracing::debug!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("admin connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

const ASK: Duration = Duration::from_secs(1);

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

async fn live(State(node): State<Node>) -> Response {
    // While leaving, provisioning is busy deregistering (one long turn of
    // its mailbox): the process is alive and says so.
    if node.is_leaving() {
        return text(StatusCode::OK, "ok (leaving)\n");
    }
    match tokio::time::timeout(ASK, node.cluster().topology()).await {
        Ok(Ok(_)) => text(StatusCode::OK, "ok\n"),
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the actor system did not answer within 1s\n",
        ),
    }
}

async fn ready(State(node): State<Node>) -> Response {
    match node.readiness().await {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn members(State(node): State<Node>) -> Response {
    let c = node.cluster();
    let p = c.provisioning();
    let answers = tokio::time::timeout(ASK, async {
        let t = c.topology().await?;
        let statuses = p.providers().await?;
        let mut snapshots = Vec::with_capacity(statuses.len());
        for s in &statuses {
            snapshots.push((s.id.to_string(), p.last_snapshot(&s.id).await?));
        }
        Ok::<_, cluster_core::ProvisioningError>((t, snapshots))
    })
    .await;
    match answers {
        Ok(Ok((t, snapshots))) => axum::Json(view::members_view(
            c.name(),
            c.local(),
            &t,
            &snapshots,
            node.failovers(),
        ))
        .into_response(),
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "provisioning did not answer\n",
        ),
    }
}

async fn providers(State(node): State<Node>) -> Response {
    let c = node.cluster();
    match tokio::time::timeout(ASK, c.provisioning().providers()).await {
        Ok(Ok(p)) => axum::Json(view::providers_view(
            c.local().node_id.as_str(),
            &p,
            node.failovers(),
        ))
        .into_response(),
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "provisioning did not answer\n",
        ),
    }
}

async fn metrics(State(node): State<Node>) -> Response {
    match node.prometheus() {
        Some(h) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => text(
            StatusCode::NOT_FOUND,
            "metrics go to the application's own recorder\n",
        ),
    }
}

/// Whether `headers` carry the admin token (always true without one).
pub(crate) fn authorized(node: &Node, headers: &HeaderMap) -> bool {
    let config = node.config();
    let Some(token) = config.admin.token.as_ref() else {
        return true;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
    else {
        return false;
    };
    // Compare without an early exit, so the time taken does not tell how
    // much of the token matched.
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

pub(crate) fn unauthorized() -> Response {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "a bearer token is required (admin.token)\n",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

async fn leave(State(node): State<Node>, headers: HeaderMap) -> Response {
    if !authorized(&node, &headers) {
        return unauthorized();
    }
    tracing::info!("leave requested over the admin port");
    node.request_leave();
    text(StatusCode::ACCEPTED, "leaving\n")
}

async fn reload(State(node): State<Node>, headers: HeaderMap) -> Response {
    if !authorized(&node, &headers) {
        return unauthorized();
    }
    match node.reload().await {
        Ok(n) => text(StatusCode::OK, format!("reloaded {n} providers\n")),
        Err(e) => {
            tracing::warn!(error = %e, "reload refused; the running providers stay");
            text(StatusCode::BAD_REQUEST, format!("{e}\n"))
        }
    }
}
