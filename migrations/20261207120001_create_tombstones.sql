-- Withdrawals and erasures (issue 22): what remains of a sign-up once the user withdrew it or an
-- operator erased the address. No personal data: a request id, an address's SHA-256 digest
-- (registration_events::email_digest), when and why. The registration-service refuses a later
-- delivery of a tombstoned sign-up (`rejected: withdrawn` / `erased`), so a redelivery or a
-- retry from the DLQ can never bring the account back.

-- One row per sign-up that must never be stored (again): withdrawn by its request id, or
-- erased with its address. Read by the gateway's status route.
CREATE TABLE IF NOT EXISTS registration_tombstones (
    request_id  BINARY(16)   NOT NULL,
    kind        VARCHAR(16)  NOT NULL,
    reason      VARCHAR(255) NOT NULL,
    recorded_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (request_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Erased addresses, by digest: a sign-up for the address requested at or before `erased_at`
-- is refused wherever it still is (in the DLQ, parked, redelivered); a later sign-up is a
-- new account and is stored.
CREATE TABLE IF NOT EXISTS erased_addresses (
    email_digest BINARY(32)   NOT NULL,
    erased_at    DATETIME(6)  NOT NULL,
    erasure_id   BINARY(16)   NOT NULL,
    PRIMARY KEY (email_digest)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Who asked for which erasure, and why: written by the dlq-worker's admin API and CLI before
-- the erasure event is published, never updated or deleted by a service.
CREATE TABLE IF NOT EXISTS erasure_audit (
    erasure_id   BINARY(16)   NOT NULL,
    email_digest BINARY(32)   NOT NULL,
    actor        VARCHAR(255) NOT NULL,
    reason       VARCHAR(255) NOT NULL,
    requested_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (erasure_id),
    KEY ix_erasure_audit_email_digest (email_digest)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
