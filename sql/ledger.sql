-- The run ledger: one row per extract and night (its latest state), and an append-only
-- event log beside it. Portable SQL: runs on SQLite (default) and PostgreSQL.
CREATE TABLE IF NOT EXISTS xforce_extracts (
    night            VARCHAR(10)  NOT NULL,
    force            VARCHAR(32)  NOT NULL,
    dataset          VARCHAR(32)  NOT NULL,
    status           VARCHAR(16)  NOT NULL,   -- landed | missing | validated | published | quarantined | failed
    received_at      VARCHAR(32),             -- when the hub first saw the files (UTC, ISO-8601)
    files            TEXT,                    -- JSON list of {name, sha256, bytes, raw}
    sha256           VARCHAR(64),             -- checksum of the extract (of its checksums when several files)
    bytes            BIGINT,
    rows_in          BIGINT,
    rows_published   BIGINT,
    rows_quarantined BIGINT,
    reasons          TEXT,                    -- JSON {reason: count} of quarantined rows
    error            TEXT,                    -- why the whole extract could not be used
    warning          TEXT,                    -- published, but something is worth a look
    run_id           VARCHAR(250),
    staged           TEXT,                    -- JSON {published: path, quarantine: path} awaiting publish
    updated_at       VARCHAR(32)  NOT NULL,
    PRIMARY KEY (night, force, dataset)
);

CREATE TABLE IF NOT EXISTS xforce_events (
    event_id   VARCHAR(32)  NOT NULL PRIMARY KEY,
    at         VARCHAR(32)  NOT NULL,
    night      VARCHAR(10),
    force      VARCHAR(32),
    dataset    VARCHAR(32),
    event      VARCHAR(32)  NOT NULL,
    detail     TEXT,
    run_id     VARCHAR(250)
);

CREATE INDEX IF NOT EXISTS xforce_events_night ON xforce_events (night, force, dataset);

-- Audited re-identification (docs/privacy.md): one row per request to turn a plate token back
-- into a plate, whatever the outcome. Append-only: nothing in the project updates or deletes it.
CREATE TABLE IF NOT EXISTS xforce_reidentifications (
    audit_id     VARCHAR(32)  NOT NULL PRIMARY KEY,
    at           VARCHAR(32)  NOT NULL,   -- UTC, ISO-8601
    requested_by VARCHAR(200) NOT NULL,   -- the person asking (--requested-by)
    os_user      VARCHAR(200),            -- the account that ran the command
    purpose      TEXT         NOT NULL,
    token        VARCHAR(64),             -- null when what was given is not a token
    key_version  VARCHAR(32),
    outcome      VARCHAR(16)  NOT NULL,   -- disclosed | unknown_token | malformed_token | refused | lookup_failed
    seq          BIGINT,                  -- position in the hash chain: 1, 2, 3, ... (unique)
    row_hash     VARCHAR(64)              -- sha256(previous row's row_hash + this row's fields), hex
);

-- Tables made before the hash chain: Ledger.migrate runs an ADD COLUMN only when the column is
-- missing, then chains the rows already there (oldest first) once.
ALTER TABLE xforce_reidentifications ADD COLUMN seq BIGINT;
ALTER TABLE xforce_reidentifications ADD COLUMN row_hash VARCHAR(64);

CREATE INDEX IF NOT EXISTS xforce_reidentifications_at ON xforce_reidentifications (at);
CREATE UNIQUE INDEX IF NOT EXISTS xforce_reidentifications_seq ON xforce_reidentifications (seq);

-- One run per night at a time (xforce.store.ledger.Ledger.acquire_lease): the run that holds a
-- night until it releases it or the lease expires; every step of that run renews it.
CREATE TABLE IF NOT EXISTS xforce_leases (
    night       VARCHAR(10)  NOT NULL PRIMARY KEY,
    run_id      VARCHAR(250) NOT NULL,
    holder      VARCHAR(200),             -- host:pid that took or last renewed it
    acquired_at VARCHAR(32)  NOT NULL,    -- UTC, ISO-8601
    expires_at  VARCHAR(32)  NOT NULL
);

-- A night's publish, journalled (xforce.exchange.publish): begun with its plan before anything is
-- copied into place, committed once every file and manifest is written. A begun publish is
-- completed by the next run of the night (or `xforce repair`) from the run's staged files.
CREATE TABLE IF NOT EXISTS xforce_publishes (
    night        VARCHAR(10)  NOT NULL PRIMARY KEY,
    run_id       VARCHAR(250) NOT NULL,
    state        VARCHAR(16)  NOT NULL,   -- begun | committed
    plan         TEXT         NOT NULL,   -- JSON: per dataset and force, what is published or kept
    begun_at     VARCHAR(32)  NOT NULL,
    committed_at VARCHAR(32)
);

-- One key per key version (xforce.privacy.tokens.claim_key_version): each version's key
-- fingerprint, recorded on the version's first use; another key under a known version is refused.
-- The fingerprint names the key without revealing it: the first 16 hex characters of
-- HMAC-SHA256(key, "xforce key fingerprint v1"). Never the key.
CREATE TABLE IF NOT EXISTS xforce_key_versions (
    key_version   VARCHAR(32)  NOT NULL PRIMARY KEY,
    fingerprint   VARCHAR(64)  NOT NULL,
    first_seen_at VARCHAR(32)  NOT NULL    -- UTC, ISO-8601
);
