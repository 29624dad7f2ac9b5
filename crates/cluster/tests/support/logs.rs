//! Captures tracing events in a test (N3): a small `Layer` that keeps each
//! event's level, message and fields, installed for the current thread (a
//! `#[tokio::test]` runs every task on it).
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured event.
#[derive(Clone, Debug)]
pub struct Line {
    pub level: Level,
    pub target: String,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

impl Line {
    /// A field's value as it would be printed (`%` and `?` alike).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// At INFO or above: what the default level prints.
    pub fn shown(&self) -> bool {
        self.level <= Level::INFO
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.level, self.message)?;
        for (k, v) in &self.fields {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// The lines captured so far; clones share them.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<Line>>>);

impl Logs {
    /// Captures every event on this thread until the guard is dropped.
    pub fn capture() -> (Self, DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::registry().with(Collect(logs.clone()));
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    pub fn all(&self) -> Vec<Line> {
        self.0.lock().unwrap().clone()
    }

    /// The lines at INFO or above (what the default level prints).
    pub fn shown(&self) -> Vec<Line> {
        self.all().into_iter().filter(Line::shown).collect()
    }

    /// The lines with this message, at any level.
    pub fn with_message(&self, message: &str) -> Vec<Line> {
        self.all()
            .into_iter()
            .filter(|l| l.message == message)
            .collect()
    }

    /// How many lines were captured so far (a mark for [`Logs::since`]).
    pub fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The lines captured after `mark`.
    pub fn since(&self, mark: usize) -> Vec<Line> {
        self.all().into_iter().skip(mark).collect()
    }

    pub fn dump(lines: &[Line]) -> String {
        lines.iter().map(|l| format!("\n  {l}")).collect()
    }
}

struct Collect(Logs);

impl<S: Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        let meta = event.metadata();
        self.0.0.lock().unwrap().push(Line {
            level: *meta.level(),
            target: meta.target().to_owned(),
            message: v.message,
            fields: v.fields,
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let value = format!("{value:?}");
        if field.name() == "message" {
            self.message = value;
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}
