//! Rendezvous-hashing partition table (in progress).
