//! The settings every consumer service shares, as one clap struct a service flattens into its
//! own arguments: `<service> --help` then lists each variable with its default, and a bad
//! value fails at start-up with an error naming the variable.
//!
//! The defaults run against the local services (`scripts/local-services.sh`) and are those the
//! registration-service has always used; changing one here changes every service.

use std::net::SocketAddr;
use std::time::Duration;

use super::retry_args::{backoff, BackoffShapeArg, RetryScheduleArgs};
use crate::consumer::{CommitPolicy, ConsumerSettings, OutagePolicy};
use crate::dead_letter::{DeadLetterLimit, DeadLetterPolicy};
use crate::kafka::topics::TopicPolicy;
use crate::kafka::KafkaSettings;
use crate::service::configuration::{KafkaArgs, ServiceSettings, TelemetryArgs, TopicArgs};

/// Kafka, consumer, retry, dead-letter, topic, HTTP and logging/tracing settings; see the module
/// docs.
///
/// The HTTP address variable and its default are the service's own: [`command`] renames them
/// (e.g. `REGISTRATION_SERVICE_ADDR`), since several services run on one machine.
///
/// [`command`]: crate::service::command
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Consumer, retries, dead letters, topics, probes")]
pub struct ServiceArgs {
    /// Where /healthz, /readyz and /metrics listen.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Consumer group [default: the service's name].
    #[arg(long, env = "CONSUMER_GROUP")]
    pub consumer_group: Option<String>,
    /// Static group membership (`group.instance.id`); unset: dynamic membership.
    #[arg(long, env = "CONSUMER_INSTANCE_ID")]
    pub consumer_instance_id: Option<String>,
    /// Most messages polled into one batch.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,
    /// Most concurrent handler calls per batch, one chunk of whole partitions each (1: the
    /// whole batch in one call). At most the database pool's size.
    #[arg(long, env = "PARTITION_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub partition_concurrency: u16,
    /// How long a batch may wait for more once none are ready and the handler is idle (ms);
    /// 0: batches fill while the handler is busy, and close as soon as it is free.
    #[arg(long, env = "BATCH_WAIT_MS", default_value_t = 0)]
    pub batch_wait_ms: u64,
    /// When offsets are committed (unsafe-auto-commit only for the negative-control test, in a
    /// build with the `negative-control` feature).
    #[arg(long, env = "COMMIT_POLICY", value_parser = commit_policy_parser(), default_value = AFTER_DURABLE_OUTCOME)]
    pub commit_policy: CommitPolicyArg,
    /// What a dependency outage does: pause consuming, or the dead-letter path.
    #[arg(long, env = "DEPENDENCY_OUTAGE", value_enum, default_value_t = OutagePolicyArg::Pause)]
    pub dependency_outage: OutagePolicyArg,

    /// Transient failures retried in place before the message goes to the DLQ.
    #[arg(long, env = "IN_PLACE_RETRIES", default_value_t = 3)]
    pub in_place_retries: u32,
    /// Shape of the in-place retry delays.
    #[arg(long, env = "IN_PLACE_BACKOFF", value_enum, default_value_t = BackoffShapeArg::Exponential)]
    pub in_place_backoff: BackoffShapeArg,
    /// First in-place retry delay (ms).
    #[arg(long, env = "IN_PLACE_BACKOFF_INITIAL_MS", default_value_t = 200)]
    pub in_place_backoff_initial_ms: u64,
    /// Growth of each in-place retry delay.
    #[arg(long, env = "IN_PLACE_BACKOFF_MULTIPLIER", default_value_t = 2.0)]
    pub in_place_backoff_multiplier: f64,
    /// Longest in-place retry delay (ms).
    #[arg(long, env = "IN_PLACE_BACKOFF_MAX_MS", default_value_t = 2_000)]
    pub in_place_backoff_max_ms: u64,
    /// Share of each in-place retry delay to randomise, 0 to 1.
    #[arg(long, env = "IN_PLACE_BACKOFF_JITTER", default_value_t = 0.0)]
    pub in_place_backoff_jitter: f64,

    /// Shape of the delays between probes of a dependency that is down.
    #[arg(long, env = "OUTAGE_PROBE_BACKOFF", value_enum, default_value_t = BackoffShapeArg::Exponential)]
    pub outage_probe_backoff: BackoffShapeArg,
    /// First outage probe delay (ms).
    #[arg(long, env = "OUTAGE_PROBE_BACKOFF_INITIAL_MS", default_value_t = 50)]
    pub outage_probe_backoff_initial_ms: u64,
    /// Growth of each outage probe delay.
    #[arg(long, env = "OUTAGE_PROBE_BACKOFF_MULTIPLIER", default_value_t = 2.0)]
    pub outage_probe_backoff_multiplier: f64,
    /// Longest outage probe delay (ms): how late a recovered dependency is noticed.
    #[arg(long, env = "OUTAGE_PROBE_BACKOFF_MAX_MS", default_value_t = 50)]
    pub outage_probe_backoff_max_ms: u64,
    /// Share of each outage probe delay to randomise, 0 to 1.
    #[arg(long, env = "OUTAGE_PROBE_BACKOFF_JITTER", default_value_t = 0.0)]
    pub outage_probe_backoff_jitter: f64,

    /// Permanent failures in a row before the consumer halts (0: no limit).
    #[arg(long, env = "DLQ_MAX_CONSECUTIVE_PERMANENT", default_value_t = 100)]
    pub dlq_max_consecutive_permanent: u32,
    /// Window of recent messages judged for the share of permanent failures (0: off).
    #[arg(long, env = "DLQ_PERMANENT_WINDOW", default_value_t = 1_000)]
    pub dlq_permanent_window: u32,
    /// Halt when more than this share of the window failed permanently, 0 to 1.
    #[arg(long, env = "DLQ_MAX_PERMANENT_SHARE", default_value_t = 0.5, value_parser = share)]
    pub dlq_max_permanent_share: f64,
    /// How long a DLQ write may wait for `acks=all` (ms).
    #[arg(long, env = "PUBLISH_TIMEOUT_MS", default_value_t = 10_000)]
    pub publish_timeout_ms: u64,

    #[command(flatten)]
    pub retries: RetryScheduleArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    // Last: its help heading would otherwise carry over to the arguments after it.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// [`CommitPolicy`] as a command-line value.
///
/// `unsafe-auto-commit` is always a known value, so `--help` and a typo look the same in
/// every build; without the `negative-control` feature it is refused when parsed, with an
/// error naming the feature, instead of quietly committing after the durable outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPolicyArg {
    AfterDurableOutcome,
    #[cfg(feature = "negative-control")]
    UnsafeAutoCommit,
}

const AFTER_DURABLE_OUTCOME: &str = "after-durable-outcome";
const UNSAFE_AUTO_COMMIT: &str = "unsafe-auto-commit";

fn commit_policy_parser() -> impl clap::builder::TypedValueParser<Value = CommitPolicyArg> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new([AFTER_DURABLE_OUTCOME, UNSAFE_AUTO_COMMIT]).try_map(|value| {
        if value == UNSAFE_AUTO_COMMIT {
            unsafe_auto_commit()
        } else {
            Ok(CommitPolicyArg::AfterDurableOutcome)
        }
    })
}

#[cfg(feature = "negative-control")]
fn unsafe_auto_commit() -> Result<CommitPolicyArg, String> {
    Ok(CommitPolicyArg::UnsafeAutoCommit)
}

#[cfg(not(feature = "negative-control"))]
fn unsafe_auto_commit() -> Result<CommitPolicyArg, String> {
    Err(format!(
        "{UNSAFE_AUTO_COMMIT} loses messages on a crash and exists only for the test suite's negative \
         control; this binary was built without the `negative-control` feature (build it with \
         `--features negative-control`, as scripts/test.sh does)"
    ))
}

/// [`OutagePolicy`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutagePolicyArg {
    Pause,
    DeadLetter,
}

/// A share between 0 and 1, e.g. of a window of messages; the error says the range.
pub fn share(raw: &str) -> Result<f64, String> {
    let value: f64 = raw.trim().parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 1".to_owned())
    }
}

impl ServiceArgs {
    /// The whole settings of a service named `name` consuming `topics` (its group defaults to
    /// `name`); `variables` as in [`KafkaArgs::settings`].
    pub fn settings(
        &self,
        name: &str,
        topics: &[&str],
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> ServiceSettings {
        ServiceSettings {
            kafka: self.kafka_settings(name, variables),
            consumer: self.consumer_settings(name, topics),
            dead_letters: self.dead_letter_policy(),
            topic_policy: self.topic_policy(),
            http_addr: self.http_addr,
            telemetry: self.telemetry.clone(),
        }
    }

    /// The Kafka settings of a client named `client_id`; `variables` as in [`KafkaArgs::settings`].
    pub fn kafka_settings(
        &self,
        client_id: &str,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> KafkaSettings {
        self.kafka.settings(client_id, variables)
    }

    /// How to consume `topics`, in the group `CONSUMER_GROUP` or else `default_group`.
    pub fn consumer_settings(&self, default_group: &str, topics: &[&str]) -> ConsumerSettings {
        let group = self.consumer_group.clone().unwrap_or_else(|| default_group.to_owned());
        let mut consumer = ConsumerSettings::new(group, topics);
        consumer.max_batch_size = self.batch_size.max(1);
        consumer.partition_concurrency = usize::from(self.partition_concurrency);
        consumer.max_batch_wait = Duration::from_millis(self.batch_wait_ms);
        consumer.in_place_retries = self.in_place_retries;
        consumer.in_place_backoff = backoff(
            self.in_place_backoff,
            self.in_place_backoff_initial_ms,
            self.in_place_backoff_multiplier,
            self.in_place_backoff_max_ms,
            self.in_place_backoff_jitter,
        );
        consumer.commit_policy = match self.commit_policy {
            CommitPolicyArg::AfterDurableOutcome => CommitPolicy::AfterDurableOutcome,
            #[cfg(feature = "negative-control")]
            CommitPolicyArg::UnsafeAutoCommit => CommitPolicy::UnsafeAutoCommit,
        };
        consumer.instance_id = self.consumer_instance_id.clone().filter(|id| !id.is_empty());
        consumer.outage_policy = match self.dependency_outage {
            OutagePolicyArg::Pause => OutagePolicy::Pause,
            OutagePolicyArg::DeadLetter => OutagePolicy::DeadLetter,
        };
        consumer.outage_probe_backoff = backoff(
            self.outage_probe_backoff,
            self.outage_probe_backoff_initial_ms,
            self.outage_probe_backoff_multiplier,
            self.outage_probe_backoff_max_ms,
            self.outage_probe_backoff_jitter,
        );
        consumer.dead_letter_limit = self.dead_letter_limit();
        consumer
    }

    fn dead_letter_limit(&self) -> DeadLetterLimit {
        DeadLetterLimit {
            max_consecutive: self.dlq_max_consecutive_permanent,
            window: self.dlq_permanent_window,
            max_share: self.dlq_max_permanent_share,
        }
    }

    /// Format, schedule, limits and publish timeout of dead letters.
    pub fn dead_letter_policy(&self) -> DeadLetterPolicy {
        DeadLetterPolicy {
            format: self.retries.format(),
            schedule: self.retries.schedule(),
            limit: self.dead_letter_limit(),
            publish_timeout: Duration::from_millis(self.publish_timeout_ms),
        }
    }

    /// How declared topics are replicated.
    pub fn topic_policy(&self) -> TopicPolicy {
        self.topics.policy()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::dead_letter::Backoff;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn parse(args: &[&str]) -> Result<ServiceArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("svc").chain(args.iter().copied())).map(|cli| cli.service)
    }

    #[test]
    fn the_defaults_are_the_library_defaults() {
        let args = parse(&[]).expect("defaults parse");
        let consumer = args.consumer_settings("svc", &["t"]);
        let expected = ConsumerSettings::new("svc", &["t"]);
        assert_eq!(consumer.group_id, "svc");
        assert_eq!(consumer.max_batch_size, expected.max_batch_size);
        assert_eq!(consumer.max_batch_wait, expected.max_batch_wait);
        assert_eq!(consumer.partition_concurrency, expected.partition_concurrency);
        assert_eq!(consumer.in_place_retries, expected.in_place_retries);
        assert_eq!(consumer.in_place_backoff, expected.in_place_backoff);
        assert_eq!(consumer.outage_probe_backoff, expected.outage_probe_backoff);
        assert_eq!(consumer.dead_letter_limit, expected.dead_letter_limit);
        assert_eq!(consumer.commit_policy, CommitPolicy::AfterDurableOutcome);
        assert_eq!(args.dead_letter_policy(), DeadLetterPolicy::default());
        assert_eq!(args.topic_policy(), TopicPolicy::default());
    }

    #[test]
    fn a_constant_backoff_waits_its_initial_delay() {
        let args = parse(&["--retry-backoff", "constant", "--retry-backoff-initial-ms", "200"]).expect("parses");
        assert_eq!(args.dead_letter_policy().schedule, Backoff::constant(Duration::from_millis(200)));
    }

    #[test]
    fn a_bad_value_is_reported_with_the_variable_it_came_from() {
        let error = parse(&["--batch-size", "lots"]).expect_err("not a number").to_string();
        assert!(error.contains("BATCH_SIZE"), "{error}");
        let error = parse(&["--dlq-max-permanent-share", "1.5"]).expect_err("out of range").to_string();
        assert!(error.contains("DLQ_MAX_PERMANENT_SHARE") && error.contains("between 0 and 1"), "{error}");
        let error = parse(&["--dependency-outage", "ignore"]).expect_err("no such policy").to_string();
        assert!(error.contains("DEPENDENCY_OUTAGE"), "{error}");
    }

    #[cfg(not(feature = "negative-control"))]
    #[test]
    fn auto_commit_is_refused_naming_the_feature_that_allows_it() {
        let error = parse(&["--commit-policy", "unsafe-auto-commit"]).expect_err("refused").to_string();
        assert!(error.contains("COMMIT_POLICY") && error.contains("`negative-control` feature"), "{error}");
        let error = parse(&["--commit-policy", "sometimes"]).expect_err("no such policy").to_string();
        assert!(error.contains("COMMIT_POLICY"), "{error}");
    }

    #[cfg(feature = "negative-control")]
    #[test]
    fn auto_commit_is_the_negative_control_features_to_allow() {
        let args = parse(&["--commit-policy", "unsafe-auto-commit"]).expect("parses");
        assert_eq!(args.consumer_settings("svc", &["t"]).commit_policy, CommitPolicy::UnsafeAutoCommit);
    }
}
