-- Idempotency-Key claims shared by every gateway instance, across restarts: which request
-- (by fingerprint) first used a key. A later request with the same key and another
-- fingerprint is refused with 409 for as long as the claim is retained (IDEMPOTENCY_TTL,
-- 24 h by default); expired claims are taken over by the next request and swept in batches.
-- The key itself is not stored, only HMAC(REQUEST_ID_SECRET, key), and the fingerprint binds
-- the password only through a keyed HMAC, so nothing here helps guess a password.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key_digest  BINARY(32)  NOT NULL,
    fingerprint BINARY(32)  NOT NULL,
    request_id  BINARY(16)  NOT NULL,
    claimed_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (key_digest),
    KEY ix_idempotency_keys_claimed_at (claimed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
