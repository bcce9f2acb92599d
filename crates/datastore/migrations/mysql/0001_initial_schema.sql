-- spire-rs datastore schema for MySQL 8 and MariaDB 10.11 (InnoDB), version 1.
-- The same tables, columns, constraints and indexes as migrations/sqlite/0001_initial_schema.sql, typed
-- for sqlx's Any driver, which reads only SMALLINT, INT, BIGINT, FLOAT, DOUBLE, VARCHAR/CHAR and BLOB
-- columns (not TINYINT, DATETIME, ...; it also reads TEXT as a blob and VARBINARY as text):
-- * times (unix seconds), IDs, revision numbers and positions are BIGINT (read as i64); the two SVID
--   TTLs are INT because the code reads them as i32;
-- * booleans are SMALLINT 0/1: BOOLEAN is TINYINT(1) here, which Any cannot read;
-- * text is VARCHAR with a binary collation, so that comparison and ordering go byte by byte as in
--   SQLite (paging compares and orders by entry_id; SPIFFE IDs and selectors are case-sensitive).
--   SPIFFE IDs, trust domain IDs and entry IDs are ASCII by construction (their parsers refuse
--   anything else), so they use CHARACTER SET ascii COLLATE ascii_bin (1 byte per character); all other
--   text is utf8mb4 (4 bytes per character) COLLATE utf8mb4_bin. Both collations are PAD SPACE:
--   values that differ only by trailing spaces compare equal (only free-form text such as selector
--   values can end with a space). No binary NO PAD collation exists under one name in both MySQL 8 and
--   MariaDB 10.11;
-- * lengths: an InnoDB index key holds at most 3072 bytes (ROW_FORMAT=DYNAMIC, set on every table so
--   that a server default of COMPACT cannot lower it to 767). SPIFFE IDs get the 2048 bytes that
--   SPIFFE-ID.md asks implementations to support, entry IDs the 255 characters the API allows, hints
--   its 1024 bytes. Where a composite UNIQUE key would not fit, the comment there says which lengths
--   were cut; writing a longer value fails in strict SQL mode (the default of MySQL 8 and MariaDB
--   10.2.4+), and is silently truncated without it;
-- * binary data is BLOB/LONGBLOB (a UNIQUE key on a BLOB needs a prefix length).
-- Auto-assigned keys are AUTO_INCREMENT, whose counter InnoDB persists (MySQL 8, MariaDB 10.2.4+):
-- a value is never handed out twice, even after the newest rows are deleted (what AUTOINCREMENT
-- guarantees in SQLite). Foreign keys are table constraints: MySQL 8 ignores a REFERENCES clause
-- written on the column.

CREATE TABLE registered_entries (
    id                         BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entry_id                   VARCHAR(255)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    spiffe_id                  VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    parent_id                  VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- SHA-256 over (parent_id, spiffe_id, sorted selectors): the unique index refuses "similar" entries.
    -- Always 32 bytes, so the 32-byte key prefix is the whole value.
    similarity_digest          BLOB          NOT NULL,
    ttl                        INT           NOT NULL DEFAULT 0,
    jwt_svid_ttl               INT           NOT NULL DEFAULT 0,
    admin                      SMALLINT      NOT NULL DEFAULT 0,
    downstream                 SMALLINT      NOT NULL DEFAULT 0,
    expiry                     BIGINT        NOT NULL DEFAULT 0,
    revision_number            BIGINT        NOT NULL DEFAULT 0,
    store_svid                 SMALLINT      NOT NULL DEFAULT 0,
    -- At most 1024 bytes (API limit), so 1024 characters always fit; the index covers the first 768
    -- (3072 bytes), enough to find rows, which MySQL then compares in full.
    hint                       VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    disable_x509_svid_prefetch SMALLINT      NOT NULL DEFAULT 0,
    jwt_svid_include_jti       SMALLINT      NOT NULL DEFAULT 0,
    created_at                 BIGINT        NOT NULL,
    updated_at                 BIGINT        NOT NULL,
    UNIQUE KEY uq_registered_entries_similarity_digest (similarity_digest(32)),
    INDEX idx_registered_entries_spiffe_id (spiffe_id),
    INDEX idx_registered_entries_parent_id (parent_id),
    INDEX idx_registered_entries_expiry (expiry),
    INDEX idx_registered_entries_hint (hint(768))
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE selectors (
    id                  BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    registered_entry_id BIGINT       NOT NULL,
    -- The UNIQUE key below is 8 + 255 * 4 + 511 * 4 = 3072 bytes, the InnoDB limit: selector types are
    -- capped at 255 characters (as in SPIRE's MySQL schema), values at 511 (SPIRE: 255).
    type                VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    value               VARCHAR(511) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- Also the index that the foreign key and its ON DELETE CASCADE use.
    UNIQUE KEY uq_selectors_entry_type_value (registered_entry_id, type, value),
    INDEX idx_selectors_type_value (type, value),
    FOREIGN KEY (registered_entry_id) REFERENCES registered_entries (id) ON DELETE CASCADE
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE dns_names (
    id                  BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    registered_entry_id BIGINT       NOT NULL,
    -- Order matters: the first DNS name becomes the certificate's CN.
    position            BIGINT       NOT NULL,
    -- DNS names are at most 253 characters (API limit).
    value               VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    UNIQUE KEY uq_dns_names_entry_position (registered_entry_id, position),
    FOREIGN KEY (registered_entry_id) REFERENCES registered_entries (id) ON DELETE CASCADE
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE bundles (
    id           BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- Trust domain ID, spiffe://<name>, as SPIRE stores it (at most 9 + 255 characters).
    trust_domain VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    -- Protobuf encoding of spire.api.types.Bundle; LONGBLOB: a bundle with many keys can outgrow BLOB (64 KiB).
    data         LONGBLOB      NOT NULL,
    created_at   BIGINT        NOT NULL,
    updated_at   BIGINT        NOT NULL
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE federated_registration_entries (
    bundle_id           BIGINT NOT NULL,
    registered_entry_id BIGINT NOT NULL,
    PRIMARY KEY (bundle_id, registered_entry_id),
    INDEX idx_federated_registration_entries_entry (registered_entry_id),
    -- No ON DELETE action: deleting a bundle that entries still federate with must fail unless the
    -- store has handled them first (DeleteMode).
    FOREIGN KEY (bundle_id) REFERENCES bundles (id),
    FOREIGN KEY (registered_entry_id) REFERENCES registered_entries (id) ON DELETE CASCADE
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE attested_node_entries (
    id                BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    spiffe_id         VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    -- Node attestor name.
    data_type         VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- Certificate serial numbers in decimal (at most 49 digits for 20 bytes).
    serial_number     VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    expires_at        BIGINT        NOT NULL DEFAULT 0,
    new_serial_number VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    new_expires_at    BIGINT        NOT NULL DEFAULT 0,
    can_reattest      SMALLINT      NOT NULL DEFAULT 0,
    -- At most 255 characters (API limit).
    agent_version     VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    created_at        BIGINT        NOT NULL,
    updated_at        BIGINT        NOT NULL,
    INDEX idx_attested_node_entries_expires_at (expires_at)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Node selectors are keyed by SPIFFE ID, not by node row: they may be set before the node exists.
CREATE TABLE node_resolver_map_entries (
    id        BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- The UNIQUE key below is 1024 + 255 * 4 + 255 * 4 = 3064 bytes (limit 3072): agent SPIFFE IDs are
    -- capped at 1024 characters here (2048 elsewhere), selector types and values at 255 (as in
    -- SPIRE's MySQL schema).
    spiffe_id VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    type      VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    value     VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    UNIQUE KEY uq_node_resolver_map_entries_id_type_value (spiffe_id, type, value),
    INDEX idx_node_resolver_map_entries_type_value (type, value)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE join_tokens (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    token      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL UNIQUE,
    expiry     BIGINT       NOT NULL,
    created_at BIGINT       NOT NULL,
    INDEX idx_join_tokens_expiry (expiry)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE federated_trust_domains (
    id                      BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- Trust domain ID, spiffe://<name>.
    trust_domain            VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    -- Not indexed, so generous.
    bundle_endpoint_url     VARCHAR(2048) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- https_web or https_spiffe.
    bundle_endpoint_profile VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- Set for https_spiffe only.
    endpoint_spiffe_id      VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    created_at              BIGINT        NOT NULL,
    updated_at              BIGINT        NOT NULL
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE ca_journals (
    id                       BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    data                     LONGBLOB     NOT NULL,
    -- Authority IDs are subject key identifiers in hex.
    active_x509_authority_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    active_jwt_authority_id  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    -- When the journal's last authority expires; 0 = unknown, never pruned.
    expires_at               BIGINT       NOT NULL DEFAULT 0,
    created_at               BIGINT       NOT NULL,
    updated_at               BIGINT       NOT NULL,
    INDEX idx_ca_journals_active_x509_authority_id (active_x509_authority_id)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- AUTO_INCREMENT: event IDs are never reused, even after the newest events are pruned.
CREATE TABLE registered_entries_events (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entry_id   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT       NOT NULL,
    INDEX idx_registered_entries_events_created_at (created_at)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE attested_node_entries_events (
    id         BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    spiffe_id  VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT        NOT NULL,
    INDEX idx_attested_node_entries_events_created_at (created_at)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
