//! Registration events for tests: sample events and fast bulk producing, as the gateway would
//! publish them. The registration-service itself is started by [`crate::harness::registration`].

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use registration_events::RegistrationRequested;
use reliable_messaging::message::REQUEST_ID_HEADER;
use uuid::Uuid;

use crate::TestEnv;

/// A valid event for a unique user. The hash is a syntactically valid argon2id PHC string;
/// the consumer never verifies passwords, so no slow hashing is needed here.
pub fn sample_event() -> RegistrationRequested {
    let id = Uuid::new_v4();
    RegistrationRequested {
        schema_version: RegistrationRequested::VERSION,
        request_id: id,
        email: format!("user-{}@example.com", id.simple()),
        name: "Test User".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG".into(),
        requested_at: Utc::now(),
    }
}

/// Produces `events` to `topic` as the gateway would (key = email, `x-request-id` header),
/// concurrently, and waits for every acknowledgement.
pub async fn produce_events(env: &TestEnv, topic: &str, events: &[RegistrationRequested]) {
    let producer = env.producer();
    for chunk in events.chunks(1000) {
        let sends = chunk.iter().map(|e| {
            let payload = e.to_json();
            let id = e.request_id.to_string();
            let producer = producer.clone();
            let topic = topic.to_owned();
            let key = e.email.clone();
            async move {
                let headers =
                    OwnedHeaders::new().insert(KafkaHeader { key: REQUEST_ID_HEADER, value: Some(id.as_bytes()) });
                let record = FutureRecord::to(&topic).key(key.as_bytes()).payload(&payload).headers(headers);
                producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce event");
            }
        });
        join_all(sends).await;
    }
}
