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
