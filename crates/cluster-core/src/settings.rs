//! [`Settings`]: the one typed reader of a provider descriptor's `settings`
//! map, used by every provider kind.
//!
//! Every failure is a [`ProviderError::Config`] naming the setting's key
//! (the registry turns it into `validation.invalid_field` on
//! `settings.<key>`, R1.1), built by [`invalid`].
//!
//! # Rules (the same for every kind)
//!
//! - **Unknown keys**: [`Settings::check_known`] refuses the first key not in
//!   the kind's list, naming it (`unknown setting (known: ...)`): a typo such
//!   as `passwd` must not silently give an unauthenticated client.
//! - **Text** ([`text`](Settings::text), [`required`](Settings::required),
//!   [`list`](Settings::list)): trimmed; a blank value counts as not set.
//!   [`raw`](Settings::raw) gives the value exactly as written (passwords).
//! - **Numbers, durations, booleans, choices**: the value is trimmed, then
//!   must parse: a blank value is an error, not the default. Numbers are
//!   whole decimal numbers within an inclusive range. Durations are whole
//!   numbers of the unit the key's suffix names (`_ms`, `_s`); the node
//!   configuration file lowers its human durations (`"1m 30s"`) into these.
//!   Booleans ([`bool`](Settings::bool)): `true` or `false`; a setting
//!   that mirrors an environment variable's conventions
//!   ([`switch`](Settings::switch)) also takes `yes`/`no`, `on`/`off`,
//!   `1`/`0`, in any case.
//! - **Environment**: [`with_env`](Settings::with_env) names, per key, an
//!   environment variable read when the key is not set (Consul's
//!   `CONSUL_HTTP_ADDR`, ...). A blank variable counts as not set.
//!
//! ```
//! use std::time::Duration;
//! use cluster_core::settings::Settings;
//! use cluster_core::{ProviderDescriptor, ProviderError, ProviderId};
//!
//! let d = ProviderDescriptor::new(ProviderId::new("p")?, "demo", 0)
//!     .with_setting("poll_ms", "250")
//!     .with_setting("tags", "a, b,,c");
//! let s = Settings::of(&d);
//! s.check_known(&["poll_ms", "tags", "verbose"])?;
//! assert_eq!(s.millis("poll_ms", 10..=1000, 500)?, Duration::from_millis(250));
//! assert_eq!(s.list("tags"), Some(vec!["a".into(), "b".into(), "c".into()]));
//! assert!(!s.bool("verbose", false)?);
//! let bad = ProviderDescriptor::new(ProviderId::new("p")?, "demo", 0).with_setting("poll_ms", "soon");
//! match Settings::of(&bad).millis("poll_ms", 10..=1000, 500) {
//!     Err(ProviderError::Config { field, .. }) => assert_eq!(field, "poll_ms"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::error::ProviderError;
use crate::provider::ProviderDescriptor;

/// Reads an environment variable (`|k| std::env::var(k).ok()` for the
/// process environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The typed reader of one descriptor's settings (see the [module
/// docs](self) for the rules).
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    map: &'a BTreeMap<String, String>,
    env: Option<(Env<'a>, &'a [(&'a str, &'a str)])>,
}

impl std::fmt::Debug for Settings<'_> {
    /// Keys only: values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("keys", &self.map.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A `ProviderError::Config` naming `field`.
pub fn invalid(field: &str, reason: impl Into<String>) -> ProviderError {
    ProviderError::Config {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The setting a [`ProviderError::Config`] names; `None` for any other
/// error.
pub fn invalid_field(e: &ProviderError) -> Option<&str> {
    match e {
        ProviderError::Config { field, .. } => Some(field),
        _ => None,
    }
}

/// A settings map from `(key, value)` pairs (tests, code-given settings).
pub fn pairs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A boolean spelling: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`, in
/// any case, surrounding white space ignored.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl<'a> Settings<'a> {
    /// A reader of `map`.
    pub fn new(map: &'a BTreeMap<String, String>) -> Self {
        Self { map, env: None }
    }

    /// A reader of `descriptor`'s settings.
    pub fn of(descriptor: &'a ProviderDescriptor) -> Self {
        Self::new(&descriptor.settings)
    }

    /// Reads `vars` (`(key, variable)` pairs) through `env` for keys the
    /// map does not set.
    pub fn with_env(mut self, env: Env<'a>, vars: &'a [(&'a str, &'a str)]) -> Self {
        self.env = Some((env, vars));
        self
    }

    /// Refuses the first key not in `known`, naming it.
    pub fn check_known(&self, known: &[&str]) -> Result<(), ProviderError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(invalid(
                k,
                format!("unknown setting (known: {})", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// Whether `key` is set in the map (whatever its value).
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The value of `key` exactly as written in the map (no environment,
    /// no trimming): for values where white space matters, such as
    /// passwords.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).map(String::as_str)
    }

    /// The value of `key` as written, or its environment variable's when
    /// the map does not set it (a blank variable counts as not set).
    fn value(&self, key: &str) -> Option<String> {
        if let Some(v) = self.map.get(key) {
            return Some(v.clone());
        }
        let (env, vars) = self.env?;
        let var = vars.iter().find(|(k, _)| *k == key)?.1;
        env(var).filter(|v| !v.trim().is_empty())
    }

    /// The trimmed value of `key` (or of its environment variable); blank
    /// counts as not set.
    pub fn text(&self, key: &str) -> Option<String> {
        self.value(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// [`text`](Self::text), or `missing: {what}` naming `key`.
    pub fn required(&self, key: &str, what: &str) -> Result<String, ProviderError> {
        self.text(key)
            .ok_or_else(|| invalid(key, format!("missing: {what}")))
    }

    /// A comma-separated list: each item trimmed, blank items dropped;
    /// `None` when `key` is not set (an empty list when it is set but holds
    /// no item).
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.value(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// A whole number in `range`, `default` when `key` is not set.
    pub fn u64(
        &self,
        key: &str,
        range: RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ProviderError> {
        self.number(key, range, default, "")
    }

    /// A whole number in `range`, `default` when `key` is not set.
    pub fn u32(
        &self,
        key: &str,
        range: RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, ProviderError> {
        let wide = u64::from(*range.start())..=u64::from(*range.end());
        let n = self.number(key, wide, u64::from(default), "")?;
        // In range, so it fits.
        Ok(u32::try_from(n).unwrap_or(default))
    }

    /// A duration in whole milliseconds in `range_ms`, `default_ms` when
    /// `key` is not set.
    pub fn millis(
        &self,
        key: &str,
        range_ms: RangeInclusive<u64>,
        default_ms: u64,
    ) -> Result<Duration, ProviderError> {
        self.number(key, range_ms, default_ms, " of milliseconds")
            .map(Duration::from_millis)
    }

    /// A duration in whole seconds in `range_s`, `default_s` when `key` is
    /// not set.
    pub fn secs(
        &self,
        key: &str,
        range_s: RangeInclusive<u64>,
        default_s: u64,
    ) -> Result<Duration, ProviderError> {
        self.number(key, range_s, default_s, " of seconds")
            .map(Duration::from_secs)
    }

    fn number(
        &self,
        key: &str,
        range: RangeInclusive<u64>,
        default: u64,
        unit: &str,
    ) -> Result<u64, ProviderError> {
        let Some(v) = self.value(key) else {
            return Ok(default);
        };
        v.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                invalid(
                    key,
                    format!(
                        "{v:?} is not a whole number{unit} in {}..={}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    /// A boolean spelled `true` or `false` (trimmed), `default` when `key`
    /// is not set.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ProviderError> {
        self.boolean(key, default, |v| match v.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }

    /// A boolean in any of [`parse_bool`]'s spellings (`1`, `yes`, `on`,
    /// ...), `default` when `key` is not set: for settings that mirror an
    /// environment variable (Consul's `CONSUL_HTTP_SSL`).
    pub fn switch(&self, key: &str, default: bool) -> Result<bool, ProviderError> {
        self.boolean(key, default, parse_bool)
    }

    fn boolean(
        &self,
        key: &str,
        default: bool,
        parse: fn(&str) -> Option<bool>,
    ) -> Result<bool, ProviderError> {
        match self.value(key) {
            None => Ok(default),
            Some(v) => parse(&v).ok_or_else(|| invalid(key, format!("{v:?} is not true or false"))),
        }
    }

    /// One of `choices` (by name, exact after trimming), `default` when
    /// `key` is not set.
    pub fn choice<T: Copy>(
        &self,
        key: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> Result<T, ProviderError> {
        let Some(v) = self.value(key) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(name, _)| *name == v.trim())
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                invalid(key, format!("{v:?} is not one of {}", names.join(", ")))
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs(kv)
    }

    fn field_and_reason(e: ProviderError) -> (String, String) {
        assert_eq!(e.code(), "provider.config");
        match e {
            ProviderError::Config { field, reason } => (field, reason),
            other => panic!("not a config error: {other:?}"),
        }
    }

    /// R1.1: unknown keys are refused naming the key and the known ones.
    #[test]
    fn r1_1_unknown_keys_are_named() {
        let m = map(&[("address", "x"), ("passwd", "hunter2")]);
        let (field, reason) = field_and_reason(
            Settings::new(&m)
                .check_known(&["address", "password"])
                .unwrap_err(),
        );
        assert_eq!(field, "passwd");
        assert!(
            reason.starts_with("unknown setting (known: address, password)"),
            "{reason}"
        );
        assert!(!reason.contains("hunter2"));
        Settings::new(&m)
            .check_known(&["passwd", "address"])
            .unwrap();
    }

    /// R1.1: numbers and durations: defaults when absent, the range
    /// inclusive, and every bad spelling (blank included) an error naming
    /// the key and the range.
    #[test]
    fn r1_1_numbers_default_check_their_range_and_name_the_key() {
        let m = map(&[
            ("n", " 42 "),
            ("lo", "10"),
            ("hi", "20"),
            ("blank", " "),
            ("neg", "-1"),
            ("word", "ten"),
            ("frac", "1.5"),
            ("big", "99999999999999999999999"),
        ]);
        let s = Settings::new(&m);
        assert_eq!(s.u64("n", 0..=100, 7).unwrap(), 42);
        assert_eq!(s.u64("absent", 0..=100, 7).unwrap(), 7);
        assert_eq!(s.u64("lo", 10..=20, 15).unwrap(), 10);
        assert_eq!(s.u64("hi", 10..=20, 15).unwrap(), 20);
        assert_eq!(s.u32("n", 1..=50, 3).unwrap(), 42);
        assert_eq!(
            s.millis("n", 1..=100, 5).unwrap(),
            Duration::from_millis(42)
        );
        assert_eq!(s.secs("n", 1..=100, 5).unwrap(), Duration::from_secs(42));
        assert_eq!(
            s.secs("absent", 1..=100, 5).unwrap(),
            Duration::from_secs(5)
        );
        for key in ["blank", "neg", "word", "frac", "big"] {
            let (field, reason) = field_and_reason(s.u64(key, 0..=100, 1).unwrap_err());
            assert_eq!(field, key);
            assert!(
                reason.contains("is not a whole number in 0..=100"),
                "{reason}"
            );
        }
        let (_, reason) = field_and_reason(s.u64("n", 0..=41, 1).unwrap_err());
        assert_eq!(reason, "\" 42 \" is not a whole number in 0..=41");
        let (_, reason) = field_and_reason(s.millis("hi", 1..=19, 1).unwrap_err());
        assert!(reason.contains("of milliseconds in 1..=19"), "{reason}");
        let (_, reason) = field_and_reason(s.secs("hi", 1..=19, 1).unwrap_err());
        assert!(reason.contains("of seconds in 1..=19"), "{reason}");
        let (field, _) = field_and_reason(s.u32("big", 0..=u32::MAX, 1).unwrap_err());
        assert_eq!(field, "big");
    }

    #[test]
    fn booleans_are_true_or_false_and_switches_take_the_usual_spellings() {
        let m = map(&[
            ("t", " true"),
            ("f", "false "),
            ("a", "TRUE"),
            ("b", " off "),
            ("c", "1"),
            ("d", "maybe"),
            ("e", ""),
        ]);
        let s = Settings::new(&m);
        assert!(s.bool("t", false).unwrap());
        assert!(!s.bool("f", true).unwrap());
        assert!(s.bool("absent", true).unwrap());
        assert!(s.switch("a", false).unwrap());
        assert!(!s.switch("b", true).unwrap());
        assert!(s.switch("c", false).unwrap());
        assert!(!s.switch("absent", false).unwrap());
        for key in ["a", "b", "c", "d", "e"] {
            let (field, reason) = field_and_reason(s.bool(key, true).unwrap_err());
            assert_eq!(field, key);
            assert!(reason.contains("is not true or false"), "{reason}");
        }
        for key in ["d", "e"] {
            let (field, _) = field_and_reason(s.switch(key, true).unwrap_err());
            assert_eq!(field, key);
        }
    }

    #[test]
    fn text_is_trimmed_blank_is_unset_and_raw_is_exact() {
        let m = map(&[("name", "  lab "), ("blank", "  "), ("pw", " p w ")]);
        let s = Settings::new(&m);
        assert_eq!(s.text("name").as_deref(), Some("lab"));
        assert_eq!(s.text("blank"), None);
        assert_eq!(s.raw("blank"), Some("  "));
        assert_eq!(s.raw("pw"), Some(" p w "));
        assert!(s.contains("blank") && !s.contains("absent"));
        assert_eq!(s.required("name", "x").unwrap(), "lab");
        for key in ["blank", "absent"] {
            let (field, reason) =
                field_and_reason(s.required(key, "the cluster name").unwrap_err());
            assert_eq!(
                (field.as_str(), reason.as_str()),
                (key, "missing: the cluster name")
            );
        }
    }

    #[test]
    fn lists_split_on_commas_and_drop_blank_items() {
        let m = map(&[("l", " a, b ,,c, "), ("empty", " , ")]);
        let s = Settings::new(&m);
        assert_eq!(s.list("l").unwrap(), ["a", "b", "c"]);
        assert_eq!(s.list("empty").unwrap(), Vec::<String>::new());
        assert_eq!(s.list("absent"), None);
    }

    #[test]
    fn choices_match_by_name_and_list_the_names_when_wrong() {
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum Mode {
            Fast,
            Safe,
        }
        let modes = [("fast", Mode::Fast), ("safe", Mode::Safe)];
        let m = map(&[("mode", " fast"), ("bad", "Fast")]);
        let s = Settings::new(&m);
        assert_eq!(s.choice("mode", &modes, Mode::Safe).unwrap(), Mode::Fast);
        assert_eq!(s.choice("absent", &modes, Mode::Safe).unwrap(), Mode::Safe);
        let (field, reason) = field_and_reason(s.choice("bad", &modes, Mode::Safe).unwrap_err());
        assert_eq!(field, "bad");
        assert_eq!(reason, "\"Fast\" is not one of fast, safe");
    }

    /// The environment fills keys the map leaves out; the map wins; a
    /// blank variable counts as not set; unmapped keys never read it.
    #[test]
    fn the_environment_fills_unset_keys_only() {
        let env = |k: &str| match k {
            "ADDR" => Some("h:1".to_owned()),
            "SSL" => Some("yes".to_owned()),
            "BLANK" => Some(" ".to_owned()),
            "WAIT" => Some("x".to_owned()),
            _ => None,
        };
        let vars = [
            ("address", "ADDR"),
            ("ssl", "SSL"),
            ("token", "BLANK"),
            ("wait_ms", "WAIT"),
        ];
        let m = map(&[("address", "given:2")]);
        let s = Settings::new(&m).with_env(&env, &vars);
        assert_eq!(s.text("address").as_deref(), Some("given:2"));
        assert!(s.switch("ssl", false).unwrap());
        assert_eq!(s.text("token"), None);
        assert_eq!(s.text("other"), None);
        let (field, _) = field_and_reason(s.millis("wait_ms", 1..=10, 1).unwrap_err());
        assert_eq!(field, "wait_ms");
        let empty = BTreeMap::new();
        let s = Settings::new(&empty).with_env(&env, &vars);
        assert_eq!(s.text("address").as_deref(), Some("h:1"));
        // `raw` is the map only.
        assert_eq!(s.raw("address"), None);
    }

    #[test]
    fn debug_shows_keys_not_values() {
        let m = map(&[("password", "hunter2")]);
        let shown = format!("{:?}", Settings::new(&m));
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn invalid_field_names_the_key_of_config_errors_only() {
        assert_eq!(invalid_field(&invalid("ttl_s", "x")), Some("ttl_s"));
        assert_eq!(invalid_field(&ProviderError::Auth("403".into())), None);
        assert_eq!(pairs(&[("a", "1")]).get("a").map(String::as_str), Some("1"));
    }
}
