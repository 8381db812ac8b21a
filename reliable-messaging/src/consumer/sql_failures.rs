//! Classifies database errors as transient (retry later) or permanent (retrying cannot help).
//!
//! Getting this right is what keeps a 10-second outage from parking messages and a poison
//! row from being retried forever. Unknown errors count as transient: a wrong guess there
//! costs five retries and then a parked message, never a lost one.

use crate::message::FailureKind;

/// MySQL / MariaDB error codes that mean "try again later".
const TRANSIENT_CODES: &[u16] = &[
    1040, // too many connections
    1053, // server shutdown in progress
    1205, // lock wait timeout
    1213, // deadlock
    1290, // --read-only (failover in progress)
    1317, // query interrupted
    1927, // MariaDB: connection was killed
    2002, // cannot connect via socket
    2003, // cannot connect to server
    2006, // server has gone away
    2013, // lost connection during query
    3024, // query execution timeout (MySQL max_execution_time)
    4031, // MySQL 8: disconnected by the server because of inactivity
];

/// MySQL / MariaDB error codes that mean "this data can never be stored".
const PERMANENT_CODES: &[u16] = &[
    1048, // column cannot be null
    1264, // out of range value
    1292, // incorrect datetime value
    1366, // incorrect string value (bad UTF-8)
    1406, // data too long for column
    1452, // foreign key constraint fails
    3140, // invalid JSON text
];

/// Server errors that say the database as a whole cannot serve now, whatever the statement.
const DEPENDENCY_DOWN_CODES: &[u16] = &[
    1040, // too many connections
    1053, // server shutdown in progress
    1290, // --read-only (failover in progress)
    1792, // cannot execute statement in a READ ONLY transaction
    1836, // running in read-only mode
    1927, // MariaDB: connection was killed
    2002, // cannot connect via socket
    2003, // cannot connect to server
    2006, // server has gone away
    2013, // lost connection during query
];

/// Whether `error` is about the database rather than the statement or its data: it cannot be
/// reached (refused, timed out, gone), or it refuses all writes (read-only, out of
/// connections). Such a failure says nothing about the message, so a consumer pauses instead
/// of dead-lettering (see `Outcome::DependencyDown`). A lock wait or a deadlock is *not* one:
/// it concerns particular rows, and the message around it may well succeed.
pub fn is_dependency_down(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|e| DEPENDENCY_DOWN_CODES.contains(&e.number())),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// How a failed database call should be treated.
pub fn classify(error: &sqlx::Error) -> FailureKind {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number());
            match code {
                Some(c) if PERMANENT_CODES.contains(&c) => FailureKind::Permanent,
                Some(c) if TRANSIENT_CODES.contains(&c) => FailureKind::Transient,
                _ => FailureKind::Transient,
            }
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => {
            FailureKind::Permanent
        }
        // Io, Tls, Protocol, PoolTimedOut, PoolClosed, WorkerCrashed, ...: the connection or
        // the server, not the data.
        _ => FailureKind::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_problems_are_transient() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), FailureKind::Transient);
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(classify(&io), FailureKind::Transient);
    }

    #[test]
    fn unreachable_or_read_only_database_is_a_dependency_outage_not_a_message_failure() {
        assert!(is_dependency_down(&sqlx::Error::PoolTimedOut));
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(is_dependency_down(&io));
        assert!(!is_dependency_down(&sqlx::Error::Decode("bad".into())));
        assert!(!is_dependency_down(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn decode_problems_are_permanent() {
        assert_eq!(classify(&sqlx::Error::Decode("bad".into())), FailureKind::Permanent);
    }
}
