//! Runnable examples live beside this file; see the README for the index.
