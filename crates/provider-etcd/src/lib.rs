//! etcd membership provider (P5) over the etcd v3 API.
//!
//! Work in progress.
