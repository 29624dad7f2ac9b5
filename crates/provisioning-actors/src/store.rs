//! The persistent store of accepted provider definitions (R1.5).
//!
//! R1.5: *accepted definitions are persisted; after a restart the same set is
//! restored. A corrupt store fails fast with a clear error and is not
//! overwritten.*
//!
//! [`DefinitionStore`] keeps one file holding the accepted
//! [`ProviderDescriptor`]s, in the order they were saved, and the last
//! published [`Topology`] (so a restarting node has a view to start from).
//!
//! # Using it
//!
//! ```no_run
//! # async fn demo(defs: Vec<cluster_core::ProviderDescriptor>) -> cluster_core::Result<()> {
//! use provisioning_actors::store::DefinitionStore;
//!
//! let (store, stored) = DefinitionStore::open("/var/lib/node/providers.store").await?;
//! // `stored.definitions` are re-registered; `stored.last_topology`, if any,
//! // comes back with `stale = true` until a provider confirms it.
//! store.save_definitions(&defs).await?;
//! # Ok(()) }
//! ```
//!
//! - [`DefinitionStore::open`] reads the file once. A missing file is an empty
//!   store (its directory must exist). Any failure returns an error and no
//!   store, so nothing can overwrite a file that failed to load (fail fast).
//! - [`DefinitionStore::save_definitions`] replaces the definitions and keeps
//!   the topology; [`DefinitionStore::save_topology`] replaces the topology
//!   and keeps the definitions. The last saved state is kept in memory, so a
//!   save never reads the file.
//!
//! # Threading
//!
//! The API is `async`: each call runs blocking `std::fs` work (including the
//! `fsync`s) on tokio's blocking pool via `spawn_blocking`, so an actor can
//! await it without stalling its executor thread. A tokio runtime is needed.
//! The store is a cheap [`Clone`] handle; saves through any clone are
//! serialized by one mutex (held only on the blocking thread), so two
//! concurrent saves cannot lose each other's part. A save whose future is
//! dropped still runs to completion on the blocking pool.
//!
//! Use one store (and its clones) per file: two stores, or two processes, on
//! the same path are not coordinated and the last writer wins.
//!
//! # File format (version 1)
//!
//! All integers are little-endian.
//!
//! | offset | size | field                                           |
//! |-------:|-----:|-------------------------------------------------|
//! | 0      | 4    | magic `b"CPST"`                                 |
//! | 4      | 4    | format version, `u32` (= [`FORMAT_VERSION`])    |
//! | 8      | 8    | payload length in bytes, `u64`                  |
//! | 16     | 8    | XXH3-64 (seed 0) of the payload, `u64`          |
//! | 24     | len  | payload: MessagePack (rmp-serde, named fields)  |
//!
//! The payload is a map `{ definitions: [ProviderDescriptor], last_topology:
//! Topology | nil }`. Named fields let a later version add optional fields
//! without a version bump. The version is checked right after the magic, so
//! a future version may change everything after offset 8.
//!
//! # Opening: outcomes
//!
//! | file                                                        | result                       |
//! |-------------------------------------------------------------|------------------------------|
//! | missing (directory exists)                                  | empty store                  |
//! | directory missing, path is a directory, read fails          | `StoreIo` (`store.io`)       |
//! | larger than [`MAX_FILE_BYTES`] (64 MiB)                     | `StoreCorrupt`               |
//! | bad magic, short header, version 0                          | `StoreCorrupt`               |
//! | version above [`FORMAT_VERSION`]                            | `StoreVersion` (`store.version`) |
//! | length field above the limit or not matching the file size  | `StoreCorrupt`               |
//! | checksum mismatch, undecodable payload, trailing bytes      | `StoreCorrupt` (`store.corrupt`) |
//!
//! In every failing case the file is only read, never written, renamed or
//! removed. The size is checked before anything is read, so a garbage file
//! cannot exhaust memory.
//!
//! # Saving: atomic replace
//!
//! 1. Encode the new state; refuse (`StoreIo`) if the file would exceed
//!    [`MAX_FILE_BYTES`], since it could not be read back.
//! 2. Write it to a new temporary file `.<name>.tmp-<pid>-<n>` in the same
//!    directory (created exclusively; mode `0600` on Unix, since settings may
//!    hold credentials) and `fsync` it.
//! 3. `rename` it over the store file (atomic on POSIX within a directory).
//! 4. `fsync` the directory (Unix) so the rename itself is durable.
//!
//! A crash before step 3 leaves the old file plus a stray temporary file; a
//! crash after it leaves the new file. A torn store file is never visible.
//! If step 4 fails, the file already holds the new state, so the in-memory
//! state is updated too and the error is still returned (durability is not
//! confirmed). If steps 1 to 3 fail, the temporary file is removed and both
//! the file and the in-memory state keep the previous state.
//!
//! Stray temporary files of this store (`.<name>.tmp-*`) are removed, best
//! effort, after a successful open; they never affect loading.
//!
//! Loading does not re-validate the definitions (the registry does that);
//! the checksum already guarantees they are exactly what was saved.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cluster_core::{ProviderDescriptor, ProvisioningError, Result, Topology};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// The magic bytes every store file starts with.
pub const MAGIC: [u8; 4] = *b"CPST";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The header size in bytes: magic, version, length, checksum.
pub const HEADER_LEN: usize = 24;

/// The largest store file (header included) that is read or written: 64 MiB.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What [`DefinitionStore::open`] restored.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Stored {
    /// The accepted definitions, in the order they were saved.
    pub definitions: Vec<ProviderDescriptor>,
    /// The last saved topology, marked `stale = true`.
    pub last_topology: Option<Topology>,
}

/// The persistent store of accepted provider definitions and the last
/// topology. See the [module docs](self) for the format and guarantees.
#[derive(Clone, Debug)]
pub struct DefinitionStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// The last state written (or loaded); held while a save runs.
    state: Mutex<Payload>,
}

/// The encoded payload. Kept private so the file format is not the API.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
struct Payload {
    definitions: Vec<ProviderDescriptor>,
    #[serde(default)]
    last_topology: Option<Topology>,
}

impl DefinitionStore {
    /// Opens the store at `path` and returns it with what it holds.
    ///
    /// A missing file is an empty store; its directory must exist. Errors:
    /// `StoreIo` (cannot read, not a regular file, directory missing),
    /// `StoreCorrupt` (bad magic, truncated, oversized, checksum mismatch,
    /// undecodable), `StoreVersion` (written by a newer build). On error the
    /// file is left untouched and no store is returned.
    pub async fn open(path: impl Into<PathBuf>) -> Result<(Self, Stored)> {
        let path = path.into();
        let for_task = path.clone();
        let payload = run_blocking(&path, move || {
            let payload = read_store(&for_task)?;
            remove_stray_temp_files(&for_task);
            Ok(payload)
        })
        .await?;
        let stored = Stored {
            definitions: payload.definitions.clone(),
            last_topology: payload.last_topology.clone().map(|mut t| {
                t.stale = true;
                t
            }),
        };
        let store = Self {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(payload),
            }),
        };
        Ok((store, stored))
    }

    /// The store file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Atomically replaces the saved definitions, keeping the saved topology.
    ///
    /// On `StoreIo` the previous file is intact (see the module docs for the
    /// one case where the new state is written but not confirmed durable).
    pub async fn save_definitions(&self, definitions: &[ProviderDescriptor]) -> Result<()> {
        let definitions = definitions.to_vec();
        self.update(move |p| p.definitions = definitions).await
    }

    /// Atomically replaces the saved topology, keeping the saved definitions.
    ///
    /// The topology is saved as given; it is marked stale when restored.
    pub async fn save_topology(&self, topology: &Topology) -> Result<()> {
        let topology = topology.clone();
        self.update(move |p| p.last_topology = Some(topology)).await
    }

    async fn update(&self, change: impl FnOnce(&mut Payload) + Send + 'static) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        run_blocking(&self.inner.path, move || inner.update(change)).await
    }
}

impl Inner {
    /// Applies `change` to the last saved state and writes the result.
    fn update(&self, change: impl FnOnce(&mut Payload)) -> Result<()> {
        // A panic while holding the lock cannot leave a half-updated state:
        // the state is only ever replaced whole, after a successful rename.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = state.clone();
        change(&mut next);
        let bytes = encode(&next).map_err(|message| io_error(&self.path, message))?;
        write_and_rename(&self.path, &bytes)?;
        *state = next;
        drop(state);
        sync_dir(&self.path)
    }
}

/// Runs blocking file work on tokio's blocking pool. A panic in it is
/// propagated to the caller.
async fn run_blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(io_error(path, format!("store task did not finish: {e}"))),
    }
}

fn io_error(path: &Path, message: impl Into<String>) -> ProvisioningError {
    ProvisioningError::StoreIo {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Why bytes did not decode, before the path is attached.
#[derive(Debug, PartialEq, Eq)]
enum Invalid {
    Corrupt(String),
    Version(u32),
}

impl Invalid {
    fn into_error(self, path: &Path) -> ProvisioningError {
        match self {
            Self::Corrupt(message) => ProvisioningError::StoreCorrupt {
                path: path.to_path_buf(),
                message,
            },
            Self::Version(found) => ProvisioningError::StoreVersion {
                path: path.to_path_buf(),
                found,
                supported: FORMAT_VERSION,
            },
        }
    }
}

/// The complete file contents for `payload`: header then payload.
fn encode(payload: &Payload) -> std::result::Result<Vec<u8>, String> {
    let body = rmp_serde::to_vec_named(payload).map_err(|e| format!("cannot encode: {e}"))?;
    let total = (HEADER_LEN + body.len()) as u64;
    if total > MAX_FILE_BYTES {
        return Err(format!(
            "refusing to write {total} bytes: the store is limited to {MAX_FILE_BYTES} bytes"
        ));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn truncated_header(len: usize) -> Invalid {
    Invalid::Corrupt(format!(
        "truncated header: the file has {len} bytes, the header needs {HEADER_LEN}"
    ))
}

/// Decodes complete file contents. Pure: no IO.
fn decode(bytes: &[u8]) -> std::result::Result<Payload, Invalid> {
    let Some((magic, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(truncated_header(bytes.len()));
    };
    if *magic != MAGIC {
        return Err(Invalid::Corrupt(format!(
            "bad magic bytes {magic:02x?}, expected {MAGIC:02x?} (\"CPST\"): not a store file"
        )));
    }
    let Some((version, rest)) = rest.split_first_chunk::<4>() else {
        return Err(truncated_header(bytes.len()));
    };
    match u32::from_le_bytes(*version) {
        FORMAT_VERSION => {}
        0 => {
            return Err(Invalid::Corrupt(
                "format version 0 was never written".into(),
            ));
        }
        newer => return Err(Invalid::Version(newer)),
    }
    let Some((length, rest)) = rest.split_first_chunk::<8>() else {
        return Err(truncated_header(bytes.len()));
    };
    let Some((checksum, body)) = rest.split_first_chunk::<8>() else {
        return Err(truncated_header(bytes.len()));
    };
    let length = u64::from_le_bytes(*length);
    let checksum = u64::from_le_bytes(*checksum);
    let max_body = MAX_FILE_BYTES - HEADER_LEN as u64;
    if length > max_body {
        return Err(Invalid::Corrupt(format!(
            "the header's length field says {length} bytes, more than the {max_body}-byte limit"
        )));
    }
    let actual = body.len() as u64;
    if actual < length {
        return Err(Invalid::Corrupt(format!(
            "truncated: the header promises {length} payload bytes, the file has {actual}"
        )));
    }
    if actual > length {
        return Err(Invalid::Corrupt(format!(
            "{} unexpected bytes after the {length}-byte payload",
            actual - length
        )));
    }
    let computed = xxh3_64(body);
    if computed != checksum {
        return Err(Invalid::Corrupt(format!(
            "checksum mismatch: the header says {checksum:016x}, the payload hashes to {computed:016x}"
        )));
    }
    let mut de = rmp_serde::Deserializer::new(body);
    let payload = Payload::deserialize(&mut de)
        .map_err(|e| Invalid::Corrupt(format!("undecodable payload: {e}")))?;
    let left = de.get_ref().len();
    if left != 0 {
        return Err(Invalid::Corrupt(format!(
            "{left} undecoded bytes after the payload"
        )));
    }
    Ok(payload)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Reads and decodes the store file; only ever reads.
fn read_store(path: &Path) -> Result<Payload> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = parent_dir(path);
            return match fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => Ok(Payload::default()),
                Ok(_) => Err(io_error(
                    path,
                    format!("{} is not a directory", dir.display()),
                )),
                Err(e) => Err(io_error(
                    path,
                    format!("directory {} is not usable: {e}", dir.display()),
                )),
            };
        }
        Err(e) => return Err(io_error(path, format!("cannot open: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error(path, format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(io_error(path, "is not a regular file"));
    }
    let too_big = |size: u64| ProvisioningError::StoreCorrupt {
        path: path.to_path_buf(),
        message: format!(
            "the file has {size} bytes, more than the {MAX_FILE_BYTES}-byte limit; refusing to read it"
        ),
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while it is read.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    decode(&bytes).map_err(|invalid| invalid.into_error(path))
}

/// The prefix of this store's temporary files: `.<name>.tmp-`.
fn temp_prefix(path: &Path) -> Result<OsString> {
    let name = path
        .file_name()
        .ok_or_else(|| io_error(path, "the path has no file name"))?;
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    Ok(prefix)
}

/// Writes `bytes` to a fresh temporary file beside `path`, fsyncs it and
/// renames it over `path`. On error the temporary file is removed and
/// `path` is untouched.
fn write_and_rename(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = temp_prefix(path)?;
    name.push(format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = parent_dir(path).join(name);

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&tmp).map_err(|e| {
        io_error(
            path,
            format!("cannot create temporary file {}: {e}", tmp.display()),
        )
    })?;
    let written = write_synced(file, bytes)
        .map_err(|e| format!("cannot write temporary file {}: {e}", tmp.display()))
        .and_then(|()| {
            fs::rename(&tmp, path)
                .map_err(|e| format!("cannot rename {} over the store: {e}", tmp.display()))
        });
    written.map_err(|message| {
        // Best effort: a leftover is harmless and removed on the next open.
        let _ = fs::remove_file(&tmp);
        io_error(path, message)
    })
}

/// Writes all of `bytes` and fsyncs them; closes the file.
fn write_synced(mut file: File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename in the store's directory durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        io_error(
            path,
            format!(
                "the new state was written but syncing directory {} failed: {e}",
                dir.display()
            ),
        )
    })
}

/// Directories cannot be opened for syncing here; `rename` is relied on.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<()> {
    Ok(())
}

/// Removes temporary files a crashed save left beside `path`. Best effort:
/// failures are logged, never returned.
fn remove_stray_temp_files(path: &Path) {
    let Ok(prefix) = temp_prefix(path) else {
        return;
    };
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let stray = entry.path();
            if let Err(e) = fs::remove_file(&stray) {
                tracing::warn!(file = %stray.display(), error = %e, "cannot remove stray store temporary file");
            }
        }
    }
}

/// Entry points for the fuzz targets in `fuzz/` (`store_decode`): the pure
/// decoder and encoder of the file format, without the file. Not part of
/// the API; hidden from the docs.
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    use super::{Payload, Stored};

    /// Decodes complete store file contents as [`super::DefinitionStore::open`]
    /// does after reading them (the topology is *not* marked stale, so that
    /// a decode, encode, decode round trip compares equal).
    pub fn decode(bytes: &[u8]) -> Result<Stored, String> {
        super::decode(bytes)
            .map(|p| Stored {
                definitions: p.definitions,
                last_topology: p.last_topology,
            })
            .map_err(|e| e.into_error(Path::new("<fuzz>")).to_string())
    }

    /// Encodes `stored` as complete store file contents, as a save does.
    pub fn encode(stored: &Stored) -> Result<Vec<u8>, String> {
        super::encode(&Payload {
            definitions: stored.definitions.clone(),
            last_topology: stored.last_topology.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cluster_core::{
        BlockedMember, Member, MemberAddress, NodeId, ProviderId, ProvisioningStatus, TopologyHash,
    };

    fn defs() -> Vec<ProviderDescriptor> {
        vec![
            ProviderDescriptor::new(ProviderId::new("k8s").unwrap(), "kubernetes", 0)
                .with_setting("namespace", "prod"),
            ProviderDescriptor {
                enabled: false,
                ..ProviderDescriptor::new(ProviderId::new("consul-b").unwrap(), "consul", 10)
            },
        ]
    }

    fn topology() -> Topology {
        let members = vec![
            Member::new(
                NodeId::new("a").unwrap(),
                MemberAddress::new("10.0.0.1", 4000).unwrap(),
                3,
            )
            .with_role("frontend"),
            Member::new(
                NodeId::new("b").unwrap(),
                MemberAddress::new("10.0.0.2", 4000).unwrap(),
                1,
            )
            .with_label("zone", "eu-1"),
        ];
        Topology {
            hash: TopologyHash::of_sorted(&members),
            members: Arc::from(members),
            blocked: Arc::from(vec![BlockedMember {
                node_id: NodeId::new("c").unwrap(),
                incarnation: 7,
            }]),
            status: ProvisioningStatus::Active,
            seq_no: 42,
            active_provider: Some(ProviderId::new("k8s").unwrap()),
            stale: false,
        }
    }

    fn stale(mut t: Topology) -> Topology {
        t.stale = true;
        t
    }

    /// The bytes of a valid store holding `defs()` and `topology()`.
    fn valid_bytes() -> Vec<u8> {
        encode(&Payload {
            definitions: defs(),
            last_topology: Some(topology()),
        })
        .unwrap()
    }

    /// Writes `bytes` as the store file, opens it, checks the error code and
    /// that the file is byte-for-byte unchanged; returns the error.
    async fn open_fails(bytes: &[u8], code: &str) -> ProvisioningError {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        fs::write(&path, bytes).unwrap();
        let err = DefinitionStore::open(&path).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "the file must be untouched"
        );
        err
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// R1.5: saved definitions and topology come back after a reopen.
    #[tokio::test]
    async fn definitions_and_topology_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        let (store, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored, Stored::default());
        store.save_definitions(&defs()).await.unwrap();
        store.save_topology(&topology()).await.unwrap();
        drop(store);

        let (_store, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored.definitions, defs());
        assert_eq!(stored.last_topology, Some(stale(topology())));
        assert_eq!(file_names(dir.path()), vec!["providers.store"]);
    }

    /// R1.5: a missing file is an empty store, and opening does not create it.
    #[tokio::test]
    async fn missing_file_is_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        let (store, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored, Stored::default());
        assert_eq!(store.path(), path);
        assert!(!path.exists());
    }

    /// R1.5: a missing directory fails fast instead of looking like an empty
    /// store that can never be saved.
    #[tokio::test]
    async fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("providers.store");
        let err = DefinitionStore::open(&path).await.unwrap_err();
        assert_eq!(err.code(), "store.io", "{err}");
    }

    /// R1.5: a flipped payload byte fails the checksum.
    #[tokio::test]
    async fn flipped_payload_byte_is_corrupt() {
        let mut bytes = valid_bytes();
        let i = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
        bytes[i] ^= 0x01;
        let err = open_fails(&bytes, "store.corrupt").await;
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(err.to_string().contains("left untouched"), "{err}");
    }

    /// R1.5: a file that does not start with the magic is not a store.
    #[tokio::test]
    async fn wrong_magic_is_corrupt() {
        let mut bytes = valid_bytes();
        bytes[..4].copy_from_slice(b"JUNK");
        let err = open_fails(&bytes, "store.corrupt").await;
        assert!(err.to_string().contains("bad magic"), "{err}");
    }

    /// R1.5: a file cut inside the payload is corrupt.
    #[tokio::test]
    async fn truncated_file_is_corrupt() {
        let bytes = valid_bytes();
        let err = open_fails(&bytes[..bytes.len() - 5], "store.corrupt").await;
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    /// R1.5: a file cut inside the header (or empty) is corrupt.
    #[tokio::test]
    async fn truncated_header_is_corrupt() {
        let bytes = valid_bytes();
        for len in [0, 2, 4, 6, 8, 10, 16, 23] {
            let err = open_fails(&bytes[..len], "store.corrupt").await;
            assert!(err.to_string().contains("truncated header"), "{len}: {err}");
        }
    }

    /// R1.5: a huge length field is refused without allocating it.
    #[tokio::test]
    async fn huge_length_field_is_corrupt() {
        for length in [u64::MAX, MAX_FILE_BYTES] {
            let mut bytes = valid_bytes();
            bytes[8..16].copy_from_slice(&length.to_le_bytes());
            let err = open_fails(&bytes, "store.corrupt").await;
            assert!(err.to_string().contains("length field"), "{err}");
        }
    }

    /// R1.5: a file over 64 MiB is refused before it is read.
    #[tokio::test]
    async fn oversized_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap(); // sparse
        drop(file);
        let err = DefinitionStore::open(&path).await.unwrap_err();
        assert_eq!(err.code(), "store.corrupt", "{err}");
        assert!(err.to_string().contains("limit"), "{err}");
        assert_eq!(fs::metadata(&path).unwrap().len(), MAX_FILE_BYTES + 1);
    }

    /// R1.5: arbitrary garbage is corrupt.
    #[tokio::test]
    async fn garbage_is_corrupt() {
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        open_fails(&garbage, "store.corrupt").await;
        open_fails(b"{\"definitions\": []}\n", "store.corrupt").await;
    }

    /// R1.5: bytes after the payload are corrupt, not silently ignored.
    #[tokio::test]
    async fn trailing_bytes_are_corrupt() {
        let mut bytes = valid_bytes();
        bytes.extend_from_slice(b"xx");
        open_fails(&bytes, "store.corrupt").await;
    }

    /// R1.5: a payload with a valid checksum that does not decode is corrupt.
    #[tokio::test]
    async fn undecodable_payload_is_corrupt() {
        let body = b"\xc1\xc1\xc1 not msgpack";
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&xxh3_64(body).to_le_bytes());
        bytes.extend_from_slice(body);
        let err = open_fails(&bytes, "store.corrupt").await;
        assert!(err.to_string().contains("undecodable"), "{err}");
    }

    /// R1.5: a file from a newer build is refused with its version, not
    /// reported as corrupt and not overwritten.
    #[tokio::test]
    async fn newer_version_is_refused() {
        let mut bytes = valid_bytes();
        bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
        let err = open_fails(&bytes, "store.version").await;
        assert!(matches!(
            err,
            ProvisioningError::StoreVersion {
                found: 2,
                supported: 1,
                ..
            }
        ));
        // Even a header that is otherwise cut short: the version decides.
        open_fails(&bytes[..8], "store.version").await;
    }

    /// R1.5: a path that cannot be read as a file is an IO error.
    #[tokio::test]
    async fn directory_in_place_of_the_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        fs::create_dir(&path).unwrap();
        let err = DefinitionStore::open(&path).await.unwrap_err();
        assert_eq!(err.code(), "store.io", "{err}");
        assert!(path.is_dir());
    }

    /// R1.5: a temporary file left by a crashed save neither breaks open nor
    /// replaces the store; it is cleaned up.
    #[tokio::test]
    async fn stale_temp_file_from_a_crash_does_not_break_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        let stray = dir.path().join(".providers.store.tmp-999-0");
        // Crash before the first rename: no store, a torn temp file.
        fs::write(&stray, &valid_bytes()[..30]).unwrap();
        let (_, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored, Stored::default());
        assert!(!stray.exists());

        // Crash during a later save: the old store and a torn temp file.
        fs::write(&path, valid_bytes()).unwrap();
        fs::write(&stray, b"CPST\x01").unwrap();
        let other = dir.path().join("unrelated.tmp-1");
        fs::write(&other, b"keep").unwrap();
        let (store, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored.definitions, defs());
        assert!(!stray.exists());
        assert!(other.exists(), "only this store's temp files are removed");
        store.save_definitions(&[]).await.unwrap();
    }

    /// R1.5: saving the topology keeps the definitions and vice versa,
    /// without reading the file back.
    #[tokio::test]
    async fn saving_one_part_keeps_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        let (store, _) = DefinitionStore::open(&path).await.unwrap();
        store.save_definitions(&defs()).await.unwrap();
        store.save_topology(&topology()).await.unwrap();
        let (_, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored.definitions, defs());
        assert_eq!(stored.last_topology, Some(stale(topology())));

        let fewer = &defs()[..1];
        store.save_definitions(fewer).await.unwrap();
        let (_, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored.definitions, fewer);
        assert_eq!(stored.last_topology, Some(stale(topology())));

        // In-memory state, not the file, is the base of the next save.
        fs::remove_file(&path).unwrap();
        let mut t = topology();
        t.seq_no = 43;
        store.save_topology(&t).await.unwrap();
        let (_, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored.definitions, fewer);
        assert_eq!(stored.last_topology, Some(stale(t)));
    }

    /// R1.5: concurrent saves of the two parts through clones lose neither.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_keep_both_parts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        let (store, _) = DefinitionStore::open(&path).await.unwrap();
        let other = store.clone();
        let d = defs();
        let t = topology();
        let (a, b) = tokio::join!(store.save_definitions(&d), other.save_topology(&t));
        a.unwrap();
        b.unwrap();
        let (_, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored.definitions, defs());
        assert_eq!(stored.last_topology, Some(stale(topology())));
    }

    /// R1.5: a restored topology is marked stale until a provider confirms
    /// it, even if it was saved as fresh.
    #[tokio::test]
    async fn restored_topology_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.store");
        let (store, _) = DefinitionStore::open(&path).await.unwrap();
        assert!(!topology().stale);
        store.save_topology(&topology()).await.unwrap();
        let (_, stored) = DefinitionStore::open(&path).await.unwrap();
        let restored = stored.last_topology.unwrap();
        assert!(restored.stale);
        assert_eq!(restored.members, topology().members);
        assert_eq!(restored.seq_no, 42);
    }

    /// R1.5: a failed save reports `store.io` and leaves the previous file.
    #[tokio::test]
    async fn failed_save_is_an_io_error_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let path = sub.join("providers.store");
        let (store, _) = DefinitionStore::open(&path).await.unwrap();
        store.save_definitions(&defs()).await.unwrap();
        let before = fs::read(&path).unwrap();

        // The rename target is now a non-empty directory: rename fails.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), b"x").unwrap();
        let err = store.save_topology(&topology()).await.unwrap_err();
        assert_eq!(err.code(), "store.io", "{err}");
        assert_eq!(file_names(&sub), vec!["providers.store"], "temp removed");

        // Restore the old file: the in-memory state did not take the topology.
        fs::remove_dir_all(&path).unwrap();
        fs::write(&path, &before).unwrap();
        store.save_definitions(&defs()).await.unwrap();
        let (_, stored) = DefinitionStore::open(&path).await.unwrap();
        assert_eq!(stored.last_topology, None);
    }

    /// The encoder and decoder agree, and the header is laid out as
    /// documented (R1.5).
    #[test]
    fn header_layout_is_as_documented() {
        let bytes = valid_bytes();
        assert_eq!(&bytes[..4], b"CPST");
        assert_eq!(bytes[4..8], 1u32.to_le_bytes());
        let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        assert_eq!(len as usize, bytes.len() - HEADER_LEN);
        let sum = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
        assert_eq!(sum, xxh3_64(&bytes[HEADER_LEN..]));
        let payload = decode(&bytes).unwrap();
        assert_eq!(payload.definitions, defs());
        assert_eq!(payload.last_topology, Some(topology()));
    }

    /// The store and its futures can be moved across tasks.
    #[test]
    fn store_and_futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<DefinitionStore>();
        let store = DefinitionStore {
            inner: Arc::new(Inner {
                path: PathBuf::from("x"),
                state: Mutex::new(Payload::default()),
            }),
        };
        is_send(&DefinitionStore::open("x"));
        is_send(&store.save_definitions(&[]));
        is_send(&store.save_topology(&topology()));
    }
}
