//! The Consul health-answer decoder (`/v1/health/service/<name>` JSON to
//! members: `provider_consul::watch::decode_members_for_fuzzing`, the
//! function the watch runs on every answer, and `member::from_entry` per
//! entry).
//!
//! Invariants besides "no panic": the members are sorted by node id with
//! one member per node id; every member goes back through the registration
//! meta this provider writes and decodes to itself (round trip), unless the
//! meta is refused for Consul's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provider_consul::member::{from_entry, meta};
use provider_consul::watch::decode_members_for_fuzzing;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(members) = decode_members_for_fuzzing(data) else {
        return;
    };
    for pair in members.windows(2) {
        assert!(
            pair[0].node_id < pair[1].node_id,
            "not sorted, or a node id twice"
        );
    }
    for m in &members {
        let Ok(meta) = meta(m) else {
            continue;
        };
        let entry = json!({
            "Service": {
                "Address": m.address.host,
                "Port": m.address.port,
                "Meta": meta,
            }
        });
        let again = from_entry(entry).expect("a decoded member's own entry decodes");
        assert_eq!(&again, m, "entry, member, entry, member changed the member");
    }
});
