//! A tower layer on the client that records when the API server last
//! answered.
//!
//! `kube_runtime::watcher` hides most of what happens on the wire: it
//! restarts a watch from its last resource version without yielding
//! anything, gives up on an idle watch without an error, and does not
//! surface bookmarks. The provider needs to know more than its events tell:
//!
//! - **accepted**: a watch request answered with a 2xx status. After a
//!   failure this is how the provider learns the API is back although
//!   nothing changed.
//! - **answered**: a 2xx answer to a list, every chunk of a watch body
//!   (events and bookmarks) and the clean end of a watch body (the server
//!   ended it at its `timeoutSeconds`). These prove that the server is
//!   alive; response headers alone do not (a stuck server or proxy can
//!   accept a watch and then send nothing).
//!
//! Each signal is the [`Instant`] it was last seen, in a `watch` channel so
//! that the provider's pumps can wait for it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{Layer, Service};

/// The signals of life of one client, shared by its streams.
pub(crate) struct Liveness {
    /// When a watch request was last accepted (2xx).
    pub accepted: watch::Sender<Instant>,
    /// When the API last sent a body: a 2xx list answer, a watch chunk or
    /// the clean end of a watch.
    pub answered: watch::Sender<Instant>,
}

impl Liveness {
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            accepted: watch::channel(now).0,
            answered: watch::channel(now).0,
        }
    }

    fn answer(&self) {
        self.answered.send_replace(Instant::now());
    }
}

/// Adds [`Probe`] to a service stack.
#[derive(Clone)]
pub(crate) struct ProbeLayer(pub Arc<Liveness>);

impl<S> Layer<S> for ProbeLayer {
    type Service = Probe<S>;
    fn layer(&self, inner: S) -> Probe<S> {
        Probe {
            inner,
            live: self.0.clone(),
        }
    }
}

/// Records the [`Liveness`] signals of the requests it passes on.
pub(crate) struct Probe<S> {
    inner: S,
    live: Arc<Liveness>,
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// A response body that records each chunk and its clean end (watches
/// only; other bodies pass through untouched).
pub(crate) struct ProbedBody<B> {
    inner: B,
    live: Option<Arc<Liveness>>,
}

impl<B: Body + Unpin> Body for ProbedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(live) = &self.live {
            match &r {
                Poll::Ready(Some(Ok(_)) | None) => live.answer(),
                Poll::Ready(Some(Err(_))) | Poll::Pending => {}
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Probe<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Body + Unpin + Send + 'static,
{
    type Response = Response<ProbedBody<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let watching = is_watch(req.uri().query());
        let is_get = req.method() == http::Method::GET;
        let fut = self.inner.call(req);
        let live = self.live.clone();
        async move {
            let r = fut.await?;
            let ok = r.status().is_success();
            let mut body_probe = None;
            if ok && watching {
                live.accepted.send_replace(Instant::now());
                body_probe = Some(live);
            } else if ok && is_get {
                // A list (or a get) answered: the server is alive.
                live.answer();
            }
            Ok(r.map(|inner| ProbedBody {
                inner,
                live: body_probe,
            }))
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
