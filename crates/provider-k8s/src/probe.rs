//! A tower layer on the client that reports each watch request the API
//! server accepted (a 2xx answer to `?watch=true`).
//!
//! `kube_runtime::watcher` restarts a watch from its last resource version
//! without yielding anything when nothing changed, so after a failure the
//! provider could not otherwise tell that the API is answering again. The
//! provider counts a started watch as a sign of life and resumes its
//! keepalive snapshots.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Request, Response};
use tokio::sync::watch;
use tower::{Layer, Service};

/// Adds [`WatchStarted`] to a service stack.
#[derive(Clone)]
pub(crate) struct WatchStartedLayer(pub Arc<watch::Sender<u64>>);

impl<S> Layer<S> for WatchStartedLayer {
    type Service = WatchStarted<S>;
    fn layer(&self, inner: S) -> WatchStarted<S> {
        WatchStarted {
            inner,
            started: self.0.clone(),
        }
    }
}

/// Bumps `started` for every watch request answered with a 2xx status.
pub(crate) struct WatchStarted<S> {
    inner: S,
    started: Arc<watch::Sender<u64>>,
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for WatchStarted<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let watching = is_watch(req.uri().query());
        let fut = self.inner.call(req);
        if !watching {
            return fut.boxed();
        }
        let started = self.started.clone();
        async move {
            let r = fut.await;
            if r.as_ref().is_ok_and(|r| r.status().is_success()) {
                started.send_modify(|n| *n = n.wrapping_add(1));
            }
            r
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watch_requests_count() {
        assert!(is_watch(Some(
            "labelSelector=a%3Db&watch=true&timeoutSeconds=290"
        )));
        assert!(!is_watch(Some("limit=500")));
        assert!(!is_watch(None));
    }
}
