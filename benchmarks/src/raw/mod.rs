//! The raw limits of this machine, measured in the same run as the services: what the
//! hardware, Kafka and MariaDB can do with none of our code in the way.

pub mod argon2;
pub mod beside_kafka;
pub mod database;
pub mod kafka_tools;
