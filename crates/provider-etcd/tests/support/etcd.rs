//! A real etcd for tests: started on free loopback ports with a temporary
//! data dir, stopped by PID when dropped (so also when a test panics).
//!
//! Without an `etcd` binary, [`EtcdServer::start`] prints
//! `skipped: etcd not installed (apt-get install etcd-server)` and returns
//! `None`, unless `CI_REQUIRE_ETCD=1`, where it panics instead so CI cannot
//! pass without running these tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// How long etcd may take to become healthy.
const START_BOUND: Duration = Duration::from_secs(20);

fn find_etcd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

fn free_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

/// PEM files of a test CA, a server certificate for 127.0.0.1 signed by
/// it, and a client certificate signed by it.
#[derive(Clone, Debug)]
pub struct TestCerts {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCerts {
    /// Generates the certificates into `dir`.
    pub fn generate(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
        let write = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).expect("write a PEM file");
            p
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "provider-etcd test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(DnType::CommonName, "node");
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        Self {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server-key.pem", server_key.serialize_pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client-key.pem", client_key.serialize_pem()),
        }
    }

    /// The files of `pki`, with `server` as etcd's certificate.
    pub fn from_pki(pki: &test_pki::TestPki, server: &test_pki::Pair) -> Self {
        Self {
            ca: pki.ca.clone(),
            server_cert: server.cert.clone(),
            server_key: server.key.clone(),
            client_cert: pki.client.cert.clone(),
            client_key: pki.client.key.clone(),
        }
    }

    /// Client TLS options with the client certificate.
    pub fn client_tls(&self) -> TlsOptions {
        let read = |p: &PathBuf| std::fs::read(p).expect("read a PEM file");
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca)))
            .identity(Identity::from_pem(
                read(&self.client_cert),
                read(&self.client_key),
            ))
    }
}

/// One etcd process on 127.0.0.1.
pub struct EtcdServer {
    binary: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    /// Serves clients over TLS and requires a client certificate.
    tls: Option<TestCerts>,
    /// Ready when the client port accepts connections (for a server whose
    /// certificate clients are meant to refuse), not when a read works.
    tcp_ready: bool,
}

impl EtcdServer {
    /// Starts an etcd and waits until it serves requests; `None` when etcd
    /// is not installed (and `CI_REQUIRE_ETCD` is not `1`).
    pub async fn start() -> Option<Self> {
        Self::start_with(false).await
    }

    /// [`start`](Self::start) serving clients over TLS with client
    /// certificates required ([`certs`](Self::certs)).
    pub async fn start_tls() -> Option<Self> {
        Self::start_with(true).await
    }

    /// An etcd serving TLS with `certs` (client certificates of its CA
    /// required). With `clients_refuse`, the server's certificate is one
    /// clients are meant to refuse (another CA, expired, another name):
    /// it counts as started once its client port accepts connections.
    pub async fn start_tls_with(certs: TestCerts, clients_refuse: bool) -> Option<Self> {
        Self::start_inner(move |_| Some(certs), clients_refuse).await
    }

    async fn start_with(tls: bool) -> Option<Self> {
        Self::start_inner(|dir| tls.then(|| TestCerts::generate(dir)), false).await
    }

    async fn start_inner(
        certs: impl FnOnce(&Path) -> Option<TestCerts>,
        tcp_ready: bool,
    ) -> Option<Self> {
        let Some(binary) = find_etcd() else {
            if std::env::var("CI_REQUIRE_ETCD").as_deref() == Ok("1") {
                panic!(
                    "etcd is not installed but CI_REQUIRE_ETCD=1: install the Debian package \
                     etcd-server (apt-get install etcd-server etcd-client)"
                );
            }
            // Straight to the process's stderr, past the test harness's
            // output capture.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: etcd not installed (apt-get install etcd-server)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary dir for etcd");
        let tls = certs(dir.path());
        let mut server = Self {
            binary,
            child: None,
            dir,
            client_port: 0,
            peer_port: 0,
            tls,
            tcp_ready,
        };
        // Ports picked by binding port 0 can be taken again before etcd
        // binds them: retry with new ones.
        for attempt in 0..5 {
            let (l1, client) = free_port();
            let (l2, peer) = free_port();
            drop((l1, l2));
            server.client_port = client;
            server.peer_port = peer;
            match server.launch().await {
                Ok(()) => return Some(server),
                Err(log) if log.contains("address already in use") && attempt < 4 => {
                    let _ = std::fs::remove_dir_all(server.data_dir());
                }
                Err(log) => panic!("etcd did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The certificates, for a TLS server.
    pub fn certs(&self) -> Option<&TestCerts> {
        self.tls.as_ref()
    }

    fn client_options(&self, connect_timeout: Duration) -> ConnectOptions {
        let mut o = ConnectOptions::new().with_connect_timeout(connect_timeout);
        if let Some(t) = &self.tls {
            o = o.with_tls(t.client_tls());
        }
        o
    }

    /// A client for direct reads, writes and compactions.
    pub async fn client(&self) -> Client {
        let opts = self.client_options(Duration::from_secs(2));
        Client::connect([self.endpoint()], Some(opts))
            .await
            .expect("connect to test etcd")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills etcd (SIGKILL: a crash, nothing flushed on purpose) and waits
    /// for the process to end.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes etcd (SIGSTOP): connections stay open, nothing answers, as
    /// with a hung server or a silent network partition.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused etcd go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("etcd is running").to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill (procps)");
        assert!(status.success(), "kill {sig} {pid}: {status}");
    }

    /// Kills etcd and starts it again on the same ports with the same data.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.launch().await {
            panic!("etcd did not restart:\n{log}");
        }
    }

    /// Kills etcd and starts an empty one on the same ports: every key and
    /// lease is gone, as after losing the etcd cluster.
    pub async fn restart_empty(&mut self) {
        self.kill();
        std::fs::remove_dir_all(self.data_dir()).expect("wipe the etcd data dir");
        if let Err(log) = self.launch().await {
            panic!("etcd did not restart:\n{log}");
        }
    }

    /// Spawns etcd and waits until it answers a read; the log on failure.
    async fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(&self.binary);
        if let Some(t) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .current_dir(self.dir.path())
            .env_clear()
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "exited with {status}\n{}",
                    read_log(&self.log_path())
                ));
            }
            if self.ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "not healthy within {START_BOUND:?}\n{}",
                    read_log(&self.log_path())
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ready(&self) -> bool {
        if self.tcp_ready {
            return tokio::net::TcpStream::connect(("127.0.0.1", self.client_port))
                .await
                .is_ok();
        }
        let probe = async {
            let opts = self.client_options(Duration::from_millis(200));
            let mut c = Client::connect([self.endpoint()], Some(opts)).await.ok()?;
            c.get("/health-probe", None).await.ok()
        };
        matches!(
            tokio::time::timeout(Duration::from_millis(500), probe).await,
            Ok(Some(_))
        )
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
