//! What the registration-service's runtime database identity may do, and no more: store users
//! (the upsert of a redelivered event reads and no-op-updates its row) and record request
//! statuses. The migration step grants exactly this; start-up checks it (see
//! `reliable_messaging::service::runtime::identities`).

use reliable_messaging::service::runtime::identities::{TableGrant, MIGRATIONS_READER, REQUEST_STATUS_WRITER};

pub const GRANTS: &[TableGrant] = &[
    TableGrant {
        table: "users",
        privileges: "SELECT, INSERT, UPDATE",
        probes: &[
            "INSERT INTO users (request_id, email, name, password_hash, requested_at) VALUES (?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE request_id = request_id",
            "SELECT request_id, email, name FROM users WHERE request_id = ?",
        ],
    },
    REQUEST_STATUS_WRITER,
    MIGRATIONS_READER,
];
