//! The PostgreSQL store against a real server started by each test (see
//! `support/postgres.rs`): the shared contract, a restart keeps the data,
//! a stopped server is `storage.unavailable` within the timeout and is
//! used again once back, concurrent writers on several connections, and
//! servers that refuse or never answer.
//!
//! Without PostgreSQL installed the tests that need a server print a skip
//! line, or fail when `CI_REQUIRE_POSTGRES=1`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use cluster_core::grain_storage::check_storage_contract;
use cluster_core::{GrainKey, GrainStorage, StorageError};
use grain_storage_postgres::{PostgresGrainStorage, PostgresSettings};
use postgres::PostgresServer;

fn key(id: &str) -> GrainKey {
    GrainKey::new("shop", "order", id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meets_the_storage_contract() {
    let Some(pg) = PostgresServer::start() else {
        return;
    };
    let store = PostgresGrainStorage::connect(pg.settings()).await.unwrap();
    check_storage_contract(&store, "c").await;
    // A second store on the same database sees the same rows; connecting
    // again with the table there is fine.
    let other = PostgresGrainStorage::connect(pg.settings()).await.unwrap();
    assert_eq!(
        other
            .read(&GrainKey::new("c", "order", "o-1"))
            .await
            .unwrap()
            .map(|s| s.version),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_server_restart_and_the_store_reconnects() {
    let Some(mut pg) = PostgresServer::start() else {
        return;
    };
    let store = PostgresGrainStorage::connect(pg.settings()).await.unwrap();
    assert_eq!(store.write(&key("o-1"), 0, 2, b"one").await, Ok(1));
    assert_eq!(store.write(&key("o-1"), 1, 2, b"two").await, Ok(2));
    pg.restart();
    // The same store: its connection broke with the restart and is
    // replaced by the call.
    let s = store
        .read(&key("o-1"))
        .await
        .unwrap()
        .expect("the state is still there");
    assert_eq!(
        (s.version, s.schema, s.data.as_slice()),
        (2, 2, &b"two"[..])
    );
    assert_eq!(
        store.write(&key("o-1"), 1, 2, b"stale").await,
        Err(StorageError::Conflict {
            expected: 1,
            actual: 2
        }),
        "versions survive the restart too"
    );
    // After a crash (no checkpoint) as well: committed writes come back
    // from the WAL.
    assert_eq!(store.write(&key("o-1"), 2, 2, b"three").await, Ok(3));
    pg.crash();
    pg.start_again();
    let fresh = PostgresGrainStorage::connect(pg.settings()).await.unwrap();
    let s = fresh.read(&key("o-1")).await.unwrap().unwrap();
    assert_eq!((s.version, s.data.as_slice()), (3, &b"three"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_within_the_timeout_then_used_again() {
    let Some(mut pg) = PostgresServer::start() else {
        return;
    };
    let timeout = Duration::from_secs(2);
    let store = PostgresGrainStorage::connect(pg.settings().call_timeout(timeout))
        .await
        .unwrap();
    assert_eq!(store.write(&key("o-1"), 0, 1, b"before").await, Ok(1));
    pg.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let e = store.read(&key("o-1")).await.unwrap_err();
        assert_eq!(e.code(), "storage.unavailable", "{e}");
        assert!(
            started.elapsed() < timeout + Duration::from_millis(500),
            "within the call timeout: {:?}",
            started.elapsed()
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("127.0.0.1:{}", pg.port())),
            "names the server: {msg}"
        );
        let e = store
            .write(&key("o-1"), 1, 1, b"while down")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "storage.unavailable", "{e}");
    }
    pg.start_again();
    // Working again without a new store.
    let s = store.read(&key("o-1")).await.unwrap().unwrap();
    assert_eq!((s.version, s.data.as_slice()), (1, &b"before"[..]));
    assert_eq!(store.write(&key("o-1"), 1, 1, b"after").await, Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_the_same_expected_version_exactly_one_wins() {
    let Some(pg) = PostgresServer::start() else {
        return;
    };
    // Three stores: three connections, as three nodes would have.
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(PostgresGrainStorage::connect(pg.settings()).await.unwrap());
    }
    let refs: Vec<&dyn GrainStorage> = stores.iter().map(|s| s as &dyn GrainStorage).collect();
    cluster_core::grain_storage::check_concurrent_writers(&refs, "test").await;
    // Concurrent clears based on the same version: one wins too (the key
    // the writers above wrote 5 times).
    let hot = GrainKey::new("test", "order", "hot");
    let results = futures::future::join_all(stores.iter().map(|s| s.clear(&hot, 5))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_row_is_corrupt_not_a_fresh_state() {
    let Some(pg) = PostgresServer::start() else {
        return;
    };
    let store = PostgresGrainStorage::connect(pg.settings()).await.unwrap();
    assert_eq!(store.write(&key("o-1"), 0, 1, b"ok").await, Ok(1));
    // The check constraint keeps versions positive, so an operator's
    // mistake has to drop it first.
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            pg.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "ALTER TABLE grain_state DROP CONSTRAINT grain_state_version_check;
             UPDATE grain_state SET version = -3 WHERE id = 'o-1'",
        )
        .await
        .unwrap();
    let e = store.read(&key("o-1")).await.unwrap_err();
    assert_eq!(e.code(), "storage.corrupt", "{e}");
    assert!(e.to_string().contains("shop/order/o-1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_timeout_is_unavailable_and_abandoned_by_the_server() {
    let Some(pg) = PostgresServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(800);
    let store = PostgresGrainStorage::connect(pg.settings().call_timeout(timeout))
        .await
        .unwrap();
    assert_eq!(store.write(&key("o-1"), 0, 1, b"one").await, Ok(1));
    // Another session holds the row: the store's UPDATE waits.
    let (mut client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            pg.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let tx = client.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM grain_state WHERE id = 'o-1' FOR UPDATE", &[])
        .await
        .unwrap();
    let started = Instant::now();
    let e = store.write(&key("o-1"), 1, 1, b"late").await.unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
    assert!(
        started.elapsed() < timeout + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    tx.commit().await.unwrap();
    // The server gave up on the statement too: it is not applied once the
    // lock is released.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = store.read(&key("o-1")).await.unwrap().unwrap();
    assert_eq!((s.version, s.data.as_slice()), (1, &b"one"[..]));
    assert_eq!(store.write(&key("o-1"), 1, 1, b"two").await, Ok(2));
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_with_the_reason() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let settings = PostgresSettings::new("127.0.0.1", port, "postgres", "postgres");
    let started = Instant::now();
    let e = PostgresGrainStorage::connect(settings.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}/postgres")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "the reason: {msg}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // A lazy store fails the same way on its calls, not at creation.
    let lazy = PostgresGrainStorage::lazy(settings);
    let e = lazy.read(&key("o-1")).await.unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_within_the_bounds() {
    // Accepts connections and never says a word (a hung server, a black
    // hole behind a proxy).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            sockets.push(s);
        }
    });
    let settings = PostgresSettings::new("127.0.0.1", port, "postgres", "postgres")
        .connect_timeout(Duration::from_millis(400))
        .call_timeout(Duration::from_millis(700));
    let started = Instant::now();
    let e = PostgresGrainStorage::connect(settings.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
    assert!(e.to_string().contains("within"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    let lazy = PostgresGrainStorage::lazy(settings);
    for call in 0..3 {
        let started = Instant::now();
        let e = match call {
            0 => lazy.read(&key("o-1")).await.unwrap_err(),
            1 => lazy.write(&key("o-1"), 0, 1, b"x").await.unwrap_err(),
            _ => lazy.clear(&key("o-1"), 0).await.unwrap_err(),
        };
        assert_eq!(e.code(), "storage.unavailable", "{e}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
    held.abort();
}

#[test]
fn the_store_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let store = PostgresGrainStorage::lazy(PostgresSettings::new("h", 1, "u", "d"));
    send_sync(&store);
    let k = key("o");
    send(&store.read(&k));
    send(&store.write(&k, 0, 1, b""));
    send(&store.clear(&k, 0));
}

#[test]
fn called_outside_a_runtime_it_is_unavailable_not_a_panic() {
    let store = PostgresGrainStorage::lazy(PostgresSettings::new("h", 1, "u", "d"));
    let e = futures::executor::block_on(store.read(&key("o"))).unwrap_err();
    assert_eq!(e.code(), "storage.unavailable", "{e}");
}
