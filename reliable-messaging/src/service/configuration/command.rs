//! Turning a service's clap arguments into its command: the name in `--help`, and the
//! per-service names and defaults that a shared struct cannot know.
//!
//! [`ServiceArgs`](crate::service::ServiceArgs) is shared by every service, but each service
//! has its own HTTP address variable (several run on one machine with one environment) and its
//! own default database. Rather than a struct per service, the shared arguments are renamed
//! here on the built [`clap::Command`].

use std::ffi::OsString;

use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

/// What differs between services that share [`ServiceArgs`](crate::service::ServiceArgs).
#[derive(Debug, Clone, Copy)]
pub struct ServiceDefaults {
    /// The binary's name in `--help`.
    pub name: &'static str,
    /// The variable of the probe and metrics address, e.g. `REGISTRATION_SERVICE_ADDR`.
    pub http_addr_env: &'static str,
    /// Its default, e.g. `127.0.0.1:8081`.
    pub http_addr: &'static str,
    /// The default `DATABASE_URL`, when the arguments include
    /// [`DatabaseArgs`](crate::service::DatabaseArgs).
    pub database_url: Option<&'static str>,
}

/// The variables read outside the arguments, shown at the end of `--help`.
const MORE_VARIABLES: &str = "Also read: KAFKA_<PROPERTY> for any other librdkafka property (`.` written `_`, \
     e.g. KAFKA_SSL_KEY_LOCATION); and, by the OpenTelemetry SDK itself when traces are exported, \
     OTEL_BSP_* (batching) and OTEL_EXPORTER_OTLP_HEADERS (e.g. an API key).";

/// The command of arguments `A` (which flatten `ServiceArgs`) with `defaults` applied.
pub fn command<A: CommandFactory>(defaults: &ServiceDefaults) -> Command {
    let mut command = A::command().name(defaults.name).after_help(MORE_VARIABLES);
    let has = |command: &Command, id: &str| command.get_arguments().any(|a| a.get_id() == id);
    if has(&command, "http_addr") {
        command = command.mut_arg("http_addr", |a| {
            a.env(defaults.http_addr_env).value_name(defaults.http_addr_env).default_value(defaults.http_addr)
        });
    }
    if let Some(url) = defaults.database_url.filter(|_| has(&command, "database_url")) {
        command = command.mut_arg("database_url", |a| a.default_value(url));
    }
    command
}

/// `command` with every argument's variable removed, so that only flags are read: for tests,
/// which must not depend on (or change) the environment every test in the process shares.
pub fn ignoring_environment(command: Command) -> Command {
    let with_env: Vec<clap::Id> =
        command.get_arguments().filter(|a| a.get_env().is_some()).map(|a| a.get_id().clone()).collect();
    with_env.into_iter().fold(command, |command, id| command.mut_arg(id, |a| a.env(None::<&str>)))
}

/// Parses `A` from `args` (the first is the binary's name) and the environment. Errors name the
/// variable (or flag) at fault; `--help` is an error too, which `clap::Error::exit` prints.
///
/// The binary calls this once at start-up (`std::env::args_os()`); nothing else reads the
/// environment.
pub fn parse_from<A, I, T>(defaults: &ServiceDefaults, args: I) -> Result<A, clap::Error>
where
    A: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = command::<A>(defaults);
    let matches: ArgMatches = command.try_get_matches_from_mut(args)?;
    A::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// Whether `command` reads exactly the `documented` variables and its `--help` names each one:
/// the check every service's tests run against the list it keeps (and the README repeats), so a
/// variable added without its documentation, or documented but gone, fails a test.
pub fn check_variables(command: &mut Command, documented: &[&str]) -> Result<(), String> {
    let declared: std::collections::BTreeSet<String> =
        command.get_arguments().filter_map(|a| a.get_env()).map(|env| env.to_string_lossy().into_owned()).collect();
    let expected: std::collections::BTreeSet<String> = documented.iter().map(|v| (*v).to_owned()).collect();
    if declared != expected {
        let undocumented: Vec<_> = declared.difference(&expected).collect();
        let gone: Vec<_> = expected.difference(&declared).collect();
        return Err(format!("read but not documented: {undocumented:?}; documented but not read: {gone:?}"));
    }
    let help = command.render_long_help().to_string();
    match documented.iter().find(|v| !help.contains(&format!("env: {v}"))) {
        Some(missing) => Err(format!("--help does not list {missing}:\n{help}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Example {
        /// Where to listen.
        #[arg(long, env = "EXAMPLE_ADDR", default_value = "127.0.0.1:0")]
        addr: String,
        /// How many.
        #[arg(long, env = "EXAMPLE_COUNT", default_value_t = 1)]
        count: u32,
    }

    #[test]
    fn a_variable_read_but_not_documented_or_the_reverse_fails_the_check() {
        assert_eq!(check_variables(&mut Example::command(), &["EXAMPLE_ADDR", "EXAMPLE_COUNT"]), Ok(()));
        let undocumented = check_variables(&mut Example::command(), &["EXAMPLE_ADDR"]).unwrap_err();
        assert!(undocumented.contains("EXAMPLE_COUNT"), "{undocumented}");
        let gone = check_variables(&mut Example::command(), &["EXAMPLE_ADDR", "EXAMPLE_COUNT", "EXAMPLE_GONE"]);
        assert!(gone.unwrap_err().contains("EXAMPLE_GONE"));
    }
}
