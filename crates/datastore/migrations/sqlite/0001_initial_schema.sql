-- spire-rs datastore schema for SQLite, version 1.
-- Table names follow SPIRE's sqlstore; times are unix seconds (INTEGER); booleans are 0/1.

CREATE TABLE registered_entries (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id                   TEXT    NOT NULL UNIQUE,
    spiffe_id                  TEXT    NOT NULL,
    parent_id                  TEXT    NOT NULL,
    -- SHA-256 over (parent_id, spiffe_id, sorted selectors): the unique index refuses "similar" entries.
    similarity_digest          BLOB    NOT NULL UNIQUE,
    ttl                        INTEGER NOT NULL DEFAULT 0,
    jwt_svid_ttl               INTEGER NOT NULL DEFAULT 0,
    admin                      BOOLEAN NOT NULL DEFAULT 0,
    downstream                 BOOLEAN NOT NULL DEFAULT 0,
    expiry                     INTEGER NOT NULL DEFAULT 0,
    revision_number            INTEGER NOT NULL DEFAULT 0,
    store_svid                 BOOLEAN NOT NULL DEFAULT 0,
    hint                       TEXT    NOT NULL DEFAULT '',
    disable_x509_svid_prefetch BOOLEAN NOT NULL DEFAULT 0,
    jwt_svid_include_jti       BOOLEAN NOT NULL DEFAULT 0,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);
CREATE INDEX idx_registered_entries_spiffe_id ON registered_entries (spiffe_id);
CREATE INDEX idx_registered_entries_parent_id ON registered_entries (parent_id);
CREATE INDEX idx_registered_entries_expiry ON registered_entries (expiry);
CREATE INDEX idx_registered_entries_hint ON registered_entries (hint);

CREATE TABLE selectors (
    id                  INTEGER PRIMARY KEY,
    registered_entry_id INTEGER NOT NULL REFERENCES registered_entries (id) ON DELETE CASCADE,
    type                TEXT    NOT NULL,
    value               TEXT    NOT NULL,
    UNIQUE (registered_entry_id, type, value)
);
CREATE INDEX idx_selectors_type_value ON selectors (type, value);

CREATE TABLE dns_names (
    id                  INTEGER PRIMARY KEY,
    registered_entry_id INTEGER NOT NULL REFERENCES registered_entries (id) ON DELETE CASCADE,
    -- Order matters: the first DNS name becomes the certificate's CN.
    position            INTEGER NOT NULL,
    value               TEXT    NOT NULL,
    UNIQUE (registered_entry_id, position)
);

CREATE TABLE bundles (
    id           INTEGER PRIMARY KEY,
    -- Trust domain ID, spiffe://<name>, as SPIRE stores it.
    trust_domain TEXT    NOT NULL UNIQUE,
    -- Protobuf encoding of spire.api.types.Bundle.
    data         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE federated_registration_entries (
    -- No ON DELETE action: deleting a bundle that entries still federate with must fail unless the
    -- store has handled them first (DeleteMode).
    bundle_id           INTEGER NOT NULL REFERENCES bundles (id),
    registered_entry_id INTEGER NOT NULL REFERENCES registered_entries (id) ON DELETE CASCADE,
    PRIMARY KEY (bundle_id, registered_entry_id)
);
CREATE INDEX idx_federated_registration_entries_entry ON federated_registration_entries (registered_entry_id);

CREATE TABLE attested_node_entries (
    id                INTEGER PRIMARY KEY,
    spiffe_id         TEXT    NOT NULL UNIQUE,
    data_type         TEXT    NOT NULL,
    serial_number     TEXT    NOT NULL DEFAULT '',
    expires_at        INTEGER NOT NULL DEFAULT 0,
    new_serial_number TEXT    NOT NULL DEFAULT '',
    new_expires_at    INTEGER NOT NULL DEFAULT 0,
    can_reattest      BOOLEAN NOT NULL DEFAULT 0,
    agent_version     TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX idx_attested_node_entries_expires_at ON attested_node_entries (expires_at);

-- Node selectors are keyed by SPIFFE ID, not by node row: they may be set before the node exists.
CREATE TABLE node_resolver_map_entries (
    id        INTEGER PRIMARY KEY,
    spiffe_id TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    UNIQUE (spiffe_id, type, value)
);
CREATE INDEX idx_node_resolver_map_entries_type_value ON node_resolver_map_entries (type, value);

CREATE TABLE join_tokens (
    id         INTEGER PRIMARY KEY,
    token      TEXT    NOT NULL UNIQUE,
    expiry     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX idx_join_tokens_expiry ON join_tokens (expiry);

CREATE TABLE federated_trust_domains (
    id                      INTEGER PRIMARY KEY,
    -- Trust domain ID, spiffe://<name>.
    trust_domain            TEXT    NOT NULL UNIQUE,
    bundle_endpoint_url     TEXT    NOT NULL,
    -- https_web or https_spiffe.
    bundle_endpoint_profile TEXT    NOT NULL,
    -- Set for https_spiffe only.
    endpoint_spiffe_id      TEXT    NOT NULL DEFAULT '',
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

CREATE TABLE ca_journals (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    data                     BLOB    NOT NULL,
    active_x509_authority_id TEXT    NOT NULL DEFAULT '',
    active_jwt_authority_id  TEXT    NOT NULL DEFAULT '',
    -- When the journal's last authority expires; 0 = unknown, never pruned.
    expires_at               INTEGER NOT NULL DEFAULT 0,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
);
CREATE INDEX idx_ca_journals_active_x509_authority_id ON ca_journals (active_x509_authority_id);

-- AUTOINCREMENT: event IDs are never reused, even after the newest events are pruned.
CREATE TABLE registered_entries_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX idx_registered_entries_events_created_at ON registered_entries_events (created_at);

CREATE TABLE attested_node_entries_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    spiffe_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX idx_attested_node_entries_events_created_at ON attested_node_entries_events (created_at);
