//! Classifies database errors as transient (retry later) or permanent (retrying cannot help).
//!
//! Getting this right is what keeps a 10-second outage from parking messages and a poison
//! row from being retried forever. Unknown errors count as transient: a wrong guess there
//! costs five retries and then a parked message, never a lost one.

use crate::outcome::FailureKind;

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

/// How a failed database call should be treated.
pub fn classify(error: &sqlx::Error) -> FailureKind {
    match error {
        sqlx::Error::Database(db) => {
            let code = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number());
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
    fn decode_problems_are_permanent() {
        assert_eq!(classify(&sqlx::Error::Decode("bad".into())), FailureKind::Permanent);
    }
}
