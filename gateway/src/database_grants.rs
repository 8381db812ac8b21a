//! What the gateway's runtime database identity may do, and no more: read a request's status
//! (of `users` only the id, the time and, to key a withdrawal by it, the email; never a
//! password hash or a name), read tombstones, and keep Idempotency-Key claims. The migration step grants exactly this; start-up checks it (see
//! `reliable_messaging::service::runtime::identities`).

use reliable_messaging::service::runtime::identities::{TableGrant, MIGRATIONS_READER};

pub const GRANTS: &[TableGrant] = &[
    TableGrant {
        table: "users",
        privileges: "SELECT (request_id, created_at, email)",
        probes: &["SELECT created_at FROM users WHERE request_id = ?", "SELECT email FROM users WHERE request_id = ?"],
    },
    TableGrant {
        table: "registration_tombstones",
        privileges: "SELECT",
        probes: &["SELECT kind, reason, recorded_at FROM registration_tombstones WHERE request_id = ?"],
    },
    TableGrant {
        table: "request_status",
        privileges: "SELECT",
        probes: &["SELECT status, retry_count, reason, updated_at FROM request_status WHERE request_id = ?"],
    },
    TableGrant {
        table: "idempotency_keys",
        privileges: "SELECT, INSERT, UPDATE, DELETE",
        probes: &[
            "INSERT INTO idempotency_keys (key_digest, fingerprint, request_id, claimed_at) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE claimed_at = IF(claimed_at < ?, VALUES(claimed_at), claimed_at)",
            "SELECT fingerprint FROM idempotency_keys WHERE key_digest = ?",
            "DELETE FROM idempotency_keys WHERE claimed_at < ? LIMIT ?",
        ],
    },
    MIGRATIONS_READER,
];
