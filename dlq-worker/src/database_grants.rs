//! What the dlq-worker's runtime database identity may do, and no more: park messages and
//! change their state (redrive, discard) with an audit row each, log each dead letter it takes
//! (for the console's chart), record request statuses, and audit an operator's erasure of an
//! address.
//! Audit rows are only ever added. The migration step grants exactly this; start-up checks it
//! (see `reliable_messaging::service::runtime::identities`).

use reliable_messaging::service::runtime::identities::{TableGrant, MIGRATIONS_READER, REQUEST_STATUS_WRITER};

pub const GRANTS: &[TableGrant] = &[
    TableGrant {
        table: "parked_messages",
        privileges: "SELECT, INSERT, UPDATE",
        probes: &[
            "INSERT INTO parked_messages (source_topic, dlq_topic, dlq_partition, dlq_offset, headers, park_reason, \
               error_kind, retry_count, parked_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'parked') \
             ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
            "SELECT state FROM parked_messages WHERE id = ? FOR UPDATE",
            "UPDATE parked_messages SET state = ? WHERE id = ?",
        ],
    },
    TableGrant {
        table: "parked_message_audit",
        privileges: "SELECT, INSERT",
        probes: &[
            "INSERT INTO parked_message_audit (parked_message_id, action, actor, reason, at) VALUES (?, ?, ?, ?, ?)",
            "SELECT id, action, actor FROM parked_message_audit WHERE parked_message_id = ?",
        ],
    },
    TableGrant {
        table: "dead_letter_log",
        privileges: "SELECT, INSERT",
        probes: &[crate::dead_letter_log::INSERT, "SELECT COUNT(*) FROM dead_letter_log WHERE dead_lettered_at >= ?"],
    },
    TableGrant {
        table: "erasure_audit",
        privileges: "INSERT",
        probes: &[
            "INSERT INTO erasure_audit (erasure_id, email_digest, actor, reason, requested_at) VALUES (?, ?, ?, ?, ?)",
        ],
    },
    REQUEST_STATUS_WRITER,
    MIGRATIONS_READER,
];
