-- The parking lot: messages the dlq-worker stopped retrying (retry budget exhausted, permanent
-- failure, unreadable retry metadata, origin topic gone), kept whole so an operator can inspect,
-- redrive or discard them. Rows are never deleted: a discard is a state change plus an audit row.
--
-- One row per DLQ record: the unique (dlq_topic, dlq_partition, dlq_offset) makes parking
-- idempotent, so a DLQ record redelivered after a crash parks once.
-- Portable between MySQL 8 and MariaDB 10.11: headers are JSON stored as LONGTEXT (MariaDB's JSON
-- is an alias with different semantics), utf8mb4_unicode_ci, DATETIME(6) stored as UTC.
CREATE TABLE IF NOT EXISTS parked_messages (
    id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    source_topic       VARCHAR(249)    NOT NULL,
    dlq_topic          VARCHAR(249)    NOT NULL,
    dlq_partition      INT             NOT NULL,
    dlq_offset         BIGINT          NOT NULL,
    original_partition INT             NULL,
    original_offset    BIGINT          NULL,
    message_key        MEDIUMBLOB      NULL,
    headers            LONGTEXT        NOT NULL,
    payload            LONGBLOB        NULL,
    park_reason        VARCHAR(32)     NOT NULL,
    error_kind         VARCHAR(32)     NOT NULL,
    error_message      TEXT            NULL,
    retry_count        INT UNSIGNED    NOT NULL,
    first_failure_at   DATETIME(6)     NULL,
    last_failure_at    DATETIME(6)     NULL,
    parked_at          DATETIME(6)     NOT NULL,
    state              VARCHAR(16)     NOT NULL DEFAULT 'parked',
    request_id         BINARY(16)      NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_parked_dlq_position (dlq_topic, dlq_partition, dlq_offset),
    KEY ix_parked_source_state (source_topic, state, parked_at),
    KEY ix_parked_state_parked_at (state, parked_at),
    KEY ix_parked_request_id (request_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Who did what to a parked message, and why.
CREATE TABLE IF NOT EXISTS parked_message_audit (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    parked_message_id BIGINT UNSIGNED NOT NULL,
    action            VARCHAR(16)     NOT NULL,
    actor             VARCHAR(128)    NOT NULL,
    reason            VARCHAR(1024)   NULL,
    at                DATETIME(6)     NOT NULL,
    PRIMARY KEY (id),
    KEY ix_audit_parked_message (parked_message_id, at),
    CONSTRAINT fk_audit_parked_message FOREIGN KEY (parked_message_id) REFERENCES parked_messages (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
