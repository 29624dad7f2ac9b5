//! The table and the statements. Each write or clear is decided by one
//! statement (an `INSERT ... ON CONFLICT DO NOTHING` or an
//! `UPDATE`/`DELETE ... WHERE version = $4`), so the check and the change
//! are one atomic step in the server, whatever the isolation level.

/// Creates the table when missing. The advisory lock makes concurrent
/// first starts (several nodes at once) wait for each other instead of
/// failing on PostgreSQL's catalog uniqueness.
pub(crate) const CREATE: &str = "BEGIN;
SELECT pg_advisory_xact_lock(7236014187349113918);
CREATE TABLE IF NOT EXISTS grain_state (
    cluster    text        NOT NULL,
    kind       text        NOT NULL,
    id         text        NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    schema     bigint      NOT NULL CHECK (schema >= 0 AND schema <= 4294967295),
    data       bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, kind, id)
);
COMMIT;";

pub(crate) const READ: &str =
    "SELECT version, schema, data FROM grain_state WHERE cluster = $1 AND kind = $2 AND id = $3";
pub(crate) const VERSION: &str =
    "SELECT version FROM grain_state WHERE cluster = $1 AND kind = $2 AND id = $3";
pub(crate) const INSERT: &str =
    "INSERT INTO grain_state (cluster, kind, id, version, schema, data, updated_at)
     VALUES ($1, $2, $3, 1, $4, $5, now())
     ON CONFLICT (cluster, kind, id) DO NOTHING";
pub(crate) const UPDATE: &str =
    "UPDATE grain_state SET version = version + 1, schema = $5, data = $6, updated_at = now()
     WHERE cluster = $1 AND kind = $2 AND id = $3 AND version = $4";
pub(crate) const DELETE: &str =
    "DELETE FROM grain_state WHERE cluster = $1 AND kind = $2 AND id = $3 AND version = $4";
