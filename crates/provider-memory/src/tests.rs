//! P1: the provider, its watch streams and every fault.

use std::time::Duration;

use cluster_core::{ClusterProvider, Member, MemberAddress, NodeId, ProviderError, Snapshot};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::{Instant, timeout};

use crate::{MembershipTable, MemoryProvider};

type Watch = BoxStream<'static, Result<Snapshot, ProviderError>>;

/// Long enough for anything that should arrive (the clock is paused, so it
/// costs nothing); waits that should see nothing use [`QUIET`].
const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(100);

fn member(id: &str, incarnation: u64) -> Member {
    Member::new(
        NodeId::new(id).unwrap(),
        MemberAddress::new("127.0.0.1", 4000).unwrap(),
        incarnation,
    )
}

fn names(s: &Snapshot) -> Vec<&str> {
    s.members.iter().map(|m| m.node_id.as_str()).collect()
}

/// The next item, failing the test if none arrives within [`WAIT`].
async fn next(w: &mut Watch) -> Option<Result<Snapshot, ProviderError>> {
    timeout(WAIT, w.next())
        .await
        .expect("the stream produced nothing in time")
}

/// The next item, which must be a snapshot.
async fn snap(w: &mut Watch) -> Snapshot {
    next(w).await.expect("stream ended").expect("an error item")
}

/// Asserts the stream yields nothing (neither item nor end) for [`QUIET`].
async fn quiet(w: &mut Watch) {
    if let Ok(item) = timeout(QUIET, w.next()).await {
        panic!("expected silence, got {item:?}");
    }
}

fn table_of(ids: &[&str]) -> MembershipTable {
    let t = MembershipTable::new();
    for id in ids {
        t.upsert(member(id, 1));
    }
    t
}

/// P1: an in-process provider can watch and register and needs no
/// connectivity check.
#[test]
fn p1_capabilities_are_watch_and_register_not_external() {
    let c = MemoryProvider::new(MembershipTable::new()).capabilities();
    assert!(c.watch && c.register && !c.external);
}

/// P1: check_connectivity succeeds when no fault is set.
#[tokio::test(start_paused = true)]
async fn p1_check_connectivity_is_ok_without_fault() {
    let p = MemoryProvider::new(MembershipTable::new());
    assert_eq!(timeout(WAIT, p.check_connectivity()).await.unwrap(), Ok(()));
}

/// P1: register upserts the local member; registering again refreshes it.
#[tokio::test(start_paused = true)]
async fn p1_register_upserts_the_local_member() {
    let p = MemoryProvider::new(MembershipTable::new());
    timeout(WAIT, p.register(&member("a", 1)))
        .await
        .unwrap()
        .unwrap();
    timeout(WAIT, p.register(&member("a", 2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.table().members(), vec![member("a", 2)]);
}

/// P1: deregister removes the member only if the stored incarnation matches,
/// so a late leave of a former self does not remove the restarted node.
#[tokio::test(start_paused = true)]
async fn p1_deregister_removes_only_a_matching_incarnation() {
    let p = MemoryProvider::new(table_of(&[]));
    p.table().upsert(member("a", 2));
    timeout(WAIT, p.deregister(&member("a", 1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.table().len(), 1);
    timeout(WAIT, p.deregister(&member("a", 2)))
        .await
        .unwrap()
        .unwrap();
    assert!(p.table().is_empty());
    // Deregistering an absent member is a no-op success.
    timeout(WAIT, p.deregister(&member("a", 2)))
        .await
        .unwrap()
        .unwrap();
}

/// P1: watch yields the current snapshot at once, sorted by node id.
#[tokio::test(start_paused = true)]
async fn p1_watch_yields_the_current_snapshot_at_once() {
    let p = MemoryProvider::new(table_of(&["b", "a"]));
    let mut w = p.watch();
    let start = Instant::now();
    assert_eq!(names(&snap(&mut w).await), ["a", "b"]);
    assert_eq!(start.elapsed(), Duration::ZERO);
    quiet(&mut w).await;
}

/// P1: watch yields a new snapshot for every change of the table (upsert,
/// remove, replace_all, clear) and nothing for no-op changes.
#[tokio::test(start_paused = true)]
async fn p1_watch_yields_a_snapshot_per_table_change() {
    let t = table_of(&[]);
    let p = MemoryProvider::new(t.clone());
    let mut w = p.watch();
    assert!(snap(&mut w).await.members.is_empty());
    t.upsert(member("a", 1));
    assert_eq!(names(&snap(&mut w).await), ["a"]);
    t.upsert(member("a", 1));
    quiet(&mut w).await;
    t.replace_all(vec![member("c", 1), member("b", 1)]);
    assert_eq!(names(&snap(&mut w).await), ["b", "c"]);
    t.remove(&NodeId::new("b").unwrap());
    assert_eq!(names(&snap(&mut w).await), ["c"]);
    t.clear();
    assert!(snap(&mut w).await.members.is_empty());
    quiet(&mut w).await;
}

/// P1: changes made while the consumer is not polling coalesce into one
/// snapshot of the latest state.
#[tokio::test(start_paused = true)]
async fn p1_watch_coalesces_unread_changes_into_the_latest_state() {
    let t = table_of(&[]);
    let p = MemoryProvider::new(t.clone());
    let mut w = p.watch();
    snap(&mut w).await;
    for id in ["a", "b", "c"] {
        t.upsert(member(id, 1));
    }
    assert_eq!(names(&snap(&mut w).await), ["a", "b", "c"]);
    quiet(&mut w).await;
}

/// P1: a stream keeps working after its provider is dropped, and several
/// streams of one provider each see every change.
#[tokio::test(start_paused = true)]
async fn p1_streams_are_independent_of_the_provider_and_each_other() {
    let t = table_of(&[]);
    let p = MemoryProvider::new(t.clone());
    let mut w1 = p.watch();
    let mut w2 = p.watch();
    drop(p);
    snap(&mut w1).await;
    snap(&mut w2).await;
    t.upsert(member("a", 1));
    assert_eq!(names(&snap(&mut w1).await), ["a"]);
    assert_eq!(names(&snap(&mut w2).await), ["a"]);
}

/// P1: two providers over one table see each other's registrations and
/// leaves.
#[tokio::test(start_paused = true)]
async fn p1_two_providers_on_one_table_see_each_others_registrations() {
    let t = MembershipTable::new();
    let pa = MemoryProvider::new(t.clone());
    let pb = MemoryProvider::new(t.clone());
    let mut wa = pa.watch();
    let mut wb = pb.watch();
    snap(&mut wa).await;
    snap(&mut wb).await;

    timeout(WAIT, pa.register(&member("a", 1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&snap(&mut wb).await), ["a"]);
    timeout(WAIT, pb.register(&member("b", 1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&snap(&mut wa).await), ["a", "b"]);
    assert_eq!(names(&snap(&mut wb).await), ["a", "b"]);

    timeout(WAIT, pa.deregister(&member("a", 1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&snap(&mut wb).await), ["b"]);
}

/// P1: faults are per provider: every fault set on A leaves B's stream,
/// registration and connectivity untouched.
#[tokio::test(start_paused = true)]
async fn p1_a_fault_on_provider_a_does_not_affect_provider_b() {
    let t = table_of(&["x"]);
    let pa = MemoryProvider::new(t.clone());
    let pb = MemoryProvider::new(t.clone());
    let mut wa = pa.watch();
    let mut wb = pb.watch();
    snap(&mut wa).await;
    snap(&mut wb).await;

    let fa = pa.faults();
    fa.silence(true);
    fa.empty_snapshots(true);
    fa.truncate_to(Some(0));
    fa.slow(Duration::from_secs(60));
    fa.fail_registration(true);
    fa.fail_connectivity(Some(ProviderError::Connectivity("down".into())));
    fa.fail_next(3, ProviderError::Stream("boom".into()));

    t.upsert(member("y", 1));
    let start = Instant::now();
    assert_eq!(names(&snap(&mut wb).await), ["x", "y"]);
    assert_eq!(start.elapsed(), Duration::ZERO);
    quiet(&mut wa).await;
    assert!(pa.register(&member("a", 1)).await.is_err());
    timeout(WAIT, pb.register(&member("b", 1)))
        .await
        .unwrap()
        .unwrap();
    assert!(pa.check_connectivity().await.is_err());
    assert_eq!(pb.check_connectivity().await, Ok(()));
    assert_eq!(names(&snap(&mut wb).await), ["b", "x", "y"]);

    fa.end_stream();
    fa.end_all_streams_forever(true);
    assert!(next(&mut wa).await.is_none());
    t.remove(&NodeId::new("x").unwrap());
    assert_eq!(names(&snap(&mut wb).await), ["b", "y"]);
    let mut wb2 = pb.watch();
    assert_eq!(names(&snap(&mut wb2).await), ["b", "y"]);
}

/// P1: a silenced stream yields nothing, even across table changes, then
/// resumes with the latest snapshot when the silence is lifted.
#[tokio::test(start_paused = true)]
async fn p1_silence_stops_items_then_resumes_with_the_latest_snapshot() {
    let t = table_of(&["a"]);
    let p = MemoryProvider::new(t.clone());
    let mut w = p.watch();
    snap(&mut w).await;
    p.faults().silence(true);
    t.upsert(member("b", 1));
    t.upsert(member("c", 1));
    quiet(&mut w).await;
    timeout(Duration::from_secs(30), w.next())
        .await
        .expect_err("a silenced stream must stay silent");
    p.faults().silence(false);
    assert_eq!(names(&snap(&mut w).await), ["a", "b", "c"]);
    quiet(&mut w).await;
}

/// P1: a stream opened while silenced holds even its first snapshot until the
/// silence is lifted; lifting it without any change still yields a snapshot.
#[tokio::test(start_paused = true)]
async fn p1_silence_before_watch_holds_the_first_snapshot() {
    let p = MemoryProvider::new(table_of(&["a"]));
    p.faults().silence(true);
    let mut w = p.watch();
    quiet(&mut w).await;
    p.faults().silence(false);
    assert_eq!(names(&snap(&mut w).await), ["a"]);
    p.faults().silence(true);
    quiet(&mut w).await;
    p.faults().silence(false);
    assert_eq!(names(&snap(&mut w).await), ["a"]);
}

/// P1: fail_next(n, e) makes the next n items that error, on an open stream
/// at once, then a fresh snapshot follows and the stream is normal again.
#[tokio::test(start_paused = true)]
async fn p1_fail_next_yields_n_errors_then_a_fresh_snapshot() {
    let t = table_of(&["a"]);
    let p = MemoryProvider::new(t.clone());
    let mut w = p.watch();
    snap(&mut w).await;
    let e = ProviderError::Stream("injected".into());
    p.faults().fail_next(2, e.clone());
    assert_eq!(next(&mut w).await, Some(Err(e.clone())));
    assert_eq!(next(&mut w).await, Some(Err(e)));
    assert_eq!(names(&snap(&mut w).await), ["a"]);
    quiet(&mut w).await;
    t.upsert(member("b", 1));
    assert_eq!(names(&snap(&mut w).await), ["a", "b"]);
}

/// P1: errors set before watch come before the first snapshot, and
/// fail_next(0, _) cancels pending errors.
#[tokio::test(start_paused = true)]
async fn p1_fail_next_before_watch_and_cancel_with_zero() {
    let p = MemoryProvider::new(table_of(&["a"]));
    let e = ProviderError::Protocol("garbage".into());
    p.faults().fail_next(1, e.clone());
    let mut w = p.watch();
    assert_eq!(next(&mut w).await, Some(Err(e.clone())));
    assert_eq!(names(&snap(&mut w).await), ["a"]);

    p.faults().fail_next(5, e);
    p.faults()
        .fail_next(0, ProviderError::Stream("unused".into()));
    quiet(&mut w).await;
    p.table().upsert(member("b", 1));
    assert_eq!(names(&snap(&mut w).await), ["a", "b"]);
}

/// P1: end_stream ends every open stream (None, and None again when polled
/// after the end), while a new watch works.
#[tokio::test(start_paused = true)]
async fn p1_end_stream_ends_open_streams_but_new_watches_work() {
    let t = table_of(&["a"]);
    let p = MemoryProvider::new(t.clone());
    let mut w1 = p.watch();
    let mut w2 = p.watch();
    snap(&mut w1).await;
    p.faults().end_stream();
    assert!(next(&mut w1).await.is_none());
    assert!(next(&mut w1).await.is_none());
    assert!(next(&mut w2).await.is_none());
    let mut w3 = p.watch();
    assert_eq!(names(&snap(&mut w3).await), ["a"]);
    t.upsert(member("b", 1));
    assert_eq!(names(&snap(&mut w3).await), ["a", "b"]);
}

/// P1: end_all_streams_forever ends open streams and every new one until it
/// is cleared.
#[tokio::test(start_paused = true)]
async fn p1_end_all_streams_forever_ends_new_streams_until_cleared() {
    let p = MemoryProvider::new(table_of(&["a"]));
    let mut w = p.watch();
    snap(&mut w).await;
    p.faults().end_all_streams_forever(true);
    assert!(next(&mut w).await.is_none());
    let mut again = p.watch();
    assert!(next(&mut again).await.is_none());
    p.faults().end_all_streams_forever(false);
    let mut fresh = p.watch();
    assert_eq!(names(&snap(&mut fresh).await), ["a"]);
}

/// P1: slow(d) delays every snapshot by d (paused clock), the first one
/// included; the snapshot shows the state at emission time.
#[tokio::test(start_paused = true)]
async fn p1_slow_delays_each_snapshot() {
    let t = table_of(&["a"]);
    let p = MemoryProvider::new(t.clone());
    let d = Duration::from_secs(3);
    p.faults().slow(d);
    let mut w = p.watch();
    let start = Instant::now();
    snap(&mut w).await;
    assert_eq!(start.elapsed(), d);

    let start = Instant::now();
    t.upsert(member("b", 1));
    assert_eq!(names(&snap(&mut w).await), ["a", "b"]);
    assert_eq!(start.elapsed(), d);

    p.faults().slow(Duration::ZERO);
    let start = Instant::now();
    t.upsert(member("c", 1));
    snap(&mut w).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

/// P1: end_stream ends a stream even while it waits out a slow delay.
#[tokio::test(start_paused = true)]
async fn p1_end_stream_interrupts_a_slow_delay() {
    let p = MemoryProvider::new(table_of(&["a"]));
    p.faults().slow(Duration::from_secs(3600));
    let mut w = p.watch();
    quiet(&mut w).await;
    p.faults().end_stream();
    let start = Instant::now();
    assert!(next(&mut w).await.is_none());
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// P1: empty_snapshots makes snapshots list no member, on an open stream at
/// once, and the real list comes back when cleared.
#[tokio::test(start_paused = true)]
async fn p1_empty_snapshots_report_zero_members() {
    let t = table_of(&["a", "b"]);
    let p = MemoryProvider::new(t.clone());
    let mut w = p.watch();
    assert_eq!(snap(&mut w).await.members.len(), 2);
    p.faults().empty_snapshots(true);
    assert!(snap(&mut w).await.members.is_empty());
    t.upsert(member("c", 1));
    assert!(snap(&mut w).await.members.is_empty());
    assert_eq!(t.len(), 3, "the table itself is untouched");
    p.faults().empty_snapshots(false);
    assert_eq!(names(&snap(&mut w).await), ["a", "b", "c"]);
}

/// P1: truncate_to(Some(k)) makes snapshots list only the first k members by
/// node id; None restores the full list.
#[tokio::test(start_paused = true)]
async fn p1_truncate_to_reports_only_the_first_k_members() {
    let t = table_of(&["c", "a", "b"]);
    let p = MemoryProvider::new(t.clone());
    p.faults().truncate_to(Some(2));
    let mut w = p.watch();
    assert_eq!(names(&snap(&mut w).await), ["a", "b"]);
    p.faults().truncate_to(Some(1));
    assert_eq!(names(&snap(&mut w).await), ["a"]);
    p.faults().truncate_to(Some(10));
    assert_eq!(names(&snap(&mut w).await), ["a", "b", "c"]);
    p.faults().truncate_to(Some(1));
    assert_eq!(names(&snap(&mut w).await), ["a"]);
    p.faults().truncate_to(None);
    assert_eq!(names(&snap(&mut w).await), ["a", "b", "c"]);
}

/// P1: fail_registration makes register and deregister return a
/// Registration error and leave the table unchanged.
#[tokio::test(start_paused = true)]
async fn p1_fail_registration_fails_register_and_deregister() {
    let p = MemoryProvider::new(table_of(&["a"]));
    p.faults().fail_registration(true);
    let e = timeout(WAIT, p.register(&member("b", 1)))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), "provider.registration");
    let e = timeout(WAIT, p.deregister(&member("a", 1)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ProviderError::Registration(_)));
    assert_eq!(p.table().members(), vec![member("a", 1)]);
    p.faults().fail_registration(false);
    timeout(WAIT, p.register(&member("b", 1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.table().len(), 2);
}

/// P1: fail_connectivity(Some(e)) makes check_connectivity return e; None
/// makes it succeed again.
#[tokio::test(start_paused = true)]
async fn p1_fail_connectivity_returns_the_error() {
    let p = MemoryProvider::new(MembershipTable::new());
    let e = ProviderError::Auth("missing permission list".into());
    p.faults().fail_connectivity(Some(e.clone()));
    assert_eq!(timeout(WAIT, p.check_connectivity()).await.unwrap(), Err(e));
    p.faults().fail_connectivity(None);
    assert_eq!(timeout(WAIT, p.check_connectivity()).await.unwrap(), Ok(()));
}

/// P1: reset clears every fault; a silenced, reshaped open stream resumes
/// with the full latest snapshot.
#[tokio::test(start_paused = true)]
async fn p1_reset_clears_every_fault() {
    let t = table_of(&["a", "b"]);
    let p = MemoryProvider::new(t.clone());
    let f = p.faults();
    let mut w = p.watch();
    snap(&mut w).await;
    f.silence(true);
    f.empty_snapshots(true);
    f.truncate_to(Some(1));
    f.slow(Duration::from_secs(60));
    f.fail_registration(true);
    f.fail_connectivity(Some(ProviderError::Connectivity("x".into())));
    f.fail_next(4, ProviderError::Stream("x".into()));
    quiet(&mut w).await;
    f.reset();

    let start = Instant::now();
    assert_eq!(names(&snap(&mut w).await), ["a", "b"]);
    assert_eq!(start.elapsed(), Duration::ZERO);
    quiet(&mut w).await;

    f.end_all_streams_forever(true);
    assert!(next(&mut w).await.is_none());
    f.reset();
    let mut fresh = p.watch();
    assert_eq!(names(&snap(&mut fresh).await), ["a", "b"]);
    assert_eq!(p.check_connectivity().await, Ok(()));
    timeout(WAIT, p.register(&member("c", 1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&snap(&mut fresh).await), ["a", "b", "c"]);
    assert!(format!("{f:?}").contains("FaultHandle"));
}

/// P1: with a keepalive, a quiet table still yields a snapshot every
/// interval (so silence detection can tell quiet from dead); a silenced
/// stream sends none.
#[tokio::test(start_paused = true)]
async fn p1_keepalive_resends_quiet_snapshots_but_not_when_silenced() {
    let table = MembershipTable::new();
    let provider = MemoryProvider::new(table.clone()).with_keepalive(Duration::from_secs(5));
    let mut stream = provider.watch();
    let first = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))));
    let t0 = tokio::time::Instant::now();
    let again = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    assert!(matches!(again, Ok(Some(Ok(_)))), "keepalive snapshot");
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    provider.faults().silence(true);
    let none = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
    assert!(none.is_err(), "silenced: no keepalive");
}

/// P1: fail_always(Some(e)) turns every snapshot the streams would yield
/// (changes and keepalives alike) into e, and register / deregister fail
/// with it; clearing it yields the latest snapshot at once.
#[tokio::test(start_paused = true)]
async fn p1_fail_always_answers_everything_with_the_error_until_cleared() {
    let t = table_of(&["a"]);
    let p = MemoryProvider::new(t.clone()).with_keepalive(Duration::from_secs(5));
    let f = p.faults();
    let mut w = p.watch();
    assert_eq!(names(&snap(&mut w).await), ["a"]);
    let e = ProviderError::Auth("403 permission revoked".into());
    f.fail_always(Some(e.clone()));
    assert_eq!(next(&mut w).await.unwrap(), Err(e.clone()), "at once");
    // A keepalive and a change of the table are errors too.
    assert_eq!(next(&mut w).await.unwrap(), Err(e.clone()), "keepalive");
    t.upsert(member("b", 1));
    assert_eq!(next(&mut w).await.unwrap(), Err(e.clone()), "change");
    assert_eq!(p.register(&member("c", 1)).await, Err(e.clone()));
    assert_eq!(p.deregister(&member("a", 1)).await, Err(e.clone()));
    assert_eq!(t.len(), 2, "the table is unchanged");
    f.fail_always(None);
    let start = Instant::now();
    assert_eq!(names(&snap(&mut w).await), ["a", "b"]);
    assert_eq!(start.elapsed(), Duration::ZERO);
    timeout(WAIT, p.register(&member("c", 1)))
        .await
        .unwrap()
        .unwrap();
}

/// P1: a fault handle made beforehand and given to with_faults makes the
/// provider's very first calls fail.
#[tokio::test(start_paused = true)]
async fn p1_faults_set_before_the_provider_exists_apply_from_its_first_call() {
    let f = crate::FaultHandle::new();
    let e = ProviderError::Auth("no permission yet".into());
    f.fail_always(Some(e.clone()));
    let p = MemoryProvider::new(MembershipTable::new()).with_faults(f.clone());
    assert_eq!(p.register(&member("a", 1)).await, Err(e.clone()));
    let mut w = p.watch();
    assert_eq!(next(&mut w).await.unwrap(), Err(e));
    f.reset();
    assert!(names(&snap(&mut w).await).is_empty());
}

/// P1: lose_all_data empties the table in one change that every provider
/// over it sees; nobody registers again by itself.
#[tokio::test(start_paused = true)]
async fn p1_lose_all_data_is_seen_by_every_provider_as_one_empty_snapshot() {
    let t = table_of(&["a", "b", "c"]);
    let (pa, pb) = (
        MemoryProvider::new(t.clone()),
        MemoryProvider::new(t.clone()),
    );
    let (mut wa, mut wb) = (pa.watch(), pb.watch());
    snap(&mut wa).await;
    snap(&mut wb).await;
    t.lose_all_data();
    assert!(names(&snap(&mut wa).await).is_empty());
    assert!(names(&snap(&mut wb).await).is_empty());
    quiet(&mut wa).await;
    assert!(t.is_empty());
}

/// Issue 17: a snapshot is the table's own list, shared: a keepalive
/// re-sends the very same `Arc` (nothing copied, so the supervisor drops it
/// in O(1)), and only a change of the table makes a new list; a truncating
/// fault gives a shorter list of its own.
#[tokio::test(start_paused = true)]
async fn i17_snapshots_share_the_tables_list_and_keepalives_resend_it() {
    use std::sync::Arc;
    let table = table_of(&["a", "b", "c"]);
    let provider = MemoryProvider::new(table.clone()).with_keepalive(Duration::from_secs(5));
    let mut w = provider.watch();
    let first = snap(&mut w).await;
    assert!(Arc::ptr_eq(&first.members, &table.shared_members()));
    let again = snap(&mut w).await;
    assert!(
        Arc::ptr_eq(&first.members, &again.members),
        "a keepalive is the same list"
    );
    table.upsert(member("b", 2));
    let changed = snap(&mut w).await;
    assert!(!Arc::ptr_eq(&first.members, &changed.members));
    assert!(Arc::ptr_eq(&changed.members, &table.shared_members()));
    assert_eq!(changed.members[1], member("b", 2));
    assert_eq!(
        *first.members,
        [member("a", 1), member("b", 1), member("c", 1)]
    );
    provider.faults().truncate_to(Some(2));
    let cut = snap(&mut w).await;
    assert_eq!(names(&cut), ["a", "b"]);
    assert_eq!(table.len(), 3, "the table is untouched");
}

/// Issue 17 / P1: every change builds the next list in sorted order with
/// one member per node id, whatever the operation.
#[test]
fn i17_each_change_builds_a_sorted_list() {
    let t = table_of(&["m"]);
    t.upsert(member("a", 1));
    t.upsert(member("z", 1));
    t.upsert(member("m", 2));
    assert_eq!(t.remove(&NodeId::new("a").unwrap()), Some(member("a", 1)));
    t.upsert(member("b", 1));
    assert_eq!(
        t.members(),
        vec![member("b", 1), member("m", 2), member("z", 1)]
    );
    assert_eq!(*t.shared_members(), *t.members());
}
