//! The node's signals: SIGTERM and SIGINT ask for the graceful leave (a
//! second one during the leave exits at once), SIGHUP reloads the
//! providers. Registered when the node starts, so that a signal during the
//! start is not the default action (death) but waits for the start to end.

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    /// SIGTERM or SIGINT: leave.
    Leave(&'static str),
    /// SIGHUP: reload.
    Reload,
}

/// The registered signal streams.
pub(crate) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers (`None`, with a warning, if the platform
    /// refuses).
    pub(crate) fn register() -> Option<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(int), Ok(hup)) => Some(Self { term, int, hup }),
                _ => {
                    tracing::warn!("cannot listen for signals; leave with POST /cluster/leave");
                    None
                }
            }
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// The next signal.
    pub(crate) async fn next(&mut self) -> Asked {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Asked::Leave("SIGTERM"),
                _ = self.int.recv() => Asked::Leave("SIGINT"),
                _ = self.hup.recv() => Asked::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            std::future::pending().await
        }
    }
}

/// A second SIGTERM / SIGINT during the leave: exit now.
pub(crate) fn second_signal(signal: &str) -> ! {
    tracing::warn!(signal, "second signal: exiting without finishing the leave");
    std::process::exit(1);
}
