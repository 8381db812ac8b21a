//! The one migrator of the sign-up database (`users`, request statuses, idempotency claims, the
//! parking lot), shared by the services that apply it at start and by the tests and benchmarks
//! that prepare a database, so every one of them embeds the same migrations.

use sqlx::migrate::Migrator;

/// The workspace's `migrations/`, in order (built from static data: cheap to call).
pub fn migrator() -> Migrator {
    sqlx::migrate!("../migrations")
}
