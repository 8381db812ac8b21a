//! The logging and tracing settings as one clap struct every service flattens into its own
//! arguments, so `<service> --help` lists `RUST_LOG`, `LOG_FORMAT` and the `OTEL_*` variables
//! the service reads, and [`telemetry::init`](crate::service::runtime::telemetry::init) reads nothing
//! but these. A filter that does not parse stops the service at start with an error naming
//! `RUST_LOG`, rather than being ignored for the default.
//!
//! The OpenTelemetry SDK reads a few variables of its own, as its specification says
//! (`OTEL_BSP_*` for the batching, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, ...);
//! those stay the SDK's and are named in `--help`'s closing line.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG`, `LOG_FORMAT`, the OTLP endpoints and the service name of the traces.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Logs and traces")]
pub struct TelemetryArgs {
    /// Log filter, e.g. `debug` or `info,reliable_messaging=debug` (tracing-subscriber's
    /// EnvFilter syntax) [default: info, rdkafka and sqlx at warn].
    #[arg(long, env = "RUST_LOG", value_name = "RUST_LOG", value_parser = log_filter)]
    pub log_filter: Option<String>,
    /// Log line format: text, or json (one object per line, with `trace_id` and `span_id`
    /// inside a traced span).
    #[arg(long, env = "LOG_FORMAT", value_enum, ignore_case = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// OTLP/HTTP base URL of a trace receiver, e.g. http://otel-collector:4318; spans go to
    /// its `/v1/traces` [default: unset, no traces are exported].
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// OTLP/HTTP URL of the traces receiver, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otel_exporter_otlp_traces_endpoint: Option<String>,
    /// `service.name` of the exported spans [default: the binary's name].
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers such as Filebeat or Splunk.
    Json,
}

/// Accepts a filter `EnvFilter` parses; an empty one counts as unset (the default filter), as
/// an empty variable usually means "not set" in a deployment's manifest.
fn log_filter(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if !raw.is_empty() {
        EnvFilter::try_new(raw).map_err(|e| format!("not a log filter: {e}"))?;
    }
    Ok(raw.to_owned())
}

/// A value given and not blank.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl TelemetryArgs {
    /// The log filter: `RUST_LOG`, else `default`.
    pub fn filter(&self, default: &str) -> EnvFilter {
        set(&self.log_filter)
            .and_then(|filter| EnvFilter::try_new(filter).ok())
            .unwrap_or_else(|| EnvFilter::new(default))
    }

    /// The URL spans are sent to, if tracing is wanted: the traces endpoint as given, or the
    /// generic endpoint with `/v1/traces` appended (the OTLP exporter specification's rule for
    /// OTLP/HTTP).
    pub fn traces_endpoint(&self) -> Option<String> {
        if let Some(endpoint) = set(&self.otel_exporter_otlp_traces_endpoint) {
            return Some(endpoint.to_owned());
        }
        set(&self.otel_exporter_otlp_endpoint)
            .map(|base| format!("{}/v1/traces", base.strip_suffix('/').unwrap_or(base)))
    }

    /// `service.name` of the spans: `OTEL_SERVICE_NAME`, else `service`.
    pub fn service_name<'a>(&'a self, service: &'a str) -> &'a str {
        set(&self.otel_service_name).unwrap_or(service)
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    /// Parses flags alone: the variables of the machine running the tests change nothing.
    fn parse(args: &[&str]) -> Result<TelemetryArgs, clap::Error> {
        let matches = crate::service::ignoring_environment(Cli::command())
            .try_get_matches_from(std::iter::once("test").chain(args.iter().copied()))?;
        Ok(Cli::from_arg_matches(&matches).expect("matches of this command").telemetry)
    }

    #[test]
    fn defaults_log_text_and_export_nothing() {
        let args = parse(&[]).expect("parses");
        assert_eq!(args, TelemetryArgs::default());
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.traces_endpoint(), None);
        assert_eq!(args.service_name("gateway"), "gateway");
        assert_eq!(args.filter("info,gateway=info").to_string(), EnvFilter::new("info,gateway=info").to_string());
    }

    #[test]
    fn the_log_format_ignores_case() {
        for value in ["json", "JSON", "Json"] {
            assert_eq!(parse(&["--log-format", value]).expect(value).log_format, LogFormat::Json);
        }
        assert_eq!(parse(&["--log-format", "TEXT"]).expect("TEXT").log_format, LogFormat::Text);
        let error = parse(&["--log-format", "yaml"]).expect_err("not a format").to_string();
        assert!(error.contains("LOG_FORMAT"), "{error}");
    }

    #[test]
    fn a_bad_filter_names_rust_log() {
        let error = parse(&["--log-filter", "info,sqlx=loud"]).expect_err("not a filter").to_string();
        assert!(error.contains("RUST_LOG"), "{error}");
        let args = parse(&["--log-filter", "debug,rdkafka=warn"]).expect("a filter");
        assert_eq!(args.filter("info").to_string(), EnvFilter::new("debug,rdkafka=warn").to_string());
        let blank = parse(&["--log-filter", " "]).expect("blank is unset");
        assert_eq!(blank.filter("warn").to_string(), "warn");
    }

    #[test]
    fn the_traces_endpoint_follows_the_otlp_rules() {
        let generic = parse(&["--otel-exporter-otlp-endpoint", "http://collector:4318"]).expect("parses");
        assert_eq!(generic.traces_endpoint().as_deref(), Some("http://collector:4318/v1/traces"));
        let slash = parse(&["--otel-exporter-otlp-endpoint", "http://collector:4318/"]).expect("parses");
        assert_eq!(slash.traces_endpoint().as_deref(), Some("http://collector:4318/v1/traces"));
        let both = parse(&[
            "--otel-exporter-otlp-endpoint",
            "http://wrong:4318",
            "--otel-exporter-otlp-traces-endpoint",
            "http://collector:4318/custom",
        ])
        .expect("parses");
        assert_eq!(both.traces_endpoint().as_deref(), Some("http://collector:4318/custom"), "used as is, and wins");
        let blank = parse(&["--otel-exporter-otlp-endpoint", ""]).expect("parses");
        assert_eq!(blank.traces_endpoint(), None, "blank is unset");
    }

    #[test]
    fn the_service_name_can_be_overridden() {
        let args = parse(&["--otel-service-name", "signup-gateway"]).expect("parses");
        assert_eq!(args.service_name("gateway"), "signup-gateway");
    }
}
