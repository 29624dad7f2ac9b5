//! The Kubernetes pod to member decoder: a pod's JSON as the API server
//! sends it (deserialized into `k8s_openapi`'s `Pod`, as kube does), then
//! `provider_k8s::member_of` with the default annotation keys.
//!
//! Invariants besides "no panic": a member's node id and port are the
//! annotations' values, and its port is not 0.
#![no_main]

use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use provider_k8s::{AnnotationKeys, member_of};

fuzz_target!(|data: &[u8]| {
    let Ok(pod) = serde_json::from_slice::<Pod>(data) else {
        return;
    };
    let keys = AnnotationKeys::default();
    let Ok(member) = member_of(&pod, &keys) else {
        return;
    };
    let annotations = pod
        .metadata
        .annotations
        .as_ref()
        .expect("a member has annotations");
    assert_eq!(
        Some(member.node_id.as_str()),
        annotations.get(&keys.node_id).map(String::as_str)
    );
    assert_ne!(member.address.port, 0);
    assert_eq!(
        annotations.get(&keys.port).map(|p| p.trim().parse::<u16>()),
        Some(Ok(member.address.port))
    );
});
