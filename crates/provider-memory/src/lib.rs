//! In-memory provider (in progress).
