//! failover (in progress)
