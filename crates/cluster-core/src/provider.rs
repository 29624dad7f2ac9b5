//! What a membership provider is: the [`ClusterProvider`] trait and the
//! [`ProviderDescriptor`] that configures one.
//!
//! Providers do not know about actors. A provider is a plain async object
//! that can check connectivity, register and deregister the local member, and
//! yield a stream of snapshots; the `ProviderActor` in `provisioning-actors`
//! hosts it, and the supervisor never sees backend details.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::{ProviderError, ProvisioningError, Result};
use crate::node::Member;

/// A provider's name, unique in a registry: 1 to 64 characters from
/// `[a-z0-9-]`, starting with a letter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderId(Arc<str>);

impl ProviderId {
    /// Validates and wraps `id`.
    pub fn new(id: impl AsRef<str>) -> Result<Self> {
        let id = id.as_ref();
        let ok_chars = id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let starts = id.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if id.is_empty() || id.len() > 64 || !ok_chars || !starts {
            return Err(ProvisioningError::validation(
                "id",
                "must be 1 to 64 characters of a-z, 0-9 and '-', starting with a letter",
            ));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderId {
    type Error = ProvisioningError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<ProviderId> for String {
    fn from(p: ProviderId) -> Self {
        p.0.to_string()
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProviderId({})", self.0)
    }
}

/// What a provider can do. A provider without `watch` cannot be active and is
/// kept Disabled (R1.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// Streams membership snapshots.
    pub watch: bool,
    /// Registers the local member.
    pub register: bool,
    /// Needs a connectivity check before acceptance (external backends, R1.4).
    pub external: bool,
}

impl Capabilities {
    /// Names of the capabilities in `required` that `self` lacks.
    pub fn missing(&self, required: Capabilities) -> Vec<&'static str> {
        let mut m = Vec::new();
        if required.watch && !self.watch {
            m.push("watch");
        }
        if required.register && !self.register {
            m.push("register");
        }
        m
    }
}

/// One membership snapshot from a provider: every member it currently lists.
///
/// The list is shared, not owned (issue 17): a provider that keeps its
/// members in an `Arc<[Member]>` (the in-memory table) hands that very list
/// to the supervisor, which keeps and publishes it without a copy, and a
/// keepalive that re-sends the same `Arc` costs nothing downstream. A
/// provider that decodes a fresh list gives a `Vec` ([`Snapshot::now`] takes
/// either).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Snapshot {
    /// The members, in any order (sorted by node id with one member per id
    /// is cheapest: the supervisor then keeps the list as it is).
    pub members: Arc<[Member]>,
    /// When the provider observed it.
    pub observed_at: SystemTime,
}

impl Snapshot {
    /// A snapshot observed now.
    pub fn now(members: impl Into<Arc<[Member]>>) -> Self {
        Self {
            members: members.into(),
            observed_at: SystemTime::now(),
        }
    }
}

/// A membership source.
///
/// The stream returned by [`watch`](ClusterProvider::watch) yields a full
/// snapshot whenever membership may have changed (duplicates are fine: the
/// supervisor drops snapshots with an unchanged hash) and an `Err` for each
/// failure it recovers from by itself (it keeps going). The stream ending
/// means the provider gave up; the supervisor restarts it with backoff.
pub trait ClusterProvider: Send + Sync + 'static {
    /// What this provider can do.
    fn capabilities(&self) -> Capabilities;

    /// Checks that the backend is reachable and accepts our credentials
    /// (R1.4). In-process providers return `Ok` at once.
    fn check_connectivity(&self) -> BoxFuture<'_, std::result::Result<(), ProviderError>>;

    /// Registers (or refreshes) the local member.
    fn register(&self, local: &Member) -> BoxFuture<'_, std::result::Result<(), ProviderError>>;

    /// Removes the local member (graceful leave).
    fn deregister(&self, local: &Member) -> BoxFuture<'_, std::result::Result<(), ProviderError>>;

    /// Streams snapshots until the provider gives up.
    fn watch(&self) -> BoxStream<'static, std::result::Result<Snapshot, ProviderError>>;
}

/// The configuration of one provider, as accepted by the registry and kept
/// in the store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDescriptor {
    /// Unique name.
    pub id: ProviderId,
    /// Which implementation (`memory`, `consul`, `kubernetes`, `etcd`, ...).
    pub kind: String,
    /// Lower is preferred: the active provider is the healthy one with the
    /// lowest value. Ties are broken by id.
    pub priority: u32,
    /// Disabled providers are kept but not run.
    pub enabled: bool,
    /// Kind-specific settings; each kind documents and validates its keys.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// Whether a setting holds a secret (its value is never printed): a key
/// containing `token`, `password` or `secret`.
pub fn is_secret_setting(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "password", "secret"]
        .iter()
        .any(|s| k.contains(s))
}

impl std::fmt::Debug for ProviderDescriptor {
    /// Secret settings ([`is_secret_setting`]) print as `<redacted>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: BTreeMap<&str, &str> = self
            .settings
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_setting(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("ProviderDescriptor")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("priority", &self.priority)
            .field("enabled", &self.enabled)
            .field("settings", &settings)
            .finish()
    }
}

impl ProviderDescriptor {
    /// An enabled descriptor without settings.
    pub fn new(id: ProviderId, kind: impl Into<String>, priority: u32) -> Self {
        Self {
            id,
            kind: kind.into(),
            priority,
            enabled: true,
            settings: BTreeMap::new(),
        }
    }

    /// Adds a setting.
    pub fn with_setting(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.settings.insert(k.into(), v.into());
        self
    }

    /// Checks the fields every kind shares (R1.1).
    pub fn validate(&self) -> Result<()> {
        if self.kind.is_empty()
            || self.kind.len() > 32
            || !self
                .kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-')
        {
            return Err(ProvisioningError::validation(
                "kind",
                "must be 1 to 32 characters of a-z and '-'",
            ));
        }
        if self.priority > 1_000_000 {
            return Err(ProvisioningError::validation(
                "priority",
                "must be at most 1000000",
            ));
        }
        for (k, v) in &self.settings {
            if k.is_empty() || k.len() > 128 {
                return Err(ProvisioningError::validation(
                    "settings",
                    "keys must be 1 to 128 characters",
                ));
            }
            if v.len() > 4096 {
                return Err(ProvisioningError::validation(
                    format!("settings.{k}"),
                    "values must be at most 4096 bytes",
                ));
            }
        }
        Ok(())
    }
}

/// A provider's health, as the failover policy judges it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum ProviderHealth {
    /// Running, no snapshot yet.
    Starting,
    /// Delivering snapshots.
    Healthy,
    /// Errors or silence: its last snapshot is kept but it is not trusted.
    Degraded,
    /// Its stream ended or its actor is restarting.
    Down,
    /// Stopped for good (restart limit, or activation suppressed, R5.2).
    Failed,
    /// Not run: disabled by configuration or missing a capability (R1.3).
    Disabled,
}

impl ProviderHealth {
    /// A stable lower-case name (metrics labels, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Down => "down",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    /// The gauge value exported for this health (R4.5): 2 healthy, 1
    /// degraded or starting, 0 otherwise.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Healthy => 2.0,
            Self::Degraded | Self::Starting => 1.0,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r1_1_millis_settings_default_and_name_the_key_when_bad() {
        let d = ProviderDescriptor::new(ProviderId::new("m").unwrap(), "memory", 0)
            .with_setting("poll_ms", "250")
            .with_setting("slow_ms", "0")
            .with_setting("odd_ms", "fast");
        let ms = std::time::Duration::from_millis;
        let s = crate::settings::Settings::of(&d);
        assert_eq!(s.millis("poll_ms", 10..=1000, 5).unwrap(), ms(250));
        assert_eq!(s.millis("absent_ms", 10..=1000, 5).unwrap(), ms(5));
        for key in ["slow_ms", "odd_ms"] {
            match s.millis(key, 10..=1000, 5) {
                Err(ProviderError::Config { field, reason }) => {
                    assert_eq!(field, key);
                    assert!(reason.contains("10..=1000"), "{reason}");
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn secret_settings_never_appear_in_debug_output() {
        let d = ProviderDescriptor::new(ProviderId::new("c").unwrap(), "consul", 0)
            .with_setting("token", "s3cr3t-token")
            .with_setting("password", "hunter2")
            .with_setting("client_secret", "xyz")
            .with_setting("address", "http://127.0.0.1:8500");
        let dbg = format!("{d:?}");
        for secret in ["s3cr3t-token", "hunter2", "xyz"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(dbg.contains("<redacted>") && dbg.contains("http://127.0.0.1:8500"));
    }

    #[test]
    fn provider_ids_and_descriptors_are_validated_per_field() {
        assert!(ProviderId::new("k8s-primary").is_ok());
        for bad in ["", "Upper", "1st", "a_b", "a b"] {
            assert_eq!(
                ProviderId::new(bad).unwrap_err().code(),
                "validation.invalid_field"
            );
        }
        let id = ProviderId::new("p").unwrap();
        let ok = ProviderDescriptor::new(id.clone(), "memory", 0);
        assert!(ok.validate().is_ok());
        let e = ProviderDescriptor::new(id.clone(), "Mem ory", 0)
            .validate()
            .unwrap_err();
        assert!(matches!(e, ProvisioningError::Validation { ref field, .. } if field == "kind"));
        let e = ProviderDescriptor::new(id, "memory", 0)
            .with_setting("x", "y".repeat(5000))
            .validate()
            .unwrap_err();
        assert!(
            matches!(e, ProvisioningError::Validation { ref field, .. } if field == "settings.x")
        );
    }

    #[test]
    fn missing_capabilities_are_named() {
        let none = Capabilities::default();
        let need = Capabilities {
            watch: true,
            register: true,
            external: false,
        };
        assert_eq!(none.missing(need), vec!["watch", "register"]);
        assert!(need.missing(need).is_empty());
    }
}
