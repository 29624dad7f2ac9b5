//! The handshake: two pure state machines ([`Connector`], [`Acceptor`]) and
//! the async drivers that run them over a stream ([`connect_handshake`],
//! [`accept_handshake`]). The protocol is described in the
//! [module documentation](super#handshake).

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::codec::{DEFAULT_MAX_FRAME, read_frame, write_frame};
use super::error::{Refusal, WireError};
use super::message::{Frame, Hello, NONCE_LEN, Nonce, PROTOCOL_VERSION, ProbeInfo};

/// The default bound on a whole handshake: 5 seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Domain separation label at the start of every proof.
const DOMAIN: &[u8] = b"cluster-handshake/v1";
const ROLE_CONNECTOR: &[u8] = b"connector";
const ROLE_ACCEPTOR: &[u8] = b"acceptor";

/// How a node shakes hands: the cluster it belongs to, the optional shared
/// secret, the time bound and the frame limit. Both sides of a connection
/// must agree on the cluster and on whether there is a secret (and which).
///
/// `Debug` never prints the secret.
#[derive(Clone)]
pub struct HandshakeConfig {
    /// The cluster name a peer's Hello must carry.
    pub cluster: String,
    /// The shared secret both sides prove they hold (HMAC-SHA256 key);
    /// `None`: no authentication.
    pub secret: Option<Vec<u8>>,
    /// Bound on the whole handshake.
    pub timeout: Duration,
    /// Limit on a frame's payload, in bytes.
    pub max_frame: usize,
}

impl HandshakeConfig {
    /// A configuration for `cluster` without a secret, with
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`] and [`DEFAULT_MAX_FRAME`].
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            secret: None,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// Sets the shared secret.
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Sets the handshake timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the frame limit.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }
}

impl fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("cluster", &self.cluster)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

/// What a state machine wants after a frame: frames to send (in order),
/// then how the handshake stands.
#[derive(Debug)]
pub struct Step {
    /// Frames to write to the peer, in order, before anything else.
    pub send: Vec<Frame>,
    /// Where the handshake stands.
    pub outcome: Outcome,
}

/// Where a handshake stands after a [`Step`].
#[derive(Debug)]
pub enum Outcome {
    /// Waiting for the peer's next frame.
    Continue,
    /// The handshake succeeded; this is the peer's Hello.
    Done(Hello),
    /// The handshake failed; after sending [`Step::send`] (if anything),
    /// close the connection.
    Failed(WireError),
}

impl Step {
    fn proceed(send: Vec<Frame>) -> Self {
        Self {
            send,
            outcome: Outcome::Continue,
        }
    }

    fn done(send: Vec<Frame>, peer: Hello) -> Self {
        Self {
            send,
            outcome: Outcome::Done(peer),
        }
    }

    /// Fails and tells the peer why.
    fn fail(error: WireError) -> Self {
        Self {
            send: error.reject_frame().into_iter().collect(),
            outcome: Outcome::Failed(error),
        }
    }

    /// Fails without telling the peer (it told us, or is gone).
    fn fail_quietly(error: WireError) -> Self {
        Self {
            send: Vec::new(),
            outcome: Outcome::Failed(error),
        }
    }
}

/// A frame the current state does not expect: a Reject ends the handshake
/// with the peer's error, anything else is a protocol error.
fn unexpected(frame: Frame, waiting_for: &str) -> Step {
    match frame {
        Frame::Reject { code, reason } => Step::fail_quietly(WireError::from_reject(code, reason)),
        other => Step::fail(WireError::Handshake(format!(
            "expected {waiting_for}, got {}",
            other.kind()
        ))),
    }
}

/// The checks both sides run on the other's Hello: version, cluster, and
/// that the peer is not this very node.
fn check_peer_hello(
    config: &HandshakeConfig,
    local: &Hello,
    peer: &Hello,
) -> Result<(), WireError> {
    if peer.protocol_version != PROTOCOL_VERSION {
        return Err(WireError::Version(format!(
            "peer {} speaks protocol version {}, this node {}",
            peer.node_id, peer.protocol_version, PROTOCOL_VERSION
        )));
    }
    if peer.cluster != config.cluster {
        return Err(WireError::Cluster(format!(
            "peer {} belongs to cluster {:?}, this node to {:?}",
            peer.node_id, peer.cluster, config.cluster
        )));
    }
    if peer.node_id == local.node_id {
        return Err(WireError::Handshake(format!(
            "peer claims this node's own id {}",
            peer.node_id
        )));
    }
    Ok(())
}

fn field(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    // Fields are bounded by the frame limit, far below 4 GiB; saturating
    // keeps this total without a panic path.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    mac.update(&len.to_be_bytes());
    mac.update(bytes);
}

fn hello_fields(mac: &mut Hmac<Sha256>, hello: &Hello) {
    mac.update(&hello.protocol_version.to_be_bytes());
    field(mac, hello.cluster.as_bytes());
    field(mac, hello.node_id.as_str().as_bytes());
    mac.update(&hello.incarnation.to_be_bytes());
    field(mac, hello.address.as_bytes());
}

/// The keyed transcript of one handshake for one role, ready to be
/// finalized (to prove) or verified (in constant time).
fn transcript(
    secret: &[u8],
    role: &[u8],
    acceptor_nonce: &Nonce,
    connector_nonce: &Nonce,
    connector: &Hello,
    acceptor: &Hello,
) -> Result<Hmac<Sha256>, WireError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .map_err(|e| WireError::Auth(format!("unusable shared secret: {e}")))?;
    mac.update(DOMAIN);
    field(&mut mac, role);
    mac.update(acceptor_nonce);
    mac.update(connector_nonce);
    hello_fields(&mut mac, connector);
    hello_fields(&mut mac, acceptor);
    Ok(mac)
}

fn prove(transcript: Hmac<Sha256>) -> Vec<u8> {
    transcript.finalize().into_bytes().to_vec()
}

/// `Ok` when `mac` is the transcript's tag (constant-time comparison).
fn verify(transcript: Hmac<Sha256>, mac: &[u8], what: &str) -> Result<(), WireError> {
    transcript
        .verify_slice(mac)
        .map_err(|_| WireError::Auth(format!("{what} does not match the shared secret")))
}

enum ConnectorState {
    AwaitHello,
    AwaitAuth { peer: Hello },
    AwaitWelcome { peer: Hello, acceptor_nonce: Nonce },
    Finished,
}

/// The connector's side of the handshake as a pure state machine: no IO,
/// no clock, no randomness (the nonce is an input).
///
/// Send [`Connector::hello`] first, then feed every frame read to
/// [`Connector::on_frame`], write out [`Step::send`] and stop at
/// [`Outcome::Done`] or [`Outcome::Failed`].
pub struct Connector<'a> {
    config: &'a HandshakeConfig,
    local: Hello,
    nonce: Nonce,
    state: ConnectorState,
    probe: bool,
}

impl<'a> Connector<'a> {
    /// A connector introducing itself as `local`; `nonce` must be fresh
    /// random bytes (it is the challenge the acceptor's proof answers).
    pub fn new(config: &'a HandshakeConfig, local: Hello, nonce: Nonce) -> Self {
        Self {
            config,
            local,
            nonce,
            state: ConnectorState::AwaitHello,
            probe: false,
        }
    }

    /// A connector that opens a probe ([`Frame::Probe`] instead of
    /// [`Frame::Hello`]); the rest of the handshake is the same, and once it
    /// is done the acceptor sends one [`Frame::ProbeInfo`] and closes.
    pub fn probe(config: &'a HandshakeConfig, local: Hello, nonce: Nonce) -> Self {
        Self {
            probe: true,
            ..Self::new(config, local, nonce)
        }
    }

    /// The first frame to send: this node's Hello (or Probe).
    pub fn hello(&self) -> Frame {
        if self.probe {
            Frame::Probe(self.local.clone())
        } else {
            Frame::Hello(self.local.clone())
        }
    }

    /// Handles one frame from the acceptor.
    pub fn on_frame(&mut self, frame: Frame) -> Step {
        let state = std::mem::replace(&mut self.state, ConnectorState::Finished);
        let (step, next) = self.transition(state, frame);
        self.state = next;
        step
    }

    fn transition(&self, state: ConnectorState, frame: Frame) -> (Step, ConnectorState) {
        use ConnectorState as S;
        let finished = S::Finished;
        match (state, frame) {
            (S::AwaitHello, Frame::Hello(peer)) => {
                match check_peer_hello(self.config, &self.local, &peer) {
                    Ok(()) => (Step::proceed(Vec::new()), S::AwaitAuth { peer }),
                    Err(e) => (Step::fail(e), finished),
                }
            }
            (S::AwaitHello, other) => (unexpected(other, "Hello"), finished),
            (S::AwaitAuth { peer }, Frame::Challenge { nonce }) => {
                let Some(secret) = &self.config.secret else {
                    let e = WireError::Auth(
                        "the peer requires a shared secret and this node has none".into(),
                    );
                    return (Step::fail(e), finished);
                };
                let mac = transcript(
                    secret,
                    ROLE_CONNECTOR,
                    &nonce,
                    &self.nonce,
                    &self.local,
                    &peer,
                )
                .map(prove);
                match mac {
                    Ok(mac) => (
                        Step::proceed(vec![Frame::Proof {
                            mac,
                            nonce: self.nonce,
                        }]),
                        S::AwaitWelcome {
                            peer,
                            acceptor_nonce: nonce,
                        },
                    ),
                    Err(e) => (Step::fail(e), finished),
                }
            }
            (S::AwaitAuth { peer }, Frame::Welcome { .. }) => {
                if self.config.secret.is_some() {
                    let e = WireError::Auth(
                        "the peer did not challenge: this node requires a shared secret".into(),
                    );
                    (Step::fail(e), finished)
                } else {
                    (Step::done(Vec::new(), peer), finished)
                }
            }
            (S::AwaitAuth { .. }, other) => (unexpected(other, "Challenge or Welcome"), finished),
            (
                S::AwaitWelcome {
                    peer,
                    acceptor_nonce,
                },
                Frame::Welcome { mac },
            ) => {
                let Some(secret) = &self.config.secret else {
                    // AwaitWelcome is reached only with a secret.
                    let e = WireError::Handshake("no shared secret".into());
                    return (Step::fail(e), finished);
                };
                let checked = transcript(
                    secret,
                    ROLE_ACCEPTOR,
                    &acceptor_nonce,
                    &self.nonce,
                    &self.local,
                    &peer,
                )
                .and_then(|t| verify(t, &mac, "the peer's proof"));
                match checked {
                    Ok(()) => (Step::done(Vec::new(), peer), finished),
                    Err(e) => (Step::fail(e), finished),
                }
            }
            (S::AwaitWelcome { .. }, other) => (unexpected(other, "Welcome"), finished),
            (S::Finished, _) => (
                Step::fail_quietly(WireError::Handshake("the handshake is over".into())),
                finished,
            ),
        }
    }
}

enum AcceptorState {
    AwaitHello,
    AwaitProof { peer: Hello },
    Finished,
}

/// The acceptor's side of the handshake as a pure state machine: no IO,
/// no clock, no randomness (the nonce is an input).
///
/// Feed every frame read to [`Acceptor::on_frame`], write out
/// [`Step::send`] and stop at [`Outcome::Done`] or [`Outcome::Failed`].
pub struct Acceptor<'a> {
    config: &'a HandshakeConfig,
    local: Hello,
    nonce: Nonce,
    state: AcceptorState,
    probe: bool,
}

impl<'a> Acceptor<'a> {
    /// An acceptor introducing itself as `local`; `nonce` must be fresh
    /// random bytes (it is the challenge the connector's proof answers).
    pub fn new(config: &'a HandshakeConfig, local: Hello, nonce: Nonce) -> Self {
        Self {
            config,
            local,
            nonce,
            state: AcceptorState::AwaitHello,
            probe: false,
        }
    }

    /// Whether the connector opened a probe ([`Frame::Probe`]): its
    /// membership check was skipped, and once the handshake is done the
    /// caller answers one [`Frame::ProbeInfo`] and closes (never an
    /// association).
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Handles one frame from the connector; `check` is asked about the
    /// connector's Hello once it passed the version and cluster checks.
    pub fn on_frame<F>(&mut self, frame: Frame, check: &mut F) -> Step
    where
        F: FnMut(&Hello) -> Result<(), Refusal>,
    {
        let state = std::mem::replace(&mut self.state, AcceptorState::Finished);
        // A probe is a Hello without the membership check.
        let frame = match frame {
            Frame::Probe(peer) if matches!(state, AcceptorState::AwaitHello) => {
                self.probe = true;
                Frame::Hello(peer)
            }
            other => other,
        };
        let probe = self.probe;
        let mut checked = |peer: &Hello| if probe { Ok(()) } else { check(peer) };
        let (step, next) = self.transition(state, frame, &mut checked);
        self.state = next;
        step
    }

    fn transition<F>(
        &self,
        state: AcceptorState,
        frame: Frame,
        check: &mut F,
    ) -> (Step, AcceptorState)
    where
        F: FnMut(&Hello) -> Result<(), Refusal>,
    {
        use AcceptorState as S;
        let finished = S::Finished;
        match (state, frame) {
            (S::AwaitHello, Frame::Hello(peer)) => {
                let checked = check_peer_hello(self.config, &self.local, &peer)
                    .and_then(|()| check(&peer).map_err(WireError::from));
                if let Err(e) = checked {
                    return (Step::fail(e), finished);
                }
                let hello = Frame::Hello(self.local.clone());
                if self.config.secret.is_some() {
                    let challenge = Frame::Challenge { nonce: self.nonce };
                    (
                        Step::proceed(vec![hello, challenge]),
                        S::AwaitProof { peer },
                    )
                } else {
                    let welcome = Frame::Welcome { mac: Vec::new() };
                    (Step::done(vec![hello, welcome], peer), finished)
                }
            }
            (S::AwaitHello, other) => (unexpected(other, "Hello"), finished),
            (S::AwaitProof { peer }, Frame::Proof { mac, nonce }) => {
                let Some(secret) = &self.config.secret else {
                    // AwaitProof is reached only with a secret.
                    let e = WireError::Handshake("no shared secret".into());
                    return (Step::fail(e), finished);
                };
                let proof = transcript(
                    secret,
                    ROLE_CONNECTOR,
                    &self.nonce,
                    &nonce,
                    &peer,
                    &self.local,
                )
                .and_then(|t| verify(t, &mac, "the peer's proof"))
                .and_then(|()| {
                    transcript(
                        secret,
                        ROLE_ACCEPTOR,
                        &self.nonce,
                        &nonce,
                        &peer,
                        &self.local,
                    )
                    .map(prove)
                });
                match proof {
                    Ok(mac) => (Step::done(vec![Frame::Welcome { mac }], peer), finished),
                    Err(e) => (Step::fail(e), finished),
                }
            }
            (S::AwaitProof { .. }, other) => (unexpected(other, "Proof"), finished),
            (S::Finished, _) => (
                Step::fail_quietly(WireError::Handshake("the handshake is over".into())),
                finished,
            ),
        }
    }
}

/// Fresh random bytes from the operating system.
fn random_nonce() -> Result<Nonce, WireError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| {
        WireError::Io(std::io::Error::other(format!(
            "no randomness for a handshake nonce: {e}"
        )))
    })?;
    Ok(nonce)
}

/// Writes `frames` in order.
async fn send_all<S>(stream: &mut S, frames: &[Frame], max: usize) -> Result<(), WireError>
where
    S: AsyncWrite + Unpin + ?Sized,
{
    for frame in frames {
        write_frame(stream, frame, max).await?;
    }
    Ok(())
}

/// Runs a state machine over `stream` until it is done or failed: writes
/// `first`, then alternates reading a frame and writing what the machine
/// answers. On failure the Reject (if any) is sent best effort and the
/// write half is shut down.
async fn drive<S, M>(
    stream: &mut S,
    max: usize,
    first: Vec<Frame>,
    mut machine: M,
) -> Result<Hello, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    M: FnMut(Frame) -> Step,
{
    send_all(stream, &first, max).await?;
    loop {
        let step = match read_frame::<Frame, _>(stream, max).await {
            Ok(frame) => machine(frame),
            // A bad frame from the peer is answered with a Reject of its
            // code; a transport failure is not.
            Err(e) => Step::fail(e),
        };
        let sent = send_all(stream, &step.send, max).await;
        match step.outcome {
            Outcome::Continue => sent?,
            Outcome::Done(peer) => {
                sent?;
                return Ok(peer);
            }
            Outcome::Failed(e) => {
                // Best effort: the error that ended the handshake matters,
                // not whether the peer could still be told.
                let _ = stream.shutdown().await;
                return Err(e);
            }
        }
    }
}

async fn bounded<F>(timeout: Duration, handshake: F) -> Result<Hello, WireError>
where
    F: Future<Output = Result<Hello, WireError>>,
{
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or(Err(WireError::Timeout(timeout)))
}

/// Runs the connector's side of the handshake over `stream` (the side that
/// dialled) and returns the acceptor's Hello. Whether that is the node the
/// caller meant to reach is the caller's to check.
///
/// Bounded by `config.timeout` (`wire.timeout`). On any failure drop the
/// stream (except after a timeout, its write half is already shut down).
/// On success the stream is ready for the association's frames.
pub async fn connect_handshake<S>(
    stream: &mut S,
    config: &HandshakeConfig,
    local: &Hello,
) -> Result<Hello, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    bounded(config.timeout, async {
        let mut machine = Connector::new(config, local.clone(), random_nonce()?);
        let first = vec![machine.hello()];
        drive(stream, config.max_frame, first, |frame| {
            machine.on_frame(frame)
        })
        .await
    })
    .await
}

/// Runs the acceptor's side of the handshake over `stream` (the side that
/// listened) and returns the connector's Hello. `check` is asked about the
/// connector's Hello once its version and cluster passed; a [`Refusal`] is
/// sent to the peer and returned as [`WireError::Refused`].
///
/// Bounded by `config.timeout` (`wire.timeout`). On any failure drop the
/// stream (except after a timeout, its write half is already shut down).
/// On success the stream is ready for the association's frames.
pub async fn accept_handshake<S, F>(
    stream: &mut S,
    config: &HandshakeConfig,
    local: &Hello,
    mut check: F,
) -> Result<Hello, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    F: FnMut(&Hello) -> Result<(), Refusal>,
{
    bounded(config.timeout, async {
        let mut machine = Acceptor::new(config, local.clone(), random_nonce()?);
        drive(stream, config.max_frame, Vec::new(), |frame| match frame {
            Frame::Probe(_) => Step::fail(WireError::Handshake(
                "a probe where a Hello was expected".into(),
            )),
            frame => machine.on_frame(frame, &mut check),
        })
        .await
    })
    .await
}

/// What [`accept_handshake_or_probe`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A handshake for an association: the connector's Hello, which passed
    /// the caller's check.
    Peer(Hello),
    /// A probe ([`Frame::Probe`]): the connector's Hello, authenticated but
    /// not checked for membership. Answer one [`Frame::ProbeInfo`] and
    /// close.
    Probe(Hello),
}

/// [`accept_handshake`] that also accepts a probe: a connector that opened
/// with [`Frame::Probe`] goes through the same version, cluster, node id
/// and secret checks, but not through `check`, and comes back as
/// [`Accepted::Probe`].
pub async fn accept_handshake_or_probe<S, F>(
    stream: &mut S,
    config: &HandshakeConfig,
    local: &Hello,
    mut check: F,
) -> Result<Accepted, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    F: FnMut(&Hello) -> Result<(), Refusal>,
{
    let mut probe = false;
    let peer = bounded(config.timeout, async {
        let mut machine = Acceptor::new(config, local.clone(), random_nonce()?);
        let peer = drive(stream, config.max_frame, Vec::new(), |frame| {
            machine.on_frame(frame, &mut check)
        })
        .await;
        probe = machine.is_probe();
        peer
    })
    .await?;
    Ok(if probe {
        Accepted::Probe(peer)
    } else {
        Accepted::Peer(peer)
    })
}

/// Runs the connector's side of a probe over `stream`: the handshake opened
/// with [`Frame::Probe`], then the acceptor's [`Frame::ProbeInfo`]. Returns
/// the acceptor's Hello and its [`ProbeInfo`]. Bounded by
/// `config.timeout` as a whole (`wire.timeout`).
pub async fn connect_probe<S>(
    stream: &mut S,
    config: &HandshakeConfig,
    local: &Hello,
) -> Result<(Hello, ProbeInfo), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let attempt = async {
        let mut machine = Connector::probe(config, local.clone(), random_nonce()?);
        let first = vec![machine.hello()];
        let peer = drive(stream, config.max_frame, first, |frame| {
            machine.on_frame(frame)
        })
        .await?;
        match read_frame::<Frame, _>(stream, config.max_frame).await? {
            Frame::ProbeInfo(info) => Ok((peer, info)),
            Frame::Reject { code, reason } => Err(WireError::from_reject(code, reason)),
            other => Err(WireError::Handshake(format!(
                "expected ProbeInfo, got {}",
                other.kind()
            ))),
        }
    };
    tokio::time::timeout(config.timeout, attempt)
        .await
        .unwrap_or(Err(WireError::Timeout(config.timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::NodeId;

    fn hello(id: &str, incarnation: u64) -> Hello {
        Hello::new(
            "c1",
            NodeId::new(id).unwrap(),
            incarnation,
            format!("{id}:4000"),
        )
    }

    fn allow(_: &Hello) -> Result<(), Refusal> {
        Ok(())
    }

    fn with_secret() -> HandshakeConfig {
        HandshakeConfig::new("c1").with_secret(b"k".to_vec())
    }

    /// Runs both machines against each other in memory, returning every
    /// frame exchanged (connector's first) and both outcomes.
    fn run(
        cc: &HandshakeConfig,
        ac: &HandshakeConfig,
        c_hello: Hello,
        a_hello: Hello,
        nonces: (Nonce, Nonce),
    ) -> (
        Vec<Frame>,
        Result<Hello, WireError>,
        Result<Hello, WireError>,
    ) {
        let mut connector = Connector::new(cc, c_hello, nonces.0);
        let mut acceptor = Acceptor::new(ac, a_hello, nonces.1);
        let mut log = vec![connector.hello()];
        let mut to_acceptor = vec![connector.hello()];
        let mut c_result = None;
        let mut a_result = None;
        for _ in 0..10 {
            let mut to_connector = Vec::new();
            for f in to_acceptor.drain(..) {
                if a_result.is_some() {
                    break;
                }
                let step = acceptor.on_frame(f, &mut allow);
                log.extend(step.send.iter().cloned());
                to_connector.extend(step.send);
                match step.outcome {
                    Outcome::Continue => {}
                    Outcome::Done(h) => a_result = Some(Ok(h)),
                    Outcome::Failed(e) => a_result = Some(Err(e)),
                }
            }
            for f in to_connector {
                if c_result.is_some() {
                    break;
                }
                let step = connector.on_frame(f);
                log.extend(step.send.iter().cloned());
                to_acceptor.extend(step.send);
                match step.outcome {
                    Outcome::Continue => {}
                    Outcome::Done(h) => c_result = Some(Ok(h)),
                    Outcome::Failed(e) => c_result = Some(Err(e)),
                }
            }
            if c_result.is_some() && (a_result.is_some() || to_acceptor.is_empty()) {
                break;
            }
        }
        (
            log,
            c_result.expect("connector finished"),
            a_result.expect("acceptor finished"),
        )
    }

    fn kinds(log: &[Frame]) -> Vec<&'static str> {
        log.iter().map(Frame::kind).collect()
    }

    #[test]
    fn without_secret_the_handshake_is_hello_hello_welcome() {
        let cfg = HandshakeConfig::new("c1");
        let (log, c, a) = run(&cfg, &cfg, hello("a", 1), hello("b", 2), ([1; 32], [2; 32]));
        assert_eq!(kinds(&log), ["Hello", "Hello", "Welcome"]);
        assert_eq!(c.unwrap(), hello("b", 2));
        assert_eq!(a.unwrap(), hello("a", 1));
    }

    #[test]
    fn with_secret_both_sides_prove_it() {
        let cfg = with_secret();
        let (log, c, a) = run(&cfg, &cfg, hello("a", 1), hello("b", 2), ([1; 32], [2; 32]));
        assert_eq!(
            kinds(&log),
            ["Hello", "Hello", "Challenge", "Proof", "Welcome"]
        );
        assert_eq!(c.unwrap().node_id.as_str(), "b");
        assert_eq!(a.unwrap().node_id.as_str(), "a");
        let Frame::Welcome { mac } = &log[4] else {
            panic!("{log:?}")
        };
        assert_eq!(mac.len(), 32);
    }

    #[test]
    fn a_proof_captured_in_one_handshake_fails_in_another() {
        let cfg = with_secret();
        let (log, _, _) = run(&cfg, &cfg, hello("a", 1), hello("b", 2), ([1; 32], [2; 32]));
        let captured = log[3].clone();
        assert_eq!(captured.kind(), "Proof");

        // Same peers, a fresh acceptor nonce: the replayed proof is refused.
        let mut acceptor = Acceptor::new(&cfg, hello("b", 2), [3; 32]);
        let step = acceptor.on_frame(Frame::Hello(hello("a", 1)), &mut allow);
        assert!(matches!(step.outcome, Outcome::Continue));
        let step = acceptor.on_frame(captured.clone(), &mut allow);
        let Outcome::Failed(e) = step.outcome else {
            panic!("replay accepted")
        };
        assert_eq!(e.code(), "wire.auth");
        assert!(matches!(&step.send[..], [Frame::Reject { code, .. }] if code == "wire.auth"));

        // Same nonce, another incarnation of the connector: refused too.
        let mut acceptor = Acceptor::new(&cfg, hello("b", 2), [2; 32]);
        let _ = acceptor.on_frame(Frame::Hello(hello("a", 9)), &mut allow);
        let Outcome::Failed(e) = acceptor.on_frame(captured, &mut allow).outcome else {
            panic!("proof for another incarnation accepted")
        };
        assert_eq!(e.code(), "wire.auth");
    }

    #[test]
    fn an_impostor_acceptor_without_the_secret_is_refused_by_the_connector() {
        let cfg = with_secret();
        let mut connector = Connector::new(&cfg, hello("a", 1), [1; 32]);
        let _ = connector.hello();
        let _ = connector.on_frame(Frame::Hello(hello("b", 2)));
        let step = connector.on_frame(Frame::Challenge { nonce: [7; 32] });
        assert!(matches!(&step.send[..], [Frame::Proof { .. }]));
        let step = connector.on_frame(Frame::Welcome { mac: vec![0; 32] });
        let Outcome::Failed(e) = step.outcome else {
            panic!("impostor accepted")
        };
        assert_eq!(e.code(), "wire.auth");
        assert!(matches!(&step.send[..], [Frame::Reject { code, .. }] if code == "wire.auth"));
    }

    #[test]
    fn a_secret_on_one_side_only_fails_authentication_on_both() {
        let (_, c, a) = run(
            &HandshakeConfig::new("c1"),
            &with_secret(),
            hello("a", 1),
            hello("b", 2),
            ([1; 32], [2; 32]),
        );
        assert_eq!(c.unwrap_err().code(), "wire.auth");
        assert_eq!(a.unwrap_err().code(), "wire.auth");

        // The acceptor without a secret is done before the connector
        // refuses; it reads the Reject as its next frame.
        let (log, c, a) = run(
            &with_secret(),
            &HandshakeConfig::new("c1"),
            hello("a", 1),
            hello("b", 2),
            ([1; 32], [2; 32]),
        );
        assert_eq!(c.unwrap_err().code(), "wire.auth");
        assert!(a.is_ok());
        assert!(matches!(log.last(), Some(Frame::Reject { code, .. }) if code == "wire.auth"));
    }

    #[test]
    fn frames_out_of_order_are_handshake_errors() {
        let cfg = HandshakeConfig::new("c1");
        let mut acceptor = Acceptor::new(&cfg, hello("b", 2), [0; 32]);
        let step = acceptor.on_frame(Frame::Heartbeat { seq: 1 }, &mut allow);
        let Outcome::Failed(e) = step.outcome else {
            panic!()
        };
        assert_eq!(e.code(), "wire.handshake");
        assert!(matches!(&step.send[..], [Frame::Reject { code, .. }] if code == "wire.handshake"));
        // A finished machine refuses everything, quietly.
        let step = acceptor.on_frame(Frame::Hello(hello("a", 1)), &mut allow);
        assert!(matches!(step.outcome, Outcome::Failed(_)) && step.send.is_empty());

        let mut connector = Connector::new(&cfg, hello("a", 1), [0; 32]);
        let Outcome::Failed(e) = connector.on_frame(Frame::Welcome { mac: vec![] }).outcome else {
            panic!()
        };
        assert_eq!(e.code(), "wire.handshake");
    }

    #[test]
    fn a_peer_with_our_own_id_is_refused() {
        let cfg = HandshakeConfig::new("c1");
        let (_, c, a) = run(&cfg, &cfg, hello("a", 1), hello("a", 2), ([1; 32], [2; 32]));
        assert_eq!(a.unwrap_err().code(), "wire.handshake");
        assert_eq!(c.unwrap_err().code(), "wire.handshake");
    }

    #[test]
    fn the_check_sees_only_hellos_that_passed_version_and_cluster() {
        let cfg = HandshakeConfig::new("c1");
        let mut asked = 0;
        let mut check = |_: &Hello| {
            asked += 1;
            Err(Refusal::new("remoting.unknown_peer", "not in the topology"))
        };
        let mut other_cluster = hello("a", 1);
        other_cluster.cluster = "c2".into();
        let mut acceptor = Acceptor::new(&cfg, hello("b", 2), [0; 32]);
        let step = acceptor.on_frame(Frame::Hello(other_cluster), &mut check);
        assert!(matches!(
            step.outcome,
            Outcome::Failed(WireError::Cluster(_))
        ));
        let mut acceptor = Acceptor::new(&cfg, hello("b", 2), [0; 32]);
        let step = acceptor.on_frame(Frame::Hello(hello("a", 1)), &mut check);
        let Outcome::Failed(WireError::Refused { code, .. }) = step.outcome else {
            panic!()
        };
        assert_eq!(code, "remoting.unknown_peer");
        assert_eq!(
            step.send,
            [Frame::Reject {
                code: "remoting.unknown_peer".into(),
                reason: "not in the topology".into()
            }]
        );
        assert_eq!(asked, 1);
    }

    /// Runs a probing connector against an acceptor whose check refuses
    /// everyone: the frames, the connector's result, the acceptor's result
    /// and whether the acceptor saw a probe.
    fn run_probe(
        cc: &HandshakeConfig,
        ac: &HandshakeConfig,
        c_hello: Hello,
        a_hello: Hello,
    ) -> (
        Vec<&'static str>,
        Result<Hello, WireError>,
        Result<Hello, WireError>,
        bool,
    ) {
        let mut connector = Connector::probe(cc, c_hello, [1; 32]);
        let mut acceptor = Acceptor::new(ac, a_hello, [2; 32]);
        let mut refuse = |_: &Hello| Err(Refusal::new("remoting.not_member", "not a member"));
        let mut log = vec![connector.hello()];
        let mut pending = vec![connector.hello()];
        let (mut c, mut a) = (None, None);
        while let Some(f) = pending.pop() {
            if a.is_none() {
                let step = acceptor.on_frame(f, &mut refuse);
                log.extend(step.send.iter().cloned());
                match step.outcome {
                    Outcome::Continue => {}
                    Outcome::Done(h) => a = Some(Ok(h)),
                    Outcome::Failed(e) => a = Some(Err(e)),
                }
                for back in step.send {
                    if c.is_some() {
                        break;
                    }
                    let step = connector.on_frame(back);
                    log.extend(step.send.iter().cloned());
                    pending.extend(step.send);
                    match step.outcome {
                        Outcome::Continue => {}
                        Outcome::Done(h) => c = Some(Ok(h)),
                        Outcome::Failed(e) => c = Some(Err(e)),
                    }
                }
            }
        }
        (
            kinds(&log),
            c.expect("connector finished"),
            a.expect("acceptor finished"),
            acceptor.is_probe(),
        )
    }

    /// P4/P6: a probe is a handshake without the membership check, with
    /// every other check and the full secret exchange, table-style.
    #[test]
    fn p4_p6_probe_skips_only_the_membership_check() {
        let plain = HandshakeConfig::new("c1");
        let secret = with_secret();
        let other_secret = HandshakeConfig::new("c1").with_secret(b"other".to_vec());
        let mut other_cluster = hello("a", 1);
        other_cluster.cluster = "c2".into();
        let mut old_version = hello("a", 1);
        old_version.protocol_version = 0;
        type Row<'a> = (
            &'a str,
            &'a HandshakeConfig,
            &'a HandshakeConfig,
            Hello,
            &'a [&'a str],
            Option<&'a str>,
            Option<&'a str>,
        );
        let rows: Vec<Row<'_>> = vec![
            (
                "no secret",
                &plain,
                &plain,
                hello("a", 1),
                &["Probe", "Hello", "Welcome"],
                None,
                None,
            ),
            (
                "secret",
                &secret,
                &secret,
                hello("a", 1),
                &["Probe", "Hello", "Challenge", "Proof", "Welcome"],
                None,
                None,
            ),
            (
                "wrong secret",
                &other_secret,
                &secret,
                hello("a", 1),
                &["Probe", "Hello", "Challenge", "Proof", "Reject"],
                Some("wire.auth"),
                Some("wire.auth"),
            ),
            (
                "no secret on the prober",
                &plain,
                &secret,
                hello("a", 1),
                &["Probe", "Hello", "Challenge", "Reject"],
                Some("wire.auth"),
                Some("wire.auth"),
            ),
            (
                "another cluster",
                &plain,
                &plain,
                other_cluster,
                &["Probe", "Reject"],
                Some("wire.cluster"),
                Some("wire.cluster"),
            ),
            (
                "another version",
                &plain,
                &plain,
                old_version,
                &["Probe", "Reject"],
                Some("wire.version"),
                Some("wire.version"),
            ),
            (
                "itself",
                &plain,
                &plain,
                hello("b", 1),
                &["Probe", "Reject"],
                Some("wire.handshake"),
                Some("wire.handshake"),
            ),
        ];
        for (name, cc, ac, prober, frames, c_err, a_err) in rows {
            let (log, c, a, probe) = run_probe(cc, ac, prober.clone(), hello("b", 2));
            assert_eq!(log, frames, "{name}");
            assert_eq!(
                c.as_ref().err().map(WireError::code),
                c_err,
                "{name}: {c:?}"
            );
            assert_eq!(
                a.as_ref().err().map(WireError::code),
                a_err,
                "{name}: {a:?}"
            );
            if a_err.is_none() {
                assert!(probe, "{name}: the acceptor must know it was a probe");
                assert_eq!(a.unwrap(), prober, "{name}");
                assert_eq!(c.unwrap(), hello("b", 2), "{name}");
            }
        }
    }

    #[test]
    fn p4_p6_a_probe_is_only_a_first_frame_and_a_hello_is_no_probe() {
        let cfg = HandshakeConfig::new("c1");
        let mut acceptor = Acceptor::new(&cfg, hello("b", 2), [0; 32]);
        let step = acceptor.on_frame(Frame::Hello(hello("a", 1)), &mut allow);
        assert!(matches!(step.outcome, Outcome::Done(_)));
        assert!(!acceptor.is_probe());

        let secret = with_secret();
        let mut acceptor = Acceptor::new(&secret, hello("b", 2), [0; 32]);
        let _ = acceptor.on_frame(Frame::Hello(hello("a", 1)), &mut allow);
        let step = acceptor.on_frame(Frame::Probe(hello("a", 1)), &mut allow);
        let Outcome::Failed(e) = step.outcome else {
            panic!("a Probe in place of a Proof was accepted")
        };
        assert_eq!(e.code(), "wire.handshake");
        assert!(!acceptor.is_probe());
    }

    #[tokio::test]
    async fn p4_p6_probe_drivers_over_a_stream() {
        let cfg = with_secret();
        let (ha, hb) = (hello("a", 1), hello("b", 2));
        let (mut c, mut a) = tokio::io::duplex(64 * 1024);
        let acceptor = async {
            let accepted = accept_handshake_or_probe(&mut a, &cfg, &hello("b", 2), |_: &Hello| {
                Err(Refusal::new("remoting.not_member", "no"))
            })
            .await;
            if matches!(accepted, Ok(Accepted::Probe(_))) {
                let info = Frame::ProbeInfo(ProbeInfo {
                    joined: true,
                    members: 3,
                    ..ProbeInfo::default()
                });
                write_frame(&mut a, &info, cfg.max_frame).await.unwrap();
            }
            accepted
        };
        let (answer, accepted) = tokio::join!(connect_probe(&mut c, &cfg, &ha), acceptor);
        assert_eq!(accepted.unwrap(), Accepted::Probe(hello("a", 1)));
        let (peer, info) = answer.unwrap();
        assert_eq!(peer, hello("b", 2));
        assert!(info.joined && info.members == 3);

        // The association-only driver refuses a probe.
        let (mut c, mut a) = tokio::io::duplex(64 * 1024);
        let (answer, accepted) = tokio::join!(
            connect_probe(&mut c, &cfg, &ha),
            accept_handshake(&mut a, &cfg, &hb, allow)
        );
        assert_eq!(accepted.unwrap_err().code(), "wire.handshake");
        assert_eq!(answer.unwrap_err().code(), "wire.handshake");
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        // Guards the hmac 0.13 / digest 0.11 usage.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let tag = prove(mac);
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn roles_and_fields_change_the_proof() {
        let (c, a) = (hello("a", 1), hello("b", 2));
        let tag = |role: &[u8], an: &Nonce, cn: &Nonce, c: &Hello, a: &Hello| {
            prove(transcript(b"k", role, an, cn, c, a).unwrap())
        };
        let base = tag(ROLE_CONNECTOR, &[1; 32], &[2; 32], &c, &a);
        assert_ne!(base, tag(ROLE_ACCEPTOR, &[1; 32], &[2; 32], &c, &a));
        assert_ne!(base, tag(ROLE_CONNECTOR, &[2; 32], &[1; 32], &c, &a));
        assert_ne!(base, tag(ROLE_CONNECTOR, &[1; 32], &[2; 32], &a, &c));
        let mut moved = a.clone();
        moved.address = "elsewhere:1".into();
        assert_ne!(base, tag(ROLE_CONNECTOR, &[1; 32], &[2; 32], &c, &moved));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let cfg = HandshakeConfig::new("c1").with_secret(b"hunter2-very-secret".to_vec());
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
