-- Non-success transitions of a request (rejected, retrying, parked), written by the
-- registration-service and the dlq-worker, read by the gateway's GET /registrations/{id}.
-- Success needs no row here: the user row itself is the record of completion.
CREATE TABLE IF NOT EXISTS request_status (
    request_id  BINARY(16)    NOT NULL,
    status      VARCHAR(16)   NOT NULL,
    retry_count INT UNSIGNED  NOT NULL DEFAULT 0,
    reason      VARCHAR(1024) NULL,
    updated_at  DATETIME(6)   NOT NULL,
    PRIMARY KEY (request_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
