//! A fresh database per test, migrated with the workspace's migrations, so tests never see
//! each other's rows and can run in parallel.

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlConnection, MySqlPool};
use std::str::FromStr;
use uuid::Uuid;

use crate::TestEnv;

pub struct TestDatabase {
    pub name: String,
    /// URL of this test's database, to hand to a service's `DATABASE_URL`.
    pub url: String,
    pub pool: MySqlPool,
}

impl TestEnv {
    /// Creates `test_<random>` and runs every migration in it.
    pub async fn fresh_database(&self) -> TestDatabase {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let server = MySqlConnectOptions::from_str(&self.database_url).expect("DATABASE_URL parses");
        let mut admin = MySqlConnection::connect_with(&server).await.expect("connect to the MySQL server");
        sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let options = server.clone().database(&name);
        let url = options.to_url_lossy().to_string();
        let pool =
            MySqlPoolOptions::new().max_connections(5).connect_with(options).await.expect("connect to test database");
        signup_schema::migrator().run(&pool).await.expect("run migrations");
        TestDatabase { name, url, pool }
    }
}

impl TestDatabase {
    /// Holds the unique-key entry of `email` in `users` from another transaction until the
    /// returned transaction is rolled back (or dropped): a sign-up for that address then fails
    /// on its own with a lock wait timeout, the per-message failure that takes the DLQ path.
    pub async fn hold_email_lock(&self, email: &str) -> sqlx::Transaction<'static, sqlx::MySql> {
        let mut holder = self.pool.begin().await.expect("begin the lock holder");
        sqlx::query(
            "INSERT INTO users (request_id, email, name, password_hash, requested_at) \
             VALUES (?, ?, 'Lock Holder', '$argon2id$x', NOW(6))",
        )
        .bind(Uuid::new_v4().as_bytes().to_vec())
        .bind(email)
        .execute(&mut *holder)
        .await
        .expect("hold the lock");
        holder
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&self.pool).await.expect("count query")
    }

    /// Number of rows in `users` per request id, for exactly-once checks.
    pub async fn user_rows_by_request(&self) -> std::collections::HashMap<Uuid, i64> {
        let rows: Vec<(Vec<u8>, i64)> = sqlx::query_as("SELECT request_id, COUNT(*) FROM users GROUP BY request_id")
            .fetch_all(&self.pool)
            .await
            .expect("read users");
        rows.into_iter().map(|(id, n)| (Uuid::from_slice(&id).expect("16-byte id"), n)).collect()
    }
}
