//! Header names of the headers format, and of the foreign formats that are read.
//!
//! Lower-case, `x-` prefixed, stable: other teams' producers and tools rely on them (see
//! `docs/message-contract.md`).

pub const RETRY_COUNT: &str = "x-retry-count";
pub const ORIGINAL_TOPIC: &str = "x-original-topic";
pub const ORIGINAL_PARTITION: &str = "x-original-partition";
pub const ORIGINAL_OFFSET: &str = "x-original-offset";
pub const FIRST_FAILURE_AT: &str = "x-first-failure-at";
pub const LAST_FAILURE_AT: &str = "x-last-failure-at";
pub const ERROR_KIND: &str = "x-error-kind";
pub const ERROR_MESSAGE: &str = "x-error-message";
pub const NOT_BEFORE: &str = "x-not-before";

/// Every header this module owns; all are replaced together on each hop.
pub const ALL: [&str; 9] = [
    RETRY_COUNT,
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    FIRST_FAILURE_AT,
    LAST_FAILURE_AT,
    ERROR_KIND,
    ERROR_MESSAGE,
    NOT_BEFORE,
];

/// The article's reference implementation: plain-text headers.
pub const ARTICLE_RETRY_COUNT: &str = "retryCount";
pub const ARTICLE_ORIGINAL_TOPIC: &str = "originalTopic";

/// Prefixes of the error headers foreign dead-letter writers append on every hop.
pub(crate) const FOREIGN_ERROR_PREFIXES: [&str; 3] = ["__connect.errors.", "kafka_dlt-", "retry_topic-"];

pub(crate) const SPRING_ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
pub(crate) const SPRING_ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
pub(crate) const SPRING_ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
pub(crate) const SPRING_EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
pub(crate) const SPRING_EXCEPTION_CLASS: &str = "kafka_dlt-exception-fqcn";
pub(crate) const SPRING_ATTEMPTS: &str = "retry_topic-attempts";
pub(crate) const CONNECT_TOPIC: &str = "__connect.errors.topic";
pub(crate) const CONNECT_PARTITION: &str = "__connect.errors.partition";
pub(crate) const CONNECT_OFFSET: &str = "__connect.errors.offset";
pub(crate) const CONNECT_EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
pub(crate) const CONNECT_EXCEPTION_CLASS: &str = "__connect.errors.exception.class.name";
