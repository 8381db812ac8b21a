//! Per-service database identities for one test (issue 25): a database of its own, not yet
//! migrated, with a migrator that owns it and one runtime account per service that holds
//! nothing until a migration step (or the test) grants it. Accounts are named after the test's
//! database, so tests running in parallel never share one.

use std::str::FromStr;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, MySqlConnection};
use uuid::Uuid;

use crate::TestEnv;

/// The database and the URLs of its identities (passwords included: test-only accounts).
pub struct Identities {
    pub database: String,
    pub migrator_url: String,
    pub gateway_url: String,
    pub registration_url: String,
    pub dlq_worker_url: String,
    admin_url: String,
}

impl TestEnv {
    /// Creates `ident_<random>` (empty) and its four accounts, as the environment's admin.
    pub async fn fresh_identities(&self) -> Identities {
        let database = format!("ident_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let mut admin = self.admin().await;
        sqlx::query(&format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let account_of = |role: &str| {
            // User names are at most 32 characters on MySQL 8 (80 on MariaDB).
            let user = format!("{role}_{}", &database[6..]);
            let password = Uuid::new_v4().simple().to_string();
            let account = format!("'{user}'@'%'");
            (account, user, password)
        };
        let accounts = [account_of("mig"), account_of("gw"), account_of("rs"), account_of("dw")];
        for (account, _, password) in &accounts {
            admin_exec(&mut admin, &format!("CREATE USER {account} IDENTIFIED BY '{password}'")).await;
        }
        admin_exec(
            &mut admin,
            &format!("GRANT ALL PRIVILEGES ON `{database}`.* TO {} WITH GRANT OPTION", accounts[0].0),
        )
        .await;
        admin.close().await.ok();
        let urls: Vec<String> = accounts
            .iter()
            .map(|(_, user, password)| with_login(&self.database_url, user, password, &database))
            .collect();
        Identities {
            database,
            migrator_url: urls[0].clone(),
            gateway_url: urls[1].clone(),
            registration_url: urls[2].clone(),
            dlq_worker_url: urls[3].clone(),
            admin_url: self.database_url.clone(),
        }
    }

    async fn admin(&self) -> MySqlConnection {
        MySqlConnectOptions::from_str(&self.database_url)
            .expect("DATABASE_URL parses")
            .connect()
            .await
            .expect("connect to the MySQL server as the test admin")
    }
}

impl Identities {
    /// One connection as the identity of `url`.
    pub async fn connect(url: &str) -> MySqlConnection {
        MySqlConnectOptions::from_str(url).expect("identity URL parses").connect().await.expect("connect as identity")
    }

    /// Runs `sql` as the test's admin (e.g. to grant a runtime account less than it needs).
    pub async fn as_admin(&self, sql: &str) {
        let mut admin =
            MySqlConnectOptions::from_str(&self.admin_url).expect("admin URL").connect().await.expect("connect");
        admin_exec(&mut admin, sql).await;
        admin.close().await.ok();
    }

    /// The account (`'user'@'%'`) of one of this test's URLs.
    pub fn account(url: &str) -> String {
        let parsed = url::Url::parse(url).expect("identity URL parses");
        format!("'{}'@'%'", parsed.username())
    }
}

async fn admin_exec(admin: &mut MySqlConnection, sql: &str) {
    sqlx::query(sql).execute(&mut *admin).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `server_url` with another login and database (host, port and TLS query kept).
fn with_login(server_url: &str, user: &str, password: &str, database: &str) -> String {
    let mut url = url::Url::parse(server_url).expect("DATABASE_URL parses");
    url.set_username(user).expect("user name");
    url.set_password(Some(password)).expect("password");
    url.set_path(&format!("/{database}"));
    url.to_string()
}
