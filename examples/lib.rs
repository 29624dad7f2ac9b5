//! Shared pieces of the runnable examples (see the README for the index).

use std::process::ExitCode;
use std::time::Instant;

/// Prints timestamped lines: the examples' timeline.
#[derive(Clone, Debug)]
pub struct Timeline(Instant);

impl Timeline {
    /// Starts the clock.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Prints one line with the time since the start.
    pub fn log(&self, line: impl AsRef<str>) {
        println!(
            "[{:>6.3}s] {}",
            self.0.elapsed().as_secs_f64(),
            line.as_ref()
        );
    }
}

/// Ends an example: exit code 0 when every step happened, 1 otherwise.
pub fn finish<E: std::fmt::Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => {
            println!("{name}: every step happened");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name} FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
