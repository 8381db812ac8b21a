//! A time-compressed copy of the shipped Prometheus rules, for the end-to-end alert test: the
//! same groups, names, labels, annotations and expressions, with every `for:` and every range
//! selector (`[5m]`) divided by a factor, so that an alert that waits minutes in production
//! fires in seconds here. The real durations are held by the promtool tests; this checks that
//! the expressions say the right thing about the real services.

use std::time::Duration;

use regex::{Captures, Regex};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// The rule file `source` (YAML) with its durations divided by `factor`, as YAML.
pub fn compress(source: &str, factor: u32) -> Result<String, String> {
    let mut docs = YamlLoader::load_from_str(source).map_err(|e| format!("rules are not YAML: {e}"))?;
    let doc = docs.first_mut().ok_or("empty rule file")?;
    let Yaml::Hash(root) = doc else { return Err("a rule file is a mapping".into()) };
    let groups = root.get_mut(&key("groups")).ok_or("no `groups`")?;
    let Yaml::Array(groups) = groups else { return Err("`groups` is a list".into()) };
    for group in groups {
        let Yaml::Hash(group) = group else { return Err("a group is a mapping".into()) };
        let Some(Yaml::Array(rules)) = group.get_mut(&key("rules")) else { return Err("a group has `rules`".into()) };
        for rule in rules {
            let Yaml::Hash(rule) = rule else { return Err("a rule is a mapping".into()) };
            if let Some(Yaml::String(expr)) = rule.get_mut(&key("expr")) {
                *expr = compress_expr(expr, factor)?;
            }
            if let Some(Yaml::String(duration)) = rule.get_mut(&key("for")) {
                *duration = format_duration(parse_duration(duration)? / factor);
            }
        }
    }
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(doc).map_err(|e| format!("emitting YAML: {e}"))?;
    Ok(out)
}

/// The negative control's rule file: one group holding a copy of `alert` from the rule file
/// `rules` (YAML), renamed `<alert>BrokenCopy`, with `from` replaced by `to` in its expression:
/// the same timing and labels, a rule that cannot match. The scenario must see the original
/// arrive and report the copy missing.
pub fn broken_copy(rules: &str, alert: &str, from: &str, to: &str) -> Result<String, String> {
    let docs = YamlLoader::load_from_str(rules).map_err(|e| format!("rules are not YAML: {e}"))?;
    let original = docs
        .first()
        .and_then(|doc| doc["groups"].as_vec())
        .into_iter()
        .flatten()
        .filter_map(|group| group["rules"].as_vec())
        .flatten()
        .find(|rule| rule["alert"].as_str() == Some(alert))
        .ok_or_else(|| format!("no alert {alert} in the rules"))?;
    let Yaml::Hash(mut copy) = original.clone() else { return Err("a rule is a mapping".into()) };
    let expr = copy.get(&key("expr")).and_then(Yaml::as_str).unwrap_or_default().to_owned();
    if !expr.contains(from) {
        return Err(format!("{alert}'s expression has no {from:?} to break: {expr}"));
    }
    copy.insert(key("alert"), Yaml::String(format!("{alert}BrokenCopy")));
    copy.insert(key("expr"), Yaml::String(expr.replace(from, to)));
    let mut group = yaml_rust2::yaml::Hash::new();
    group.insert(key("name"), key("negative-control"));
    group.insert(key("rules"), Yaml::Array(vec![Yaml::Hash(copy)]));
    let mut root = yaml_rust2::yaml::Hash::new();
    root.insert(key("groups"), Yaml::Array(vec![Yaml::Hash(group)]));
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(&Yaml::Hash(root)).map_err(|e| format!("emitting YAML: {e}"))?;
    Ok(out)
}

fn key(name: &str) -> Yaml {
    Yaml::String(name.to_owned())
}

/// Every range selector `[d]` of a PromQL expression divided by `factor`. Subqueries
/// (`[d:step]`) and `offset` would need the same; the rules use neither, so they are refused
/// rather than silently left at their real length.
fn compress_expr(expr: &str, factor: u32) -> Result<String, String> {
    if expr.contains(" offset ") || Regex::new(r"\[[^\]]*:").expect("regex").is_match(expr) {
        return Err(format!("offset or subquery not supported by the compression: {expr}"));
    }
    let range = Regex::new(r"\[([0-9smhdwy]+)\]").expect("regex");
    let mut failed = None;
    let out = range.replace_all(expr, |c: &Captures| match parse_duration(&c[1]) {
        Ok(d) => format!("[{}]", format_duration(d / factor)),
        Err(e) => {
            failed = Some(e);
            c[0].to_owned()
        }
    });
    failed.map_or(Ok(out.into_owned()), Err)
}

/// A Prometheus duration: one or more `<n><unit>` with unit `ms`, `s`, `m`, `h`, `d`, `w`, `y`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let part = Regex::new(r"([0-9]+)(ms|s|m|h|d|w|y)").expect("regex");
    let mut total = Duration::ZERO;
    let mut consumed = 0;
    for c in part.captures_iter(text) {
        let whole = c.get(0).expect("match");
        if whole.start() != consumed {
            break;
        }
        consumed = whole.end();
        let n: u64 = c[1].parse().map_err(|_| format!("bad duration {text:?}"))?;
        let unit_ms = match &c[2] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => 365 * 86_400_000,
        };
        total += Duration::from_millis(n * unit_ms);
    }
    if consumed != text.len() || consumed == 0 {
        return Err(format!("bad duration {text:?}"));
    }
    Ok(total)
}

fn format_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_for_and_every_range_and_keeps_the_rest() {
        let rules = "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(rate(x_total[2m]))\n      \
                     - alert: A\n        expr: 'deriv(y[10m]) > 0 and z[1m30s] > 1'\n        for: 15m\n        \
                     labels:\n          severity: warning\n        annotations:\n          summary: \"{{ $labels.job }}\"\n";
        let out = compress(rules, 20).unwrap();
        assert!(out.contains("sum(rate(x_total[6000ms]))"), "{out}");
        assert!(out.contains("deriv(y[30000ms]) > 0 and z[4500ms] > 1"), "{out}");
        assert!(out.contains("for: 45000ms"), "{out}");
        assert!(out.contains("severity: warning") && out.contains("{{ $labels.job }}"), "{out}");
    }

    #[test]
    fn a_broken_copy_keeps_all_but_the_name_and_the_broken_part() {
        let shipped = include_str!("../../../observability/prometheus/rules/signup.rules.yml");
        let compressed = compress(shipped, 20).unwrap();
        let copy = broken_copy(&compressed, "ConsumerPaused", "_paused", "_pausd").unwrap();
        assert!(copy.contains("alert: ConsumerPausedBrokenCopy") && copy.contains("_pausd"), "{copy}");
        assert!(copy.contains("for: 6000ms") && copy.contains("severity: critical"), "{copy}");
        assert_eq!(copy.matches("alert:").count(), 1, "{copy}");
        assert!(broken_copy(&compressed, "NoSuchAlert", "a", "b").is_err());
        assert!(broken_copy(&compressed, "ConsumerPaused", "not in it", "b").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_compress() {
        assert!(compress_expr("rate(x[5m:1m])", 10).is_err());
        assert!(compress_expr("x offset 5m", 10).is_err());
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn the_shipped_rules_compress() {
        let shipped = include_str!("../../../observability/prometheus/rules/signup.rules.yml");
        let out = compress(shipped, 20).unwrap();
        assert!(!Regex::new(r"\[[0-9]+[mh]\]").unwrap().is_match(&out), "a range left uncompressed:\n{out}");
        assert_eq!(out.matches("alert:").count(), shipped.matches("- alert:").count());
    }
}
