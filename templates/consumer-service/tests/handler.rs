//! The handler alone, against the real database (`DATABASE_URL`; `scripts/local-services.sh up`
//! starts it): each example stores once however often it is delivered, the poison one fails as
//! permanent. TEMPLATE: the row check at the end is the one part tied to what this handler
//! stores; change it with the handler.

use std::str::FromStr;

use reliable_messaging::message::FailureKind;
use reliable_messaging::{Delivery, Handler, Outcome};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection};

// The service's own crate last: its name changes with every generated service.
use consumer_service_template::handler::{examples, StoreMessages};

fn delivery(offset: i64, payload: &str) -> Delivery {
    Delivery {
        topic: "consumer-service-template-handler-test".to_owned(),
        partition: 0,
        offset,
        key: None,
        payload: Some(payload.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp_ms: None,
        retry: None,
        retry_metadata_error: None,
    }
}

#[tokio::test]
async fn each_example_is_stored_once_however_often_it_arrives_and_poison_is_permanent() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL is not set: run `scripts/local-services.sh up`");
    let server = MySqlConnectOptions::from_str(&url).expect("DATABASE_URL is a MySQL URL");
    let database = format!("consumer_service_template_handler_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = server.connect().await.expect("connect to the server");
    sqlx::query(&format!("CREATE DATABASE `{database}`")).execute(&mut admin).await.expect("create the database");
    let pool = MySqlPoolOptions::new().connect_with(server.clone().database(&database)).await.expect("pool");
    sqlx::migrate!().run(&pool).await.expect("migrate");
    let handler = StoreMessages::new(pool.clone());

    for (offset, payload) in examples::ACCEPTED.iter().enumerate() {
        let delivery = delivery(offset as i64, payload);
        // A redelivery after a crash is the same record again: it must change nothing.
        for attempt in 1..=2 {
            assert_eq!(handler.handle(&delivery).await, Outcome::Done, "{payload}, delivery {attempt}");
        }
    }
    let poison = handler.handle(&delivery(examples::ACCEPTED.len() as i64, examples::POISON)).await;
    assert!(matches!(&poison, Outcome::Failed(f) if f.kind == FailureKind::Permanent), "{poison:?}");

    // TEMPLATE: what your handler stores, once per accepted example.
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM received_messages ORDER BY kafka_offset")
        .fetch_all(&pool)
        .await
        .expect("read");
    let expected: Vec<Vec<u8>> = examples::ACCEPTED.iter().map(|p| p.as_bytes().to_vec()).collect();
    assert_eq!(rows, expected);

    pool.close().await;
    sqlx::query(&format!("DROP DATABASE `{database}`")).execute(&mut admin).await.expect("drop the test database");
    admin.close().await.expect("close");
}
