//! The `memory` provider kind now lives in `provider-memory`
//! ([`provider_memory::MemoryKind`]); this re-export goes away once every
//! user imports it from there.

pub use provider_memory::MemoryKind;
