//! The SQLite store on real files: the shared contract, reopening, two
//! stores on one file (as two processes would), concurrent writers, a
//! foreign file, a damaged row, a held lock, a newer layout.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cluster_core::grain_storage::check_storage_contract;
use cluster_core::{GrainKey, GrainStorage, StorageError};
use grain_storage_sqlite::{SqliteGrainStorage, SqliteSettings};

fn key(id: &str) -> GrainKey {
    GrainKey::new("shop", "order", id)
}

#[tokio::test]
async fn meets_the_storage_contract_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteGrainStorage::open(dir.path().join("grains.db"))
        .await
        .unwrap();
    check_storage_contract(&store, "c").await;
}

#[tokio::test]
async fn reopening_the_file_keeps_states_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    {
        let store = SqliteGrainStorage::open(&path).await.unwrap();
        assert_eq!(store.write(&key("o-1"), 0, 3, b"one").await, Ok(1));
        assert_eq!(store.write(&key("o-1"), 1, 3, b"two").await, Ok(2));
    }
    let store = SqliteGrainStorage::open(&path).await.unwrap();
    let s = store.read(&key("o-1")).await.unwrap().unwrap();
    assert_eq!(
        (s.version, s.schema, s.data.as_slice()),
        (2, 3, &b"two"[..])
    );
    assert_eq!(
        store.write(&key("o-1"), 1, 3, b"stale").await,
        Err(StorageError::Conflict {
            expected: 1,
            actual: 2
        })
    );
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_others_versions_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    // Two connections, as two processes on one machine would have.
    let a = SqliteGrainStorage::open(&path).await.unwrap();
    let b = SqliteGrainStorage::open(&path).await.unwrap();
    assert_eq!(a.write(&key("o-1"), 0, 1, b"from a").await, Ok(1));
    let seen = b.read(&key("o-1")).await.unwrap().unwrap();
    assert_eq!((seen.version, seen.data.as_slice()), (1, &b"from a"[..]));
    assert_eq!(b.write(&key("o-1"), 1, 1, b"from b").await, Ok(2));
    // a's next write is based on version 1: a stale activation, refused.
    assert_eq!(
        a.write(&key("o-1"), 1, 1, b"stale a").await,
        Err(StorageError::Conflict {
            expected: 1,
            actual: 2
        })
    );
    assert_eq!(
        a.clear(&key("o-1"), 1).await,
        Err(StorageError::Conflict {
            expected: 1,
            actual: 2
        })
    );
    assert_eq!(a.clear(&key("o-1"), 2).await, Ok(()));
    assert_eq!(b.read(&key("o-1")).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_the_same_expected_version_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    let stores = [
        SqliteGrainStorage::open(&path).await.unwrap(),
        SqliteGrainStorage::open(&path).await.unwrap(),
        SqliteGrainStorage::open(&path).await.unwrap(),
    ];
    // 12 writers over 3 connections, all based on the same version.
    let refs: Vec<&dyn GrainStorage> = stores.iter().map(|s| s as &dyn GrainStorage).collect();
    cluster_core::grain_storage::check_concurrent_writers(&refs, "test").await;
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let e = SqliteGrainStorage::open(&path).await.unwrap_err();
    assert_eq!(e.code(), "storage.corrupt", "{e}");
    assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
    assert!(e.to_string().contains("not an SQLite database"), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file is untouched"
    );

    // A text file too.
    std::fs::write(&path, "cluster = \"shop\"\n").unwrap();
    let e = SqliteGrainStorage::open(&path).await.unwrap_err();
    assert_eq!(e.code(), "storage.corrupt", "{e}");
}

#[tokio::test]
async fn a_path_that_cannot_be_opened_is_unavailable_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("grains.db");
    let e = SqliteGrainStorage::open(&path).await.unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    // A directory where the file should be.
    let e = SqliteGrainStorage::open(dir.path()).await.unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
}

#[tokio::test]
async fn a_damaged_row_is_corrupt_not_a_fresh_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    let store = SqliteGrainStorage::open(&path).await.unwrap();
    assert_eq!(store.write(&key("o-1"), 0, 1, b"ok").await, Ok(1));
    assert_eq!(store.write(&key("o-2"), 0, 1, b"ok").await, Ok(1));
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE grain_state SET data = 'text, not a blob' WHERE id = 'o-1'",
        [],
    )
    .unwrap();
    raw.execute("UPDATE grain_state SET schema = -4 WHERE id = 'o-2'", [])
        .unwrap();
    for id in ["o-1", "o-2"] {
        let e = store.read(&key(id)).await.unwrap_err();
        assert_eq!(e.code(), "storage.corrupt", "{e}");
        assert!(e.to_string().contains("grains.db"), "{e}");
    }
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_unavailable_then_works_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    let settings = SqliteSettings::new().busy_timeout(Duration::from_millis(200));
    let store = SqliteGrainStorage::open_with(&path, settings)
        .await
        .unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let e = store.write(&key("o-1"), 0, 1, b"x").await.unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
    assert!(e.to_string().contains("busy timeout"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the busy timeout"
    );
    // Readers are not blocked by a writer (WAL).
    assert_eq!(store.read(&key("o-1")).await, Ok(None));
    raw.execute_batch("COMMIT").unwrap();
    assert_eq!(store.write(&key("o-1"), 0, 1, b"x").await, Ok(1));
}

#[tokio::test]
async fn the_file_is_in_wal_mode_with_the_documented_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    let store = SqliteGrainStorage::open(&path).await.unwrap();
    assert_eq!(store.write(&key("o-1"), 0, 1, b"x").await, Ok(1));
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let cols: Vec<String> = raw
        .prepare("SELECT name FROM pragma_table_info('grain_state') ORDER BY cid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        cols,
        [
            "cluster",
            "kind",
            "id",
            "version",
            "schema",
            "data",
            "updated_at"
        ]
    );
    let updated_at: i64 = raw
        .query_row("SELECT updated_at FROM grain_state", [], |r| r.get(0))
        .unwrap();
    assert!(
        updated_at > 1_600_000_000_000,
        "milliseconds since the epoch"
    );
}

#[tokio::test]
async fn a_file_of_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    drop(SqliteGrainStorage::open(&path).await.unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(raw);
    let e = SqliteGrainStorage::open(&path).await.unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
    assert!(e.to_string().contains("newer"), "{e}");
}

#[test]
fn called_outside_a_runtime_it_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteGrainStorage::open_blocking(dir.path().join("g.db"), &SqliteSettings::new()).unwrap();
    let e = futures::executor::block_on(store.read(&key("o-1"))).unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
    assert!(e.to_string().contains("outside a tokio runtime"), "{e}");
}

#[test]
fn the_store_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteGrainStorage::open_blocking(dir.path().join("g.db"), &SqliteSettings::new()).unwrap();
    send_sync(&store);
    let k = key("o");
    send(&store.read(&k));
    send(&store.write(&k, 0, 1, b""));
    send(&store.clear(&k, 0));
}

/// The environment variable that turns [`child_incrementer`] on: the path
/// of the database it increments a counter in.
const CHILD_DB: &str = "GRAIN_SQLITE_CHILD_DB";
const INCREMENTS: u64 = 100;

/// Increments a counter with read-then-write, trying again on each
/// conflict, as an activation would.
async fn increment(store: &SqliteGrainStorage, times: u64) {
    let k = key("counter");
    for _ in 0..times {
        loop {
            let (version, n) = match store.read(&k).await.unwrap() {
                None => (0, 0u64),
                Some(s) => (
                    s.version,
                    String::from_utf8(s.data).unwrap().parse().unwrap(),
                ),
            };
            match store
                .write(&k, version, 1, (n + 1).to_string().as_bytes())
                .await
            {
                Ok(_) => break,
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => panic!("an increment failed with {} ({e})", e.code()),
            }
        }
    }
}

/// The child process of
/// [`three_processes_incrementing_one_counter_lose_no_update`]; does
/// nothing as an ordinary test.
#[tokio::test]
async fn child_incrementer() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let store = SqliteGrainStorage::open(path).await.unwrap();
    increment(&store, INCREMENTS).await;
}

#[tokio::test]
async fn three_processes_incrementing_one_counter_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grains.db");
    let store = SqliteGrainStorage::open(&path).await.unwrap();
    // Two more processes: this test binary running only `child_incrementer`.
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "child_incrementer",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DB, &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    increment(&store, INCREMENTS).await;
    for mut c in children {
        let status = tokio::task::spawn_blocking(move || c.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "a child process failed: {status}");
    }
    let s = store.read(&key("counter")).await.unwrap().unwrap();
    let n: u64 = String::from_utf8(s.data).unwrap().parse().unwrap();
    assert_eq!(
        n,
        3 * INCREMENTS,
        "every increment of every process counted"
    );
    assert_eq!(s.version, 3 * INCREMENTS, "one version per write");
}
