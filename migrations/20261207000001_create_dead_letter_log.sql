-- Every dead letter the dlq-worker took (re-sent or parked), one row per DLQ record, for the
-- console's chart of dead letters per hour. Keyed by the record's position, so a record
-- redelivered after a crash is counted once; dead_lettered_at is the record's Kafka timestamp
-- (when the DLQ write happened), so a redelivery lands in the same hour.
CREATE TABLE IF NOT EXISTS dead_letter_log (
    dlq_topic        VARCHAR(249) NOT NULL,
    dlq_partition    INT          NOT NULL,
    dlq_offset       BIGINT       NOT NULL,
    dead_lettered_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset),
    KEY ix_dead_letter_log_at (dead_lettered_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
