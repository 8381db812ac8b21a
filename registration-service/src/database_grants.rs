//! What the registration-service's runtime database identity may do, and no more: store users
//! (the upsert of a redelivered event reads and no-op-updates its row), delete them for a
//! withdrawal or an erasure and write the tombstones that keep them deleted, and record
//! request statuses. The migration step grants exactly this; start-up checks it (see
//! `reliable_messaging::service::runtime::identities`).

use reliable_messaging::service::runtime::identities::{TableGrant, MIGRATIONS_READER, REQUEST_STATUS_WRITER};

pub const GRANTS: &[TableGrant] = &[
    TableGrant {
        table: "users",
        privileges: "SELECT, INSERT, UPDATE, DELETE",
        probes: &[
            "INSERT INTO users (request_id, email, name, password_hash, requested_at) VALUES (?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE request_id = request_id",
            "SELECT request_id, email, name FROM users WHERE request_id = ?",
            "DELETE FROM users WHERE request_id = ?",
        ],
    },
    TableGrant {
        table: "registration_tombstones",
        privileges: "SELECT, INSERT",
        probes: &[
            "SELECT request_id, kind FROM registration_tombstones WHERE request_id = ? LOCK IN SHARE MODE",
            "INSERT IGNORE INTO registration_tombstones (request_id, kind, reason, recorded_at) VALUES (?, ?, ?, ?)",
        ],
    },
    TableGrant {
        table: "erased_addresses",
        privileges: "SELECT, INSERT, UPDATE",
        probes: &[
            "SELECT email_digest, erased_at FROM erased_addresses WHERE email_digest = ? LOCK IN SHARE MODE",
            "INSERT INTO erased_addresses (email_digest, erased_at, erasure_id) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE erased_at = GREATEST(erased_at, VALUES(erased_at))",
        ],
    },
    REQUEST_STATUS_WRITER,
    MIGRATIONS_READER,
];
