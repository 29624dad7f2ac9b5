//! N1: a node's configuration file, its environment overrides, and every
//! kind of bad input named by file, provider and field.

use std::io::Write;

use cluster_provisioning::config::{ConfigError, NodeConfig};
use cluster_provisioning::{built_in_kinds, validate};

const GOOD: &str = r#"
cluster = "shop"
node_id = "node-a"
bind = "127.0.0.1:0"

[admin]
bind = "127.0.0.1:0"

[failover]
silence_timeout = "20s"

[[providers]]
id = "shared-dir"
kind = "file"
settings = { dir = "/tmp/shop-members", poll = "200ms" }

[[providers]]
id = "standby"
kind = "memory"
settings = { table = "shop" }
"#;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::from_toml("node.toml", text)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(c) => match validate(&c, &built_in_kinds()) {
            Ok(()) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[test]
fn n1_a_whole_node_in_one_file() {
    let c = parse(GOOD).expect("valid");
    assert_eq!(c.cluster, "shop");
    assert_eq!(c.node_id.as_str(), "node-a");
    assert_eq!(
        c.failover.silence_timeout,
        std::time::Duration::from_secs(20)
    );
    let d = c.descriptors().expect("lowers");
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].id.as_str(), d[0].priority), ("shared-dir", 0));
    assert_eq!(
        (d[1].id.as_str(), d[1].priority),
        ("standby", 1),
        "priority follows the list"
    );
    assert_eq!(d[0].settings["poll_ms"], "200");
    assert_eq!(d[0].settings["dir"], "/tmp/shop-members");
}

#[test]
fn n1_environment_overrides_the_file_with_a_documented_prefix() {
    let env = vec![
        ("CLUSTER_NODE_ID".to_owned(), "123".to_owned()),
        ("CLUSTER_ADVERTISE_HOST".to_owned(), "10.1.2.3".to_owned()),
        (
            "CLUSTER_ADMIN__BIND".to_owned(),
            "127.0.0.1:9999".to_owned(),
        ),
        ("CLUSTER_INSECURE".to_owned(), "true".to_owned()),
        // Not ours: ignored, not an error.
        ("CLUSTER_DOMAIN".to_owned(), "cluster.local".to_owned()),
    ];
    let c = NodeConfig::from_toml_with_env("node.toml", GOOD, &env).expect("valid");
    assert_eq!(
        c.node_id.as_str(),
        "123",
        "a numeric-looking id stays a string"
    );
    assert_eq!(c.advertise_host.as_deref(), Some("10.1.2.3"));
    assert_eq!(c.admin.bind, "127.0.0.1:9999");
    assert!(c.insecure);
    let bad = vec![(
        "CLUSTER_REMOTING__FAILURE_TIMEOUT".to_owned(),
        "soon".to_owned(),
    )];
    let e = NodeConfig::from_toml_with_env("node.toml", GOOD, &bad).unwrap_err();
    assert_eq!(e.field, "remoting.failure_timeout");
    assert!(
        e.source_name.contains("CLUSTER_REMOTING__FAILURE_TIMEOUT"),
        "{e}"
    );
}

#[test]
fn n1_secrets_come_from_files_and_never_print() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(b"s3cr3t-value\n"))
        .expect("write");
    // Top-level keys come before the first table.
    let text = format!("secret_file = {:?}\n{GOOD}", path.display().to_string());
    let c = parse(&text).expect("valid");
    assert_eq!(
        c.secret.as_ref().map(|s| s.expose().to_owned()).as_deref(),
        Some("s3cr3t-value")
    );
    let shown = format!("{c:?}\n{}", c.to_redacted_toml());
    assert!(!shown.contains("s3cr3t-value"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn n1_bad_input_is_one_line_naming_file_provider_and_field() {
    let with_provider = |settings: &str| {
        format!(
            "cluster = \"shop\"\nnode_id = \"a\"\n[[providers]]\nid = \"consul-main\"\nkind = \"consul\"\nsettings = {{ {settings} }}\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        // TOML syntax error: the file and the position.
        ("cluster = \"shop\nnode_id = \"a\"".into(), "node.toml: not valid TOML"),
        // Unknown key at the top and in a section.
        ("cluster = \"shop\"\nnode_id = \"a\"\nbnid = \"x\"".into(), "node.toml: bnid: unknown key"),
        ("cluster = \"shop\"\nnode_id = \"a\"\n[admin]\nbinding = \"x\"".into(), "node.toml: admin.binding: unknown key"),
        // Wrong type.
        ("cluster = \"shop\"\nnode_id = \"a\"\ninsecure = \"yes\"".into(), "node.toml: insecure:"),
        // A missing required key.
        ("node_id = \"a\"".into(), "node.toml: cluster: missing"),
        // A provider's setting: not a duration, unknown, wrong type.
        (with_provider("wait = \"5x\""), "node.toml: providers[consul-main].settings.wait: \"5x\" is not a duration"),
        (with_provider("adress = \"h:1\""), "node.toml: providers[consul-main].settings.adress: unknown key (expected one of: address, ssl"),
        (with_provider("tags = \"a\""), "node.toml: providers[consul-main].settings.tags:"),
        // Out of range: a provider's duration (the kind's range) and a section's.
        ("cluster = \"shop\"\nnode_id = \"a\"\n[[providers]]\nid = \"m\"\nkind = \"memory\"\nsettings = { keepalive = \"0s\" }".into(), "node.toml: providers[m].settings.keepalive: 0s is out of range 1ms..=1h"),
        ("cluster = \"shop\"\nnode_id = \"a\"\n[remoting]\nfailure_timeout = \"2h\"".into(), "node.toml: remoting.failure_timeout: 2h is out of range"),
        // Unknown provider kind.
        ("cluster = \"shop\"\nnode_id = \"a\"\n[[providers]]\nid = \"p\"\nkind = \"consol\"".into(), "node.toml: providers[p].kind: unknown provider kind \"consol\""),
        // Two providers with one id.
        ("cluster = \"shop\"\nnode_id = \"a\"\n[[providers]]\nid = \"p\"\nkind = \"memory\"\n[[providers]]\nid = \"p\"\nkind = \"memory\"".into(), "node.toml: providers[p].id: two providers have the id \"p\""),
        // A bad provider id.
        ("cluster = \"shop\"\nnode_id = \"a\"\n[[providers]]\nid = \"Bad Id\"\nkind = \"memory\"".into(), "node.toml: providers[Bad Id].id:"),
        // An unreadable secret file.
        ("cluster = \"shop\"\nnode_id = \"a\"\nsecret_file = \"/nonexistent/secret\"".into(), "node.toml: secret_file: cannot read /nonexistent/secret"),
        // A bad node id and a bad bind.
        ("cluster = \"shop\"\nnode_id = \"\"".into(), "node.toml: node_id:"),
        ("cluster = \"shop\"\nnode_id = \"a\"\nbind = \"nowhere\"".into(), "node.toml: bind: \"nowhere\" is not host:port"),
    ];
    for (text, want) in cases {
        let got = err(&text);
        assert!(
            got.starts_with(want),
            "for\n{text}\n got: {got}\nwant: {want}..."
        );
        assert!(!got.contains('\n'), "one line: {got}");
    }
}

#[test]
fn n1_a_missing_file_names_the_file() {
    let e = NodeConfig::load("/nonexistent/node.toml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/node.toml: cannot read the file"),
        "{e}"
    );
    assert_eq!(e.code(), "config.invalid");
}

#[test]
fn n1_unsafe_combinations_are_refused_at_start() {
    let off_loopback = GOOD.replace(
        "bind = \"127.0.0.1:0\"\n\n[admin]",
        "bind = \"0.0.0.0:0\"\nadvertise_host = \"10.0.0.1\"\n\n[admin]",
    );
    let c = parse(&off_loopback).expect("parses");
    let e = validate(&c, &built_in_kinds()).unwrap_err();
    assert_eq!(e.code(), "config.unsafe");
    assert!(
        e.to_string()
            .contains("needs [remoting.tls] or a cluster secret"),
        "{e}"
    );
    let admin_open = GOOD.replace(
        "[admin]\nbind = \"127.0.0.1:0\"",
        "[admin]\nbind = \"0.0.0.0:0\"",
    );
    let c = parse(&admin_open).expect("parses");
    let e = validate(&c, &built_in_kinds()).unwrap_err();
    assert!(e.to_string().contains("admin.token"), "{e}");
}

/// N1: a mistake on a line that holds a secret never quotes the secret:
/// not a TOML syntax error's excerpt, not a type error's "found" value, in
/// the file or in a provider's settings.
#[test]
fn n1_errors_never_quote_a_secret() {
    let cases = [
        "cluster = \"shop\"\nnode_id = \"a\"\nsecret = \"hunter2-leaky\n",
        "cluster = \"shop\"\nnode_id = \"a\"\nsecret = hunter2-leaky\n",
        "cluster = \"shop\"\nnode_id = \"a\"\nsecret = 98765432\n",
        "cluster = \"shop\"\nnode_id = \"a\"\n[admin]\ntoken = 98765432\n",
        "cluster = \"shop\"\nnode_id = \"a\"\n[[providers]]\nid = \"c\"\nkind = \"consul\"\nsettings = { token = 98765432 }\n",
        "cluster = \"shop\"\nnode_id = \"a\"\n[[providers]]\nid = \"e\"\nkind = \"etcd\"\nsettings = { password = [98765432] }\n",
    ];
    for text in cases {
        let e = parse(text).expect_err(text).to_string();
        assert!(
            !e.contains("hunter2") && !e.contains("98765432"),
            "leaked: {e}"
        );
        assert!(e.starts_with("node.toml: "), "{e}");
    }
}

/// N1: bind 0.0.0.0 needs an advertised host, and a node needs a provider.
#[test]
fn n1_a_node_that_could_not_run_is_refused_at_the_check() {
    let e = err(
        "cluster = \"c\"\nnode_id = \"a\"\nbind = \"0.0.0.0:4000\"\nsecret = \"s\"\n[[providers]]\nid = \"m\"\nkind = \"memory\"",
    );
    assert!(
        e.starts_with("node.toml: advertise_host: required when binding 0.0.0.0:4000"),
        "{e}"
    );
    let e = err("cluster = \"c\"\nnode_id = \"a\"");
    assert!(e.starts_with("node.toml: providers: at least one"), "{e}");
    let e = err(
        "cluster = \"c\"\nnode_id = \"a\"\n[[providers]]\nid = \"cm\"\nkind = \"memory\"\npriority = -1",
    );
    assert!(
        e.starts_with("node.toml: providers[cm].priority:"),
        "figment errors name the provider by id: {e}"
    );
}

/// Issue 18: `[storage]` is typed like the rest (kind-tagged, unknown keys
/// refused), and a kind this build lacks is named with its feature.
#[test]
fn g18_storage_section_is_checked() {
    let base = "cluster = \"c\"\nnode_id = \"a\"\n[[providers]]\nid = \"m\"\nkind = \"memory\"\n";
    let c = parse(base).expect("memory by default");
    assert_eq!(c.storage.kind(), "memory");
    let e = err(&format!("{base}[storage]\nkind = \"mongo\"\n"));
    assert!(e.starts_with("node.toml: storage"), "{e}");
    let e = err(&format!(
        "{base}[storage]\nkind = \"sqlite\"\npath = \"/tmp/x.db\"\nbusy = \"1s\"\n"
    ));
    assert!(e.contains("busy"), "{e}");
    let sqlite = parse(&format!(
        "{base}[storage]\nkind = \"sqlite\"\npath = \"/tmp/x.db\"\n"
    ));
    if cfg!(feature = "sqlite") {
        assert!(sqlite.is_ok());
    } else {
        let e = sqlite.unwrap_err().to_string();
        assert!(
            e.contains("storage.kind: \"sqlite\" is not compiled into this build"),
            "{e}"
        );
    }
}

/// Issue 14: `[remoting.tls]` is checked like every other section: each
/// unusable file is one line naming `remoting.tls.<field>`, a certificate
/// that does not name this node is refused at the check, and TLS counts as
/// securing Remoting off loopback (no secret needed).
#[test]
fn i14_remoting_tls_section_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::NodePki::generate(dir.path()).unwrap();
    let mine = pki
        .node("a", "cluster://shop/node-a", test_pki::NodeCert::Valid)
        .unwrap();
    let theirs = pki
        .node("b", "cluster://shop/node-b", test_pki::NodeCert::Valid)
        .unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM").unwrap();
    // The memory kind only (the default features).
    let memory_only = GOOD.replace(
        "[[providers]]\nid = \"shared-dir\"\nkind = \"file\"\nsettings = { dir = \"/tmp/shop-members\", poll = \"200ms\" }\n\n",
        "",
    );
    assert!(!memory_only.contains("kind = \"file\""));
    let with_tls = |cert: &std::path::Path, key: &std::path::Path, ca: &std::path::Path| {
        memory_only.replace(
            "bind = \"127.0.0.1:0\"\n\n[admin]",
            &format!(
                "bind = \"0.0.0.0:0\"\nadvertise_host = \"10.0.0.1\"\n\n[remoting.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\nreload_check = \"1s\"\n\n[admin]",
                cert.display(),
                key.display(),
                ca.display()
            ),
        )
    };
    let good = parse(&with_tls(&mine.cert, &mine.key, &pki.ca)).expect("parses");
    validate(&good, &built_in_kinds()).expect("TLS secures Remoting off loopback");
    for (text, field) in [
        (
            with_tls(&garbage, &mine.key, &pki.ca),
            "remoting.tls.cert_file",
        ),
        (
            with_tls(&mine.cert, &theirs.key, &pki.ca),
            "remoting.tls.key_file",
        ),
        (
            with_tls(&mine.cert, &mine.key, &garbage),
            "remoting.tls.ca_file",
        ),
        (
            with_tls(&theirs.cert, &theirs.key, &pki.ca),
            "remoting.tls.cert_file",
        ),
    ] {
        let c = parse(&text).expect("parses");
        let e = validate(&c, &built_in_kinds()).unwrap_err();
        assert_eq!(e.code(), "config.invalid", "{e}");
        assert!(
            e.to_string().starts_with(&format!("node.toml: {field}: ")),
            "{e}"
        );
    }
    let unknown = GOOD.replace(
        "[admin]",
        "[remoting.tls]\ncert_file = \"a\"\nkey_file = \"b\"\nca_file = \"c\"\nciphers = \"all\"\n\n[admin]",
    );
    assert!(err(&unknown).contains("remoting.tls"), "{}", err(&unknown));
}

/// The memory provider only (the default features), for the monitoring
/// tests.
const MONITORED: &str = r#"
cluster = "shop"
node_id = "node-a"
bind = "127.0.0.1:0"

[[providers]]
id = "standby"
kind = "memory"
settings = { table = "shop" }
"#;

/// Issue 17: every key of `[remoting.monitoring]` is read into Remoting's
/// `MonitoringConfig` (durations as strings, enums in lower case), and
/// `NodeConfig::remoting_config` (what the node runtime starts Remoting
/// with) carries it.
#[test]
fn i17_remoting_monitoring_section_sets_every_field() {
    use cluster_provisioning::config::{MonitoringConfig, MonitoringDetector, MonitoringMode};
    use std::time::Duration;
    let text = format!(
        "{MONITORED}\n[remoting]\nheartbeat_interval = \"2s\"\n\n[remoting.monitoring]\n\
         mode = \"ring\"\nmonitors = 7\nquorum = 4\nprobe_interval = \"2s\"\n\
         probe_timeout = \"750ms\"\nindirect_fanout = 2\nsuspicion_mult = 0.5\n\
         vote_ttl = \"30s\"\nhealth_max = 4\nvote_limit = 3\nidle_timeout = \"2m\"\n\
         detector = \"phi_accrual\"\n"
    );
    let c = parse(&text).expect("valid");
    let want = MonitoringConfig {
        mode: MonitoringMode::Ring,
        monitors: 7,
        quorum: 4,
        probe_interval: Duration::from_secs(2),
        probe_timeout: Duration::from_millis(750),
        indirect_fanout: 2,
        suspicion_mult: 0.5,
        vote_ttl: Duration::from_secs(30),
        health_max: 4,
        vote_limit: 3,
        idle_timeout: Duration::from_secs(120),
        detector: MonitoringDetector::PhiAccrual,
    };
    assert_eq!(c.remoting.monitoring, want);
    assert_eq!(
        c.remoting.heartbeat_interval,
        Duration::from_secs(2),
        "[remoting]'s own keys still read"
    );
    let remoting = c.remoting_config();
    assert_eq!(remoting.monitoring, want);
    assert_eq!(remoting.heartbeat_interval, Duration::from_secs(2));
    validate(&c, &built_in_kinds()).expect("check-config accepts it");

    // The effective configuration (check-config's output) prints the table
    // in the file's own words, and reads back to the same values.
    let shown = c.to_redacted_toml();
    for line in [
        "[remoting.monitoring]",
        "mode = \"ring\"",
        "probe_timeout = \"750ms\"",
        "suspicion_mult = 0.5",
        "idle_timeout = \"2m\"",
        "detector = \"phi_accrual\"",
    ] {
        assert!(shown.contains(line), "{line} missing from:\n{shown}");
    }
    let table: toml::Table = shown.parse().expect("TOML");
    let again = format!(
        "{MONITORED}\n[remoting.monitoring]\n{}",
        toml::to_string(&table["remoting"]["monitoring"]).expect("renders")
    );
    assert_eq!(parse(&again).expect("reads back").remoting.monitoring, want);
}

/// Issue 17: without the table, or with some keys only, the rest is
/// `MonitoringConfig::default()` (all-to-all: today's behaviour).
#[test]
fn i17_remoting_monitoring_defaults_when_absent() {
    use cluster_provisioning::config::{MonitoringConfig, MonitoringMode};
    let defaults = MonitoringConfig::default();
    assert_eq!(defaults.mode, MonitoringMode::AllToAll);
    let c = parse(MONITORED).expect("valid");
    assert_eq!(c.remoting.monitoring, defaults);
    assert_eq!(c.remoting_config().monitoring, defaults);
    let c = parse(&format!("{MONITORED}\n[remoting.monitoring]\n")).expect("valid");
    assert_eq!(c.remoting.monitoring, defaults, "an empty table");
    let c = parse(&format!(
        "{MONITORED}\n[remoting.monitoring]\nmode = \"ring\"\n"
    ))
    .expect("valid");
    assert_eq!(
        c.remoting.monitoring,
        MonitoringConfig {
            mode: MonitoringMode::Ring,
            ..defaults
        },
        "one key: the others keep their defaults"
    );
    let c = parse(&format!(
        "{MONITORED}\n[remoting.monitoring]\nmode = \"all_to_all\"\n"
    ))
    .expect("valid");
    assert_eq!(c.remoting.monitoring.mode, MonitoringMode::AllToAll);
}

/// Issue 17 / N1: a mistake in `[remoting.monitoring]` is one line naming
/// the file and `remoting.monitoring.<field>`, with the reason and the
/// range; `check-config` refuses it (`config.invalid`).
#[test]
fn i17_remoting_monitoring_bad_input_names_file_and_field() {
    let section = |body: &str| format!("{MONITORED}\n[remoting.monitoring]\n{body}\n");
    let cases = [
        // Unknown key: refused, with the known ones.
        (
            section("quorom = 3"),
            "node.toml: remoting.monitoring.quorom: unknown key (expected one of: mode, monitors, quorum",
        ),
        // Out of range, alone and against another key.
        (
            section("quorum = 9"),
            "node.toml: remoting.monitoring.quorum: 9 is out of range: must be 2 to monitors (5)",
        ),
        (
            section("monitors = 5\nquorum = 9"),
            "node.toml: remoting.monitoring.quorum: 9 is out of range: must be 2 to monitors (5)",
        ),
        (
            section("monitors = 17"),
            "node.toml: remoting.monitoring.monitors: 17 is out of range: must be 1 to 16",
        ),
        (
            section("probe_interval = \"1s\"\nprobe_timeout = \"1s\""),
            "node.toml: remoting.monitoring.probe_timeout: 1s is out of range: must be more than zero and less than probe_interval (1s)",
        ),
        (
            section("probe_timeout = \"2s\""),
            "node.toml: remoting.monitoring.probe_timeout: 2s is out of range",
        ),
        (
            section("indirect_fanout = 5"),
            "node.toml: remoting.monitoring.indirect_fanout: 5 is out of range: must be 0 to monitors - 1 (4)",
        ),
        (
            section("suspicion_mult = 0.0"),
            "node.toml: remoting.monitoring.suspicion_mult: 0 is out of range",
        ),
        (
            section("vote_ttl = \"1s\""),
            "node.toml: remoting.monitoring.vote_ttl: 1s is too short: must be more than probe_interval (1s)",
        ),
        (
            section("health_max = 2\nvote_limit = 3"),
            "node.toml: remoting.monitoring.vote_limit: 3 is out of range: must be 1 to health_max (2)",
        ),
        (
            section("idle_timeout = \"500ms\""),
            "node.toml: remoting.monitoring.idle_timeout: 500ms is too short: must be at least 1s",
        ),
        // Wrong values for the enums, the durations, the numbers.
        (
            section("mode = \"Ring\""),
            "node.toml: remoting.monitoring.mode: unknown variant",
        ),
        (
            section("detector = \"phi\""),
            "node.toml: remoting.monitoring.detector: unknown variant",
        ),
        (
            section("probe_interval = \"1x\""),
            "node.toml: remoting.monitoring.probe_interval: \"1x\" is not a duration",
        ),
        (
            section("probe_interval = 1"),
            "node.toml: remoting.monitoring.probe_interval: 1 is not a duration: write it with a unit",
        ),
        (
            section("monitors = -1"),
            "node.toml: remoting.monitoring.monitors:",
        ),
        (
            section("suspicion_mult = \"a lot\""),
            "node.toml: remoting.monitoring.suspicion_mult:",
        ),
    ];
    for (text, want) in cases {
        let got = err(&text);
        assert!(
            got.starts_with(want),
            "for\n{text}\n got: {got}\nwant: {want}..."
        );
        assert!(!got.contains('\n'), "one line: {got}");
        let code = parse(&text).map_or_else(|e| e.code(), |_| "accepted");
        assert_eq!(code, "config.invalid", "{got}");
    }
}

/// Issue 17 / N1: the environment sets the table's keys too
/// (`CLUSTER_REMOTING__MONITORING__<KEY>`), numbers included, and a bad
/// one names the variable.
#[test]
fn i17_remoting_monitoring_from_the_environment() {
    use cluster_provisioning::config::MonitoringMode;
    use std::time::Duration;
    let var = |k: &str, v: &str| (format!("CLUSTER_REMOTING__MONITORING__{k}"), v.to_owned());
    let env = vec![
        var("MODE", "ring"),
        var("QUORUM", "2"),
        var("SUSPICION_MULT", "0.25"),
        var("PROBE_INTERVAL", "2s"),
    ];
    let c = NodeConfig::from_toml_with_env("node.toml", MONITORED, &env).expect("valid");
    let m = &c.remoting.monitoring;
    assert_eq!(m.mode, MonitoringMode::Ring);
    assert_eq!(m.quorum, 2);
    assert_eq!(m.suspicion_mult, 0.25);
    assert_eq!(m.probe_interval, Duration::from_secs(2));
    assert_eq!(m.monitors, 5, "untouched keys keep their defaults");

    let e = NodeConfig::from_toml_with_env("node.toml", MONITORED, &[var("MONITORS", "many")])
        .unwrap_err();
    assert_eq!(e.field, "remoting.monitoring.monitors", "{e}");
    assert!(
        e.source_name
            .contains("CLUSTER_REMOTING__MONITORING__MONITORS"),
        "{e}"
    );
    let e =
        NodeConfig::from_toml_with_env("node.toml", MONITORED, &[var("QUORUM", "9")]).unwrap_err();
    assert_eq!(e.field, "remoting.monitoring.quorum", "{e}");
}

/// Issue 17: a configuration built in code (the embedding API) is checked
/// the same way: `validate` (what `check-config` and `Node::start` run)
/// refuses a monitoring value out of range with `config.invalid` naming
/// the field.
#[test]
fn i17_remoting_monitoring_set_in_code_is_checked() {
    use cluster_provisioning::config::{MonitoringConfig, MonitoringMode};
    let mut c = parse(MONITORED).expect("valid");
    c.remoting.monitoring = MonitoringConfig {
        mode: MonitoringMode::Ring,
        ..MonitoringConfig::default()
    };
    validate(&c, &built_in_kinds()).expect("valid");
    assert_eq!(c.remoting_config().monitoring.mode, MonitoringMode::Ring);
    c.remoting.monitoring.quorum = 9;
    let e = validate(&c, &built_in_kinds()).unwrap_err();
    assert_eq!(e.code(), "config.invalid");
    assert!(
        e.to_string()
            .starts_with("node.toml: remoting.monitoring.quorum: 9 is out of range"),
        "{e}"
    );
    assert!(c.check_monitoring().is_err());
}

/// Issue 17 / N1: the `[remoting.monitoring]` examples shipped with the
/// project load: the block in `docs/embedding.md` and the commented-out
/// one in `deploy/kubernetes/node.toml` (uncommented here), each giving
/// the defaults with `mode = "ring"`.
#[test]
fn i17_n1_shipped_monitoring_examples_load() {
    use cluster_provisioning::config::{MonitoringConfig, MonitoringMode};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let want = MonitoringConfig {
        mode: MonitoringMode::Ring,
        ..MonitoringConfig::default()
    };
    // The docs: the ```toml block that starts with the table.
    let doc = read("docs/embedding.md");
    let block = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with("[remoting.monitoring]"))
        .expect("a [remoting.monitoring] block in docs/embedding.md");
    let c = parse(&format!("{MONITORED}\n{block}")).expect("the docs' block");
    assert_eq!(c.remoting.monitoring, want, "docs/embedding.md");
    // The Kubernetes example: the commented lines from the table on.
    let k8s = read("deploy/kubernetes/node.toml");
    let block: String = k8s
        .lines()
        .skip_while(|l| *l != "# [remoting.monitoring]")
        .map_while(|l| l.strip_prefix("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(block.starts_with("[remoting.monitoring]\n"), "{block}");
    let c = parse(&format!("{MONITORED}\n{block}")).expect("the Kubernetes example");
    assert_eq!(c.remoting.monitoring, want, "deploy/kubernetes/node.toml");
}
