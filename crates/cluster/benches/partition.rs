//! Benchmarks of the `PartitionTable` core.
//!
//! - `partition/owner/N`: one `owner()` lookup over N members (10, 100,
//!   1000): O(N) XXH3 calls.
//! - `partition/owners_batch/1000`: `owners()` for 1000 identities over 100
//!   members (per-batch cost).
//! - `partition/moved_leave/100x10000`: `moved()` for 10 000 identities
//!   when one of 100 members leaves.
//!
//! Sample sizes are small so the whole suite runs well under a minute:
//!
//! ```sh
//! cargo bench -p cluster --bench partition
//! ```

use std::hint::black_box;
use std::time::Duration;

use cluster::partition::PartitionTable;
use cluster_core::{Member, MemberAddress, NodeId, ProvisioningStatus};
use criterion::{BenchmarkId, Criterion};

fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let id = NodeId::new(format!("node-{i:04}")).expect("valid node id");
            let address = MemberAddress::new(format!("10.0.{}.{}", i >> 8, i & 255), 4000)
                .expect("valid address");
            Member::new(id, address, 1)
        })
        .collect()
}

fn table(ms: Vec<Member>, seq_no: u64) -> PartitionTable {
    PartitionTable::from_members(ms, seq_no, ProvisioningStatus::Active)
}

fn identities(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("partition");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let ids = identities(1_000);
    for n in [10usize, 100, 1_000] {
        let t = table(members(n), 1);
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("owner", n), &t, |b, t| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                black_box(t.owner("user", black_box(&ids[i])))
            })
        });
    }

    let t = table(members(100), 1);
    g.bench_function(BenchmarkId::new("owners_batch", 1_000), |b| {
        b.iter(|| black_box(t.owners(ids.iter().map(|i| ("user", i.as_str())))))
    });

    let before = table(members(100), 1);
    let mut rest = members(100);
    rest.remove(37);
    let after = table(rest, 2);
    let ids = identities(10_000);
    g.bench_function(BenchmarkId::new("moved_leave", "100x10000"), |b| {
        b.iter(|| black_box(before.moved(&after, ids.iter().map(|i| ("user", i.as_str())))))
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
