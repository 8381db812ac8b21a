-- One row per message, keyed by where it was first produced: storing it again is a no-op.
CREATE TABLE IF NOT EXISTS received_messages (
    topic           VARCHAR(249) NOT NULL,
    kafka_partition INT          NOT NULL,
    kafka_offset    BIGINT       NOT NULL,
    payload         LONGBLOB     NOT NULL,
    received_at     DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
