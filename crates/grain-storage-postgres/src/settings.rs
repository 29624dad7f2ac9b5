//! [`PostgresSettings`]: where the server is and how long calls may take.

use std::fmt;
use std::time::Duration;

/// How a [`PostgresGrainStorage`](crate::PostgresGrainStorage) reaches its
/// server. The password never prints (`Debug` shows whether one is set).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresSettings {
    /// The server's host name or IP address, or the directory of its Unix
    /// socket (a path starting with `/`).
    pub host: String,
    /// The server's port (PostgreSQL's default: 5432).
    pub port: u16,
    /// The role to log in as.
    pub user: String,
    /// The database holding the `grain_state` table.
    pub dbname: String,
    password: Option<String>,
    /// The bound on opening a connection (TCP, start-up, authentication,
    /// creating the table); default 5 s.
    pub connect_timeout: Duration,
    /// The bound on every call (read, write, clear), a reconnection
    /// included; default 5 s. A call that exceeds it fails with
    /// `storage.unavailable` and the connection is replaced.
    pub call_timeout: Duration,
}

impl PostgresSettings {
    /// The server at `host:port`, logging in as `user` to `dbname`, without
    /// a password, with the default timeouts.
    pub fn new(host: &str, port: u16, user: &str, dbname: &str) -> Self {
        Self {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            dbname: dbname.to_owned(),
            password: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(5),
        }
    }

    /// With a password (sent as the server asks: SCRAM-SHA-256, MD5 or
    /// clear text; without TLS, prefer SCRAM).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// With another connect timeout.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// With another call timeout.
    pub fn call_timeout(mut self, t: Duration) -> Self {
        self.call_timeout = t;
        self
    }

    /// `host:port/dbname`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }

    pub(crate) fn client_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("grain-storage")
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            // The server gives up on a statement when the caller does: a
            // call that timed out is not applied later (after a lock wait).
            .options(format!(
                "-c statement_timeout={}",
                self.call_timeout.as_millis().max(1)
            ));
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }
}

impl fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_prints() {
        let s = PostgresSettings::new("db", 5432, "app", "grains").password("hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<set>"), "{shown}");
        assert_eq!(s.server(), "db:5432/grains");
    }
}
