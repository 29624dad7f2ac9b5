//! Actor paths: `/user/parent/child`.

use std::fmt;
use std::sync::Arc;

/// The location of an actor in its system's hierarchy, such as
/// `/user/provisioning/provider-memory`.
///
/// Paths are cheap to clone (one reference count). Two live actors never share
/// a path, but a path can be reused by a new actor after the old one stopped:
/// compare [`ActorRef`](crate::ActorRef)s, not paths, to tell actors apart.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorPath(Arc<str>);

impl ActorPath {
    pub(crate) fn root(name: &str) -> Self {
        Self(Arc::from(format!("/{name}")))
    }

    pub(crate) fn child(&self, name: &str) -> Self {
        Self(Arc::from(format!("{}/{name}", self.0)))
    }

    /// The whole path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment: the actor's name among its siblings.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

impl fmt::Display for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorPath({})", self.0)
    }
}

/// Checks a name given to `spawn`.
pub(crate) fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a name must not be empty");
    }
    if name.len() > 255 {
        return Err("a name must be at most 255 bytes");
    }
    if name.starts_with('$') {
        return Err("names starting with '$' are reserved for anonymous actors");
    }
    if name
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err("a name must not contain '/', whitespace or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_paths_nest_and_name_is_last_segment() {
        let p = ActorPath::root("user").child("a").child("b");
        assert_eq!(p.as_str(), "/user/a/b");
        assert_eq!(p.name(), "b");
    }

    #[test]
    fn invalid_names_are_rejected_with_a_reason() {
        assert!(validate_name("ok-name_1.x").is_ok());
        for bad in ["", "a/b", "a b", "$anon", "tab\t"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_name(&"x".repeat(256)).is_err());
    }
}
