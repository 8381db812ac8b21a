//! The DLQ retry schedule and the retry-metadata format as flattenable arguments: shared by
//! the consumer services, which write dead letters with a first `x-not-before`, and the
//! dlq-worker, which re-sends them on the same schedule, so both read the same variables.

use std::time::Duration;

use crate::dead_letter::{Backoff, BackoffShape};
use crate::message::retry_metadata::MetadataFormat;

/// `RETRY_METADATA_FORMAT` and `RETRY_BACKOFF*`; the defaults are [`Backoff::default`] and
/// [`MetadataFormat::default`].
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "DLQ retry schedule")]
pub struct RetryScheduleArgs {
    /// Format of the retry metadata written with dead letters and re-sends.
    #[arg(long, env = "RETRY_METADATA_FORMAT", value_enum, default_value_t = MetadataFormatArg::Headers)]
    pub retry_metadata_format: MetadataFormatArg,
    /// Shape of the DLQ retry schedule: the delay before each re-send (`x-not-before`).
    #[arg(long, env = "RETRY_BACKOFF", value_enum, default_value_t = BackoffShapeArg::Exponential)]
    pub retry_backoff: BackoffShapeArg,
    /// First DLQ retry delay (ms).
    #[arg(long, env = "RETRY_BACKOFF_INITIAL_MS", default_value_t = 1_000)]
    pub retry_backoff_initial_ms: u64,
    /// Growth of each DLQ retry delay.
    #[arg(long, env = "RETRY_BACKOFF_MULTIPLIER", default_value_t = 2.0)]
    pub retry_backoff_multiplier: f64,
    /// Longest DLQ retry delay (ms).
    #[arg(long, env = "RETRY_BACKOFF_MAX_MS", default_value_t = 60_000)]
    pub retry_backoff_max_ms: u64,
    /// Share of each DLQ retry delay to randomise, 0 to 1.
    #[arg(long, env = "RETRY_BACKOFF_JITTER", default_value_t = 0.0, value_parser = super::args::share)]
    pub retry_backoff_jitter: f64,
}

impl RetryScheduleArgs {
    /// The delay before each retry from the DLQ.
    pub fn schedule(&self) -> Backoff {
        backoff(
            self.retry_backoff,
            self.retry_backoff_initial_ms,
            self.retry_backoff_multiplier,
            self.retry_backoff_max_ms,
            self.retry_backoff_jitter,
        )
    }

    /// How retry metadata is written.
    pub fn format(&self) -> MetadataFormat {
        match self.retry_metadata_format {
            MetadataFormatArg::Headers => MetadataFormat::Headers,
            MetadataFormatArg::Wrapper => MetadataFormat::Wrapper,
        }
    }
}

/// [`MetadataFormat`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetadataFormatArg {
    Headers,
    Wrapper,
}

/// [`BackoffShape`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackoffShapeArg {
    Constant,
    Exponential,
}

/// The backoff of five such variables (shape, initial, multiplier, max, jitter): a constant
/// shape waits the initial delay every time.
pub(crate) fn backoff(shape: BackoffShapeArg, initial_ms: u64, multiplier: f64, max_ms: u64, jitter: f64) -> Backoff {
    let initial = Duration::from_millis(initial_ms);
    let shape = match shape {
        BackoffShapeArg::Constant => BackoffShape::Constant(initial),
        BackoffShapeArg::Exponential => {
            BackoffShape::Exponential { initial, multiplier, max: Duration::from_millis(max_ms) }
        }
    };
    Backoff { shape, jitter: 0.0 }.with_jitter(jitter)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        retries: RetryScheduleArgs,
    }

    #[test]
    fn the_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["svc"]).expect("defaults parse");
        assert_eq!(cli.retries.schedule(), Backoff::default());
        assert_eq!(cli.retries.format(), MetadataFormat::default());
    }

    #[test]
    fn a_jitter_outside_0_to_1_names_its_variable() {
        let error = Cli::try_parse_from(["svc", "--retry-backoff-jitter", "2"]).expect_err("out of range").to_string();
        assert!(error.contains("RETRY_BACKOFF_JITTER"), "{error}");
    }
}
