//! Kubernetes client and watcher errors as stable [`ProviderError`]s.
//!
//! | failure | variant |
//! |---|---|
//! | 401 | `Auth` ("credentials rejected") |
//! | 403 | `Auth`, naming the missing permission: `list pods in namespace "x"` |
//! | connection refused, DNS, TLS, timeouts, 429 / 5xx answers | `Connectivity` (a refused TLS handshake with its `[tls.*]` reason) |
//! | a watch that breaks mid-stream, 410 outside a watch | `Stream` |
//! | undecodable answers, other statuses | `Protocol` |
//! | a 410 `Expired` event inside a watch | none: the watcher relists at once (a normal event of a long-lived watch) |

use cluster_core::ProviderError;
use kube::runtime::watcher;

/// Maps a client error of the request `verb` (`list`, `watch`, `patch`...)
/// on pods in `namespace`.
pub fn from_kube(e: &kube::Error, verb: &str, namespace: &str) -> ProviderError {
    match e {
        kube::Error::Api(s) => from_status(s.code, &s.reason, &s.message, verb, namespace),
        kube::Error::SerdeError(e) => {
            ProviderError::Protocol(format!("undecodable answer to {verb} pods: {e}"))
        }
        kube::Error::FromUtf8(_) | kube::Error::LinesCodecMaxLineLengthExceeded => {
            ProviderError::Protocol(format!("malformed answer to {verb} pods: {e}"))
        }
        kube::Error::ReadEvents(e) => ProviderError::Stream(format!(
            "reading the watch of pods in namespace {namespace:?}: {e}"
        )),
        kube::Error::Auth(e) => ProviderError::Auth(format!("client credentials: {e}")),
        kube::Error::InferConfig(_) | kube::Error::InferKubeconfig(_) => ProviderError::Config {
            field: "kubeconfig".into(),
            reason: e.to_string(),
        },
        other => {
            let msg = format!(
                "{verb} pods in namespace {namespace:?}: {}",
                provider_tls::chain_text(other)
            );
            match provider_tls::TlsFailure::of(other) {
                // A refused handshake says why (issue 14).
                Some(f) => {
                    ProviderError::Connectivity(provider_tls::message(f, "the API server", &msg))
                }
                None => ProviderError::Connectivity(msg),
            }
        }
    }
}

fn from_status(code: u16, reason: &str, message: &str, verb: &str, ns: &str) -> ProviderError {
    match code {
        401 => ProviderError::Auth(format!(
            "credentials rejected by the API server (401 {reason}): {message}"
        )),
        403 => ProviderError::Auth(format!(
            "missing permission: {verb} pods in namespace {ns:?} (API server: {message})"
        )),
        410 => ProviderError::Stream(format!(
            "resource version expired (410 {reason}): {message}"
        )),
        429 | 500..=599 => ProviderError::Connectivity(format!(
            "API server answered {code} {reason} to {verb} pods: {message}"
        )),
        _ => ProviderError::Protocol(format!(
            "unexpected answer {code} {reason} to {verb} pods in namespace {ns:?}: {message}"
        )),
    }
}

/// Maps a watcher error; `None` for what the watcher recovers from by
/// itself without a gap (an expired resource version: it relists now).
pub fn from_watcher(e: &watcher::Error, namespace: &str) -> Option<ProviderError> {
    Some(match e {
        watcher::Error::InitialListFailed(k) => from_kube(k, "list", namespace),
        watcher::Error::WatchStartFailed(k) => from_kube(k, "watch", namespace),
        watcher::Error::WatchFailed(k) => match from_kube(k, "watch", namespace) {
            ProviderError::Connectivity(m) => ProviderError::Stream(m),
            other => other,
        },
        watcher::Error::WatchError(s) if s.code == 410 => return None,
        watcher::Error::WatchError(s) if s.code == 403 || s.code == 401 => {
            from_status(s.code, &s.reason, &s.message, "watch", namespace)
        }
        watcher::Error::WatchError(s) => ProviderError::Stream(format!(
            "the API server ended the watch with {} {}: {}",
            s.code, s.reason, s.message
        )),
        watcher::Error::NoResourceVersion => ProviderError::Protocol(
            "the API server sent a pod without metadata.resourceVersion".into(),
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            Status::failure(
                "pods is forbidden: User \"u\" cannot list resource \"pods\"",
                reason,
            )
            .with_code(code)
            .boxed(),
        )
    }

    /// R5.5: a 403 is `provider.auth` and names the missing permission.
    #[test]
    fn r5_5_forbidden_names_the_missing_permission() {
        let e = from_watcher(
            &watcher::Error::InitialListFailed(api(403, "Forbidden")),
            "apps",
        )
        .unwrap();
        assert_eq!(e.code(), "provider.auth");
        assert!(
            e.to_string().contains("list pods in namespace \"apps\""),
            "{e}"
        );
        let e = from_watcher(
            &watcher::Error::WatchStartFailed(api(403, "Forbidden")),
            "apps",
        )
        .unwrap();
        assert!(e.to_string().contains("watch pods"), "{e}");
        assert_eq!(
            from_kube(&api(401, "Unauthorized"), "list", "a").code(),
            "provider.auth"
        );
    }

    /// R5.5: overload is connectivity, odd statuses are protocol, and an
    /// in-watch 410 is not an error (the watcher relists).
    #[test]
    fn r5_5_statuses_map_to_stable_codes() {
        assert_eq!(
            from_kube(&api(503, "ServiceUnavailable"), "watch", "a").code(),
            "provider.connectivity"
        );
        assert_eq!(
            from_kube(&api(418, "Teapot"), "list", "a").code(),
            "provider.protocol"
        );
        let gone = Status::failure("too old resource version", "Expired")
            .with_code(410)
            .boxed();
        assert_eq!(from_watcher(&watcher::Error::WatchError(gone), "a"), None);
        let bad = serde_json::from_str::<u8>("x").unwrap_err();
        assert_eq!(
            from_kube(&kube::Error::SerdeError(bad), "list", "a").code(),
            "provider.protocol"
        );
        assert_eq!(
            from_watcher(&watcher::Error::NoResourceVersion, "a")
                .unwrap()
                .code(),
            "provider.protocol"
        );
    }
}
