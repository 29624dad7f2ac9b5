//! The `file` membership provider: a directory shared by the nodes of one
//! machine, one JSON file per member.
//!
//! It exists for clusters of several processes on one host (development,
//! demonstrations, the multi-process example) where the in-memory table
//! cannot reach and no backend runs. It is not for production: the
//! directory is not replicated, and a node that crashes leaves its file
//! behind (Remoting's failure detector quarantines it; a graceful leave
//! removes it).
//!
//! # Layout
//!
//! `<dir>/<node_id>.member.json` holds the [`Member`] as JSON (node id,
//! address, incarnation, roles, labels). Registering writes it atomically
//! (a temporary file in the same directory, then a rename), so a reader
//! never sees half a file; deregistering removes it if it still holds this
//! incarnation. Other files are ignored.
//!
//! # Watching
//!
//! The directory is polled every `poll_ms`; every poll yields a full
//! snapshot, changed or not, which also serves as the keepalive the
//! supervisor's silence detection needs. A file that does not parse, or
//! whose node id does not match its name, is skipped with a warning and
//! counted (`provider_file_skipped_total`): one bad file never hides the
//! others. A directory that cannot be read yields an error item
//! (`provider.connectivity`).
//!
//! # Settings (kind `file`)
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `dir` | yes | the shared directory (must exist) |
//! | `poll_ms` | no | poll interval in ms, 10..=60000 (default 500; keep it well below the failover silence timeout) |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cluster_core::{ClusterProvider, Member, MemberAddress, NodeId};
//! use futures::StreamExt;
//! use provider_file::FileProvider;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let p = FileProvider::new(dir.path(), std::time::Duration::from_millis(50));
//! let me = Member::new(NodeId::new("a").unwrap(), MemberAddress::new("127.0.0.1", 7001).unwrap(), 1);
//! p.register(&me).await.unwrap();
//! let snapshot = p.watch().next().await.unwrap().unwrap();
//! assert_eq!(*snapshot.members, [me.clone()]);
//! p.deregister(&me).await.unwrap();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cluster_core::settings::Settings;
use cluster_core::{
    Capabilities, ClusterProvider, Member, MemberAddress, ProviderDescriptor, ProviderError,
    ProviderFactory, Snapshot,
};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::AsyncReadExt;

const SUFFIX: &str = ".member.json";

/// Counter, label `node`: member files that did not parse or were
/// misnamed. `node` is the node id of the member last registered through
/// this provider (the provider is not told its node otherwise), empty
/// before any registration and for [`read_members`].
pub const SKIPPED_TOTAL: &str = "provider_file_skipped_total";

/// Describes this crate's metrics (description and unit) to the installed
/// recorder; call it once, after installing the recorder.
pub fn describe() {
    metrics::describe_counter!(
        SKIPPED_TOTAL,
        metrics::Unit::Count,
        "Member files of the file provider that did not parse or were misnamed, by node."
    );
}

/// A provider over a shared directory (see the [crate documentation](crate)).
#[derive(Clone, Debug)]
pub struct FileProvider {
    dir: PathBuf,
    poll: Duration,
    /// The `node` label of its metrics: the member last registered.
    node: Arc<std::sync::Mutex<Arc<str>>>,
}

impl FileProvider {
    /// A provider over `dir`, polled every `poll`.
    pub fn new(dir: impl Into<PathBuf>, poll: Duration) -> Self {
        Self {
            dir: dir.into(),
            poll,
            node: Arc::default(),
        }
    }

    fn path_of(&self, member: &Member) -> PathBuf {
        self.dir
            .join(format!("{}{SUFFIX}", member.node_id.as_str()))
    }
}

/// Reads every member file of `dir`, sorted by node id.
pub async fn read_members(dir: &Path) -> Result<Vec<Member>, ProviderError> {
    read_members_for(dir, Arc::from("")).await
}

/// [`read_members`], counting skipped files under the label `node`.
async fn read_members_for(dir: &Path, node: Arc<str>) -> Result<Vec<Member>, ProviderError> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| ProviderError::Connectivity(format!("{}: {e}", dir.display())))?;
    let mut members = Vec::new();
    loop {
        let entry = match entries.next_entry().await {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                return Err(ProviderError::Connectivity(format!(
                    "{}: {e}",
                    dir.display()
                )));
            }
        };
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        match parse(stem, &entry.path()).await {
            Ok(m) => members.push(m),
            Err(reason) => {
                metrics::counter!(SKIPPED_TOTAL, "node" => node.clone()).increment(1);
                tracing::warn!(file = %entry.path().display(), %reason, "member file skipped");
            }
        }
    }
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    Ok(members)
}

/// Largest member file read (a member is a few hundred bytes).
const MAX_FILE: u64 = 64 * 1024;

async fn parse(stem: &str, path: &Path) -> Result<Member, String> {
    // Only regular files, checked before reading: a FIFO would block the
    // watch, a huge file would be read whole.
    let meta = tokio::fs::metadata(path).await.map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!("{} bytes is over the 64 KiB limit", meta.len()));
    }
    let mut bytes = Vec::new();
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err("grew over the 64 KiB limit while being read".into());
    }
    let m: Member = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if m.node_id.as_str() != stem {
        return Err(format!(
            "holds node {} but is named after {stem}",
            m.node_id
        ));
    }
    // Deserialization does not validate the address: do it here.
    MemberAddress::new(m.address.host.clone(), m.address.port).map_err(|e| e.to_string())?;
    Ok(m)
}

impl ClusterProvider for FileProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: true,
            external: true,
        }
    }

    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move { read_members(&self.dir).await.map(|_| ()) })
    }

    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let member = local.clone();
        *self
            .node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::from(member.node_id.as_str());
        Box::pin(async move {
            let json = serde_json::to_vec_pretty(&member)
                .map_err(|e| ProviderError::Registration(e.to_string()))?;
            let path = self.path_of(&member);
            let tmp = self.dir.join(format!(
                ".{}.{}.tmp",
                member.node_id.as_str(),
                member.incarnation
            ));
            let write = async {
                tokio::fs::write(&tmp, &json).await?;
                tokio::fs::rename(&tmp, &path).await
            };
            write
                .await
                .map_err(|e| ProviderError::Registration(format!("{}: {e}", path.display())))
        })
    }

    fn deregister(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let member = local.clone();
        Box::pin(async move {
            let path = self.path_of(&member);
            // Only our own incarnation: a successor may have registered.
            match parse(member.node_id.as_str(), &path).await {
                Ok(m) if m.incarnation == member.incarnation => tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| ProviderError::Registration(format!("{}: {e}", path.display()))),
                _ => Ok(()),
            }
        })
    }

    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let dir = Arc::new(self.dir.clone());
        let poll = self.poll;
        let node = self.node.clone();
        stream::unfold(true, move |first| {
            let dir = dir.clone();
            let node = node
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            async move {
                if !first {
                    tokio::time::sleep(poll).await;
                }
                Some((read_members_for(&dir, node).await.map(Snapshot::now), false))
            }
        })
        .boxed()
    }
}

/// Factory of the `file` kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileKind;

impl ProviderFactory for FileKind {
    fn kind(&self) -> &str {
        "file"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        let s = Settings::of(d);
        let dir = s.required("dir", "the shared directory")?;
        let poll = s.millis("poll_ms", 10..=60_000, 500)?;
        Ok(Arc::new(FileProvider::new(dir, poll)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::{MemberAddress, NodeId, ProviderId};

    fn member(id: &str, inc: u64) -> Member {
        Member::new(
            NodeId::new(id).unwrap(),
            MemberAddress::new("127.0.0.1", 7000).unwrap(),
            inc,
        )
    }

    #[tokio::test]
    async fn register_watch_deregister_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path(), Duration::from_millis(10));
        let (a, b) = (member("a", 1), member("b", 2).with_role("web"));
        p.register(&a).await.unwrap();
        p.register(&b).await.unwrap();
        let mut w = p.watch();
        let s = w.next().await.unwrap().unwrap();
        assert_eq!(*s.members, [a.clone(), b.clone()]);
        p.deregister(&a).await.unwrap();
        let s = w.next().await.unwrap().unwrap();
        assert_eq!(*s.members, [b]);
    }

    #[tokio::test]
    async fn deregister_leaves_a_newer_incarnation_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path(), Duration::from_millis(10));
        p.register(&member("a", 2)).await.unwrap();
        p.deregister(&member("a", 1)).await.unwrap();
        assert_eq!(
            read_members(dir.path()).await.unwrap(),
            vec![member("a", 2)]
        );
    }

    #[tokio::test]
    async fn corrupt_or_misnamed_files_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path(), Duration::from_millis(10));
        p.register(&member("a", 1)).await.unwrap();
        std::fs::write(dir.path().join("b.member.json"), b"{not json").unwrap();
        let c = serde_json::to_vec(&member("c", 1)).unwrap();
        std::fs::write(dir.path().join("d.member.json"), c).unwrap();
        std::fs::write(dir.path().join("README"), b"ignored").unwrap();
        // A member with an invalid address, and a directory with the suffix.
        let mut bad = member("e", 1);
        bad.address.port = 0;
        std::fs::write(
            dir.path().join("e.member.json"),
            serde_json::to_vec(&bad).unwrap(),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("f.member.json")).unwrap();
        // Over the size limit.
        std::fs::write(dir.path().join("g.member.json"), vec![b' '; 70_000]).unwrap();
        assert_eq!(
            read_members(dir.path()).await.unwrap(),
            vec![member("a", 1)]
        );
    }

    #[tokio::test]
    async fn a_missing_directory_is_a_connectivity_error() {
        let p = FileProvider::new("/nonexistent/cluster-dir", Duration::from_millis(10));
        let e = p.check_connectivity().await.unwrap_err();
        assert_eq!(e.code(), "provider.connectivity");
        let e = p.watch().next().await.unwrap().unwrap_err();
        assert_eq!(e.code(), "provider.connectivity");
    }

    #[test]
    fn settings_are_validated() {
        let d = |k: &str, v: &str| {
            ProviderDescriptor::new(ProviderId::new("f").unwrap(), "file", 0).with_setting(k, v)
        };
        let err = |r: Result<Arc<dyn ClusterProvider>, ProviderError>| match r {
            Err(ProviderError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {:?}", other.map(|_| ())),
        };
        assert_eq!(err(FileKind.create(&d("poll_ms", "5"))), "dir");
        assert_eq!(err(FileKind.create(&d("dir", ""))), "dir");
        assert_eq!(
            err(FileKind.create(&d("dir", "/tmp").with_setting("poll_ms", "fast"))),
            "poll_ms"
        );
        assert!(FileKind.create(&d("dir", "/tmp")).is_ok());
    }
}
