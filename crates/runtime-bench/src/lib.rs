//! Benchmark host crate.
//!
//! This crate contains no library code: it only exists to host the criterion
//! benchmarks in `benches/`, which compare `actor-runtime` with the peer actor
//! frameworks ractor and kameo, using raw tokio channels as the floor.
//!
//! Run them with `cargo bench -p runtime-bench` (add `--features ractor-default`
//! or `--features ractor-output-port-v2` to change how ractor is built).
