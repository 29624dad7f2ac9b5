//! The node configuration parser: TOML text through
//! `cluster_provisioning::config::NodeConfig::from_toml`, the path
//! `NodeConfig::load` takes after reading the file, without the
//! environment. Then the provider settings are lowered to descriptors
//! (`descriptors()`, which validates them) and the configuration is printed
//! redacted, as the node does at start.
//!
//! The parser reads the file a `*_file` key names (a secret, a token, a
//! password). A fuzz run must not read arbitrary paths of the machine
//! (`/dev/zero` would never end), so an input with a string-valued
//! `*_file` key anywhere is parsed as a TOML table, every such value is
//! replaced by the path of one small secret file this target writes at
//! start, and the re-printed table is what the parser gets. Every other
//! input goes to the parser byte for byte. No other path in the
//! configuration is opened while parsing.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use cluster_provisioning::config::NodeConfig;
use libfuzzer_sys::fuzz_target;

/// The one file `*_file` keys may name.
fn secret_file() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path: PathBuf =
            std::env::temp_dir().join(format!("cluster-fuzz-secret-{}", std::process::id()));
        std::fs::write(&path, "fuzz-secret\n").expect("write the fixture secret file");
        path.to_str().expect("a UTF-8 temp path").to_owned()
    })
}

/// Points every string-valued `*_file` key at [`secret_file`]; true when
/// there was one.
fn redirect_files(value: &mut toml::Value) -> bool {
    match value {
        toml::Value::Table(t) => {
            let mut any = false;
            for (k, v) in t.iter_mut() {
                if k.ends_with("_file") && v.is_str() {
                    *v = toml::Value::String(secret_file().to_owned());
                    any = true;
                } else {
                    any |= redirect_files(v);
                }
            }
            any
        }
        toml::Value::Array(a) => a.iter_mut().fold(false, |any, v| redirect_files(v) | any),
        _ => false,
    }
}

fn parse(text: &str) {
    let Ok(config) = NodeConfig::from_toml("fuzz.toml", text) else {
        return;
    };
    let _ = config.descriptors();
    let _ = config.to_redacted_toml();
    let _ = config.binds_loopback();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut table = match text.parse::<toml::Table>() {
        Ok(table) => toml::Value::Table(table),
        // Not TOML: the parser's syntax error path, no file can be named.
        Err(_) => return parse(text),
    };
    if !redirect_files(&mut table) {
        return parse(text);
    }
    if let Ok(rewritten) = toml::to_string(&table) {
        parse(&rewritten);
    }
});
