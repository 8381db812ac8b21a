//! What a service reads at start: clap structs it flattens into its own arguments, so
//! `<service> --help` lists every variable with its default, and secrets that stay out of `Debug`.

mod args;
mod command;
mod kafka_args;
mod retry_args;
mod secret;
mod settings;
mod telemetry_args;
mod topic_args;

pub use args::{share as parse_share, ServiceArgs};
pub use command::{check_variables, command, ignoring_environment, parse_from, ServiceDefaults};
pub use kafka_args::{KafkaArgs, ProducerAcksArg};
pub use retry_args::{BackoffShapeArg, MetadataFormatArg, RetryScheduleArgs};
pub use secret::{DatabaseUrl, Secret};
pub use settings::ServiceSettings;
pub use telemetry_args::{LogFormat, TelemetryArgs};
pub use topic_args::TopicArgs;
