//! `<service>_build_info{version="…"} 1`: which build answers, for dashboards and alerts that
//! compare instances during a rollout.
//!
//! The version is the service crate's `CARGO_PKG_VERSION`, handed in by the service (the
//! library's own would name the wrong crate). A `revision` label is added when the build sets
//! `GIT_COMMIT` (the Dockerfile passes it as a build argument): read at compile time with
//! `option_env!`, so a build from a tarball, without git, still builds and just lacks it.

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The commit the binary was built from, when the build said so.
fn revision() -> Option<&'static str> {
    option_env!("GIT_COMMIT").filter(|c| !c.is_empty())
}

/// Registers `build_info` (an OpenMetrics `info` family: encoded `<prefix>_build_info`).
pub(super) fn register(registry: &mut Registry, version: &str) {
    let mut labels = vec![("version", version.to_owned())];
    if let Some(revision) = revision() {
        labels.push(("revision", revision.to_owned()));
    }
    registry.register("build", "The version this instance was built as", Info::new(labels));
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn is_one_series_with_the_version_label() {
        let mut registry = Registry::with_prefix("svc");
        register(&mut registry, "0.1.0");
        let mut page = String::new();
        encode(&mut page, &registry).unwrap();
        assert!(page.contains("# TYPE svc_build info\n"), "{page}");
        let sample = page.lines().find(|l| l.starts_with("svc_build_info{")).expect("a sample");
        assert!(sample.starts_with("svc_build_info{version=\"0.1.0\""), "{sample}");
        assert!(sample.ends_with("} 1"), "{sample}");
    }
}
