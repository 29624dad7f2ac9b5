//! TEMPORARY stand-in until actor-runtime's API exists.
use std::time::Duration;
use tokio::runtime::Runtime;
pub fn tell(_: &Runtime, _: u64) -> Duration { Duration::from_nanos(1) }
pub fn ask(_: &Runtime, _: u64) -> Duration { Duration::from_nanos(1) }
pub fn fanout(_: &Runtime, _: u64) -> Duration { Duration::from_nanos(1) }
pub fn spawn_stop(_: &Runtime, _: u64) -> Duration { Duration::from_nanos(1) }
pub fn restart(_: &Runtime, _: u64) -> Duration { Duration::from_nanos(1) }
