-- The first schema: organisations, API keys, sessions with their event logs, and
-- idempotency keys. Times are INTEGER milliseconds since the Unix epoch, ids are TEXT,
-- engine-owned JSON documents are TEXT kept verbatim.

CREATE TABLE orgs (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    org_id     TEXT    NOT NULL REFERENCES orgs (id),
    prefix     TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE INDEX api_keys_by_prefix ON api_keys (prefix);
CREATE INDEX api_keys_by_org ON api_keys (org_id, created_at);

-- `seq` is the rowid: it gives a stable creation order (list tie-break, FIFO queue).
-- Sessions do not reference `orgs`: an organisation is a tenant label here, and keeping
-- the session path free of that lookup keeps create cheap.
CREATE TABLE sessions (
    seq                  INTEGER PRIMARY KEY,
    id                   TEXT    NOT NULL UNIQUE,
    org_id               TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    created_at           INTEGER NOT NULL,
    started_at           INTEGER,
    finished_at          INTEGER,
    last_activity_at     INTEGER NOT NULL,
    request              TEXT    NOT NULL,
    spec                 TEXT    NOT NULL,
    agent_name           TEXT,
    group_id             TEXT,
    parent_session_id    TEXT,
    first_message        TEXT,
    latest_answer        TEXT,
    outcome              TEXT,
    error                TEXT,
    error_code           TEXT,
    steps                INTEGER NOT NULL,
    usage                TEXT    NOT NULL,
    subagent_session_ids TEXT    NOT NULL,
    pending_tool_calls   TEXT    NOT NULL,
    event_count          INTEGER NOT NULL,
    epoch                INTEGER NOT NULL,
    force_answer         INTEGER NOT NULL,
    idle_deadline        INTEGER,
    loop_state           TEXT    NOT NULL,
    shared               INTEGER NOT NULL,
    feedback             TEXT,
    -- Lowercased text the `search` filter matches: the first message, and the answer.
    search_text          TEXT    NOT NULL,
    search_answer        TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX sessions_by_org_created ON sessions (org_id, created_at, seq);
CREATE INDEX sessions_by_status ON sessions (status, seq);
CREATE INDEX sessions_queued ON sessions (org_id, seq) WHERE status = 'queued';
CREATE INDEX sessions_idle_deadline ON sessions (idle_deadline) WHERE status = 'idle';
CREATE INDEX sessions_by_parent ON sessions (parent_session_id) WHERE parent_session_id IS NOT NULL;
CREATE INDEX sessions_by_group ON sessions (org_id, group_id) WHERE group_id IS NOT NULL;

CREATE TABLE events (
    session_id TEXT    NOT NULL,
    idx        INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    timestamp  INTEGER NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;

CREATE TABLE event_feedback (
    session_id TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    org_id       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    session_id   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
) WITHOUT ROWID;

-- Slot-holding and queued sessions per organisation, kept by the triggers below so that
-- admission reads one row instead of counting sessions. "Slot-holding" is every
-- non-terminal status but `queued`.
CREATE TABLE org_load (
    org_id TEXT    NOT NULL PRIMARY KEY,
    active INTEGER NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TRIGGER sessions_load_on_insert AFTER INSERT ON sessions
BEGIN
    INSERT OR IGNORE INTO org_load (org_id) VALUES (NEW.org_id);
    UPDATE org_load
    SET active = active + (NEW.status IN ('pending', 'running', 'paused', 'idle', 'awaiting_tool_results')),
        queued = queued + (NEW.status = 'queued')
    WHERE org_id = NEW.org_id;
END;

CREATE TRIGGER sessions_load_on_status AFTER UPDATE OF status ON sessions
WHEN OLD.status <> NEW.status
BEGIN
    UPDATE org_load
    SET active = active
            + (NEW.status IN ('pending', 'running', 'paused', 'idle', 'awaiting_tool_results'))
            - (OLD.status IN ('pending', 'running', 'paused', 'idle', 'awaiting_tool_results')),
        queued = queued + (NEW.status = 'queued') - (OLD.status = 'queued')
    WHERE org_id = NEW.org_id;
END;
