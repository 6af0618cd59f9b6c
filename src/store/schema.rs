//! Schema migrations: SQLite's tracked in `PRAGMA user_version`, PostgreSQL's in the table
//! `vigil_schema`. Append only: never edit a released step. PostgreSQL began at SQLite's
//! eleventh step, so its first step is the same schema in its own types; a step added to
//! one list from now on is added to the other.

use super::db::{Database, DbError, vals};

const MIGRATIONS: &[&str] = &[
    // 1: results, state changes, current state.
    "CREATE TABLE results (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        health TEXT NOT NULL,
        reason TEXT,
        duration_ms REAL NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX results_by_target_time ON results (target, at_ms);
    CREATE TABLE state_changes (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT,
        message TEXT NOT NULL
    );
    CREATE INDEX state_changes_by_target_time ON state_changes (target, at_ms);
    CREATE TABLE target_state (
        target TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        streak_worse INTEGER NOT NULL DEFAULT 0,
        streak_count INTEGER NOT NULL DEFAULT 0,
        streak_target TEXT,
        updated_ms INTEGER NOT NULL
    );",
    // 2: the last heartbeat pushed for each heartbeat check.
    "CREATE TABLE heartbeats (
        target TEXT PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        message TEXT NOT NULL
    );",
    // 3: incidents, the notification outbox, and when a failure streak began.
    "CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        system TEXT NOT NULL,
        severity TEXT NOT NULL,
        open INTEGER NOT NULL,
        started_ms INTEGER NOT NULL,
        resolved_ms INTEGER,
        data TEXT NOT NULL
    );
    CREATE INDEX incidents_open ON incidents (open);
    CREATE INDEX incidents_by_start ON incidents (started_ms);
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        receiver TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        channel TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        finished_ms INTEGER,
        error TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX outbox_pending ON outbox (state, created_ms);
    ALTER TABLE target_state ADD COLUMN streak_since_ms INTEGER NOT NULL DEFAULT 0;",
    // 4: maintenance windows opened through the API.
    "CREATE TABLE maintenance (
        id INTEGER PRIMARY KEY,
        to_ms INTEGER NOT NULL,
        data TEXT NOT NULL
    );",
    // 5: incidents excluded from the SLA, with the reason and who decided.
    "CREATE TABLE exclusions (
        incident_id INTEGER PRIMARY KEY,
        reason TEXT NOT NULL,
        by TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );",
    // 6: per-target daily rollups (kept for years): runs, failures, latency with a
    // fixed-bucket histogram (upper bounds in ROLLUP_BUCKETS_MS, the last one open).
    "CREATE TABLE rollups (
        target TEXT NOT NULL,
        day_ms INTEGER NOT NULL,
        runs INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        lat_min REAL,
        lat_max REAL,
        lat_sum REAL NOT NULL DEFAULT 0,
        b0 INTEGER NOT NULL DEFAULT 0, b1 INTEGER NOT NULL DEFAULT 0, b2 INTEGER NOT NULL DEFAULT 0,
        b3 INTEGER NOT NULL DEFAULT 0, b4 INTEGER NOT NULL DEFAULT 0, b5 INTEGER NOT NULL DEFAULT 0,
        b6 INTEGER NOT NULL DEFAULT 0, b7 INTEGER NOT NULL DEFAULT 0, b8 INTEGER NOT NULL DEFAULT 0,
        b9 INTEGER NOT NULL DEFAULT 0, b10 INTEGER NOT NULL DEFAULT 0, b11 INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (target, day_ms)
    );",
    // 7: the audit trail of administrative actions (kept like the reports' history).
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        who TEXT NOT NULL,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit (at_ms);",
    // 8: state changes read per target in time order without touching the table (the
    // pages' set query reads every target's history through this index alone).
    "CREATE INDEX state_changes_cover ON state_changes (target, at_ms, id, to_state);
    DROP INDEX state_changes_by_target_time;",
    // 9: vantage points. An agent queues what it forwards (filled by triggers that only an
    // agent installs, in the transaction that writes the result); a centre keeps what each
    // agent sent, once per sequence number, and when it last heard from it.
    "CREATE TABLE forward_queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE vantage_results (
        vantage TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        data TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        PRIMARY KEY (vantage, seq)
    ) WITHOUT ROWID;
    CREATE INDEX vantage_results_by_target ON vantage_results (vantage, target, at_ms);
    CREATE TABLE vantages (
        name TEXT PRIMARY KEY,
        last_seen_ms INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        clock_offset_ms INTEGER NOT NULL,
        received INTEGER NOT NULL
    );",
    // 10: what the centre can vouch for, per vantage point: every record up to
    // `contiguous_seq` is held (measured time reaches `horizon_ms`); records beyond it
    // (live ones sent ahead of a back-fill) wait. A stretch counted late is recorded.
    "ALTER TABLE vantages ADD COLUMN contiguous_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE vantages ADD COLUMN horizon_ms INTEGER;
    UPDATE vantages SET contiguous_seq = last_seq,
        horizon_ms = (SELECT max(at_ms) FROM vantage_results r WHERE r.vantage = vantages.name);
    CREATE TABLE vantage_backfills (
        vantage TEXT NOT NULL,
        counted_ms INTEGER NOT NULL,
        from_ms INTEGER NOT NULL,
        to_ms INTEGER NOT NULL
    );
    CREATE INDEX vantage_backfills_by_time ON vantage_backfills (to_ms);",
    // 11: an agent's incarnation (a random id its store gets when it starts forwarding): a
    // store made anew restarts its sequence numbers at 1, and the centre, seeing a new
    // incarnation, files them after the old ones (`seq_base`) instead of dropping them as
    // replays.
    "CREATE TABLE agent_identity (incarnation TEXT NOT NULL);
    ALTER TABLE vantages ADD COLUMN incarnation TEXT;
    ALTER TABLE vantages ADD COLUMN seq_base INTEGER NOT NULL DEFAULT 0;",
    // 12: the cluster node that made a notification and delivers it (see PostgreSQL's 2).
    "ALTER TABLE outbox ADD COLUMN claimed_by TEXT;",
    // 13: the cluster node that last wrote a target's state (see PostgreSQL's 3).
    "ALTER TABLE target_state ADD COLUMN node TEXT;",
    // 14: acknowledgements made on one cluster node for an incident another holds (see
    // PostgreSQL's 4).
    "CREATE TABLE ack_requests (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL,
        by_name TEXT NOT NULL,
        comment TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );",
    // 15: an ICMP run's echoes (`sent:rtt,…`), drawn as the check page's smoke graph (see
    // PostgreSQL's 5).
    "ALTER TABLE results ADD COLUMN echoes TEXT;",
    // 16: raw results by time alone, for the pruning past `storage.raw_retention` (it
    // scanned the whole table: at a national centre's 2,500 results/s, billions of rows
    // each hour). PostgreSQL has had it from its first step (its 6 is the same).
    "CREATE INDEX IF NOT EXISTS results_by_time ON results (at_ms);",
];

/// The PostgreSQL schema. The agent's forwarding queue is not here: an agent's store is
/// always its own SQLite file.
const POSTGRES_MIGRATIONS: &[&str] = &[
    // 1: everything of SQLite's steps 1 to 11 that a centre or a cluster node keeps.
    "CREATE TABLE results (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        target TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        health TEXT NOT NULL,
        reason TEXT,
        duration_ms DOUBLE PRECISION NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX results_by_target_time ON results (target, at_ms);
    CREATE INDEX results_by_time ON results (at_ms);
    CREATE TABLE state_changes (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        target TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT,
        message TEXT NOT NULL
    );
    CREATE INDEX state_changes_cover ON state_changes (target, at_ms, id, to_state);
    CREATE INDEX state_changes_by_time ON state_changes (at_ms);
    CREATE TABLE target_state (
        target TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since_ms BIGINT NOT NULL,
        streak_worse BIGINT NOT NULL DEFAULT 0,
        streak_count BIGINT NOT NULL DEFAULT 0,
        streak_target TEXT,
        updated_ms BIGINT NOT NULL,
        streak_since_ms BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE heartbeats (
        target TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        ok BIGINT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE TABLE incidents (
        id BIGINT PRIMARY KEY,
        target TEXT NOT NULL,
        system TEXT NOT NULL,
        severity TEXT NOT NULL,
        open BIGINT NOT NULL,
        started_ms BIGINT NOT NULL,
        resolved_ms BIGINT,
        data TEXT NOT NULL
    );
    CREATE INDEX incidents_open ON incidents (open);
    CREATE INDEX incidents_by_start ON incidents (started_ms);
    CREATE TABLE outbox (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE,
        key TEXT PRIMARY KEY,
        receiver TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        state TEXT NOT NULL,
        channel TEXT,
        attempts BIGINT NOT NULL DEFAULT 0,
        finished_ms BIGINT,
        error TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX outbox_pending ON outbox (state, created_ms);
    CREATE TABLE maintenance (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        to_ms BIGINT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE exclusions (
        incident_id BIGINT PRIMARY KEY,
        reason TEXT NOT NULL,
        \"by\" TEXT NOT NULL,
        at_ms BIGINT NOT NULL
    );
    CREATE TABLE rollups (
        target TEXT NOT NULL,
        day_ms BIGINT NOT NULL,
        runs BIGINT NOT NULL DEFAULT 0,
        failures BIGINT NOT NULL DEFAULT 0,
        lat_min DOUBLE PRECISION,
        lat_max DOUBLE PRECISION,
        lat_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
        b0 BIGINT NOT NULL DEFAULT 0, b1 BIGINT NOT NULL DEFAULT 0, b2 BIGINT NOT NULL DEFAULT 0,
        b3 BIGINT NOT NULL DEFAULT 0, b4 BIGINT NOT NULL DEFAULT 0, b5 BIGINT NOT NULL DEFAULT 0,
        b6 BIGINT NOT NULL DEFAULT 0, b7 BIGINT NOT NULL DEFAULT 0, b8 BIGINT NOT NULL DEFAULT 0,
        b9 BIGINT NOT NULL DEFAULT 0, b10 BIGINT NOT NULL DEFAULT 0, b11 BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (target, day_ms)
    );
    CREATE TABLE audit (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        who TEXT NOT NULL,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit (at_ms);
    CREATE TABLE vantage_results (
        vantage TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        data TEXT NOT NULL,
        received_ms BIGINT NOT NULL,
        PRIMARY KEY (vantage, seq)
    );
    CREATE INDEX vantage_results_by_target ON vantage_results (vantage, target, at_ms);
    CREATE TABLE vantages (
        name TEXT PRIMARY KEY,
        last_seen_ms BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        clock_offset_ms BIGINT NOT NULL,
        received BIGINT NOT NULL,
        contiguous_seq BIGINT NOT NULL DEFAULT 0,
        horizon_ms BIGINT,
        incarnation TEXT,
        seq_base BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE vantage_backfills (
        vantage TEXT NOT NULL,
        counted_ms BIGINT NOT NULL,
        from_ms BIGINT NOT NULL,
        to_ms BIGINT NOT NULL
    );
    CREATE INDEX vantage_backfills_by_time ON vantage_backfills (to_ms);",
    // 2: a cluster's shared outbox — the node that made a notification delivers it, and
    // another takes it over once that node's lease has run out; incident ids come in
    // blocks of a sequence, so nodes sharing the store never give two incidents one id.
    "ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    CREATE SEQUENCE incident_blocks;",
    // 3: the node that last wrote a target's state — what a node cut from the store kept
    // for a target another node has written since is not written over it (store::Fence).
    "ALTER TABLE target_state ADD COLUMN node TEXT;",
    // 4: an acknowledgement made on one node for an incident another node holds waits here
    // until that node applies it.
    "CREATE TABLE ack_requests (
        id BIGSERIAL PRIMARY KEY,
        incident_id BIGINT NOT NULL,
        by_name TEXT NOT NULL,
        comment TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );",
    // 5: an ICMP run's echoes, for the smoke graph.
    "ALTER TABLE results ADD COLUMN echoes TEXT;",
    // 6: SQLite's 16 (this index was in step 1 here).
    "CREATE INDEX IF NOT EXISTS results_by_time ON results (at_ms);",
];

/// Brings the schema up to date.
pub fn migrate(db: &mut Database) -> Result<(), DbError> {
    match db {
        Database::Sqlite(conn) => {
            let version = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
                let tx = conn.transaction()?;
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
                tx.commit()?;
            }
            Ok(())
        }
        Database::Postgres(_) => migrate_postgres(db),
    }
}

/// PostgreSQL: every step in a transaction that holds an advisory lock, so nodes starting
/// together migrate once, one after the other.
fn migrate_postgres(db: &mut Database) -> Result<(), DbError> {
    db.transaction(|db| {
        db.batch(
            "SET LOCAL client_min_messages = warning;
             SELECT pg_advisory_xact_lock(7375748); -- 'vigil' schema
             CREATE TABLE IF NOT EXISTS vigil_schema (version BIGINT NOT NULL);
             INSERT INTO vigil_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM vigil_schema);",
        )?;
        let version = db.query("SELECT version FROM vigil_schema", &[])?[0].int(0)? as usize;
        for (i, sql) in POSTGRES_MIGRATIONS.iter().enumerate().skip(version) {
            db.batch(sql)?;
            db.exec("UPDATE vigil_schema SET version = ?1", &vals![(i + 1) as i64])?;
        }
        Ok(())
    })
}
