//! The console's pages, server-rendered with maud: every value interpolated with `(..)` is
//! HTML-escaped, so a sign-up name `<script>` shows as text. No script runs on any page.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use reliable_messaging::parking::{
    AuditEntry, ParkedMessage, ParkedState, ParkedSummary, ParkingCounts, SignatureGroup,
};

use super::lag::ServiceLag;
use super::mask;
use crate::operations::RedriveReport;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222}header{background:#1f2937;color:#fff;\
padding:8px 16px;display:flex;gap:16px;align-items:center}header a{color:#cbd5e1;text-decoration:none}\
main{padding:16px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;\
text-align:left;vertical-align:top}th{background:#f3f4f6}.ok{color:#166534}.bad{color:#b91c1c;font-weight:600}\
pre{background:#f9fafb;border:1px solid #eee;padding:8px;max-width:900px;overflow:auto;white-space:pre-wrap}\
form.inline{display:inline}fieldset{margin:8px 0;max-width:900px}label{margin-right:12px}.note{color:#555}";

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The frame of every page after login.
pub fn layout(title: &str, actor: Option<&str>, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · dlq-worker console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "dlq-worker console" }
                    @if let Some(actor) = actor {
                        a href="/console" { "Overview" }
                        a href="/console/groups" { "Signature groups" }
                        a href="/console/messages" { "Messages" }
                        a href="/console/audit" { "Audit" }
                        span { "signed in as " b id="actor" { (actor) } }
                        @if let Some(csrf) = csrf {
                            form.inline method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        None,
        html! {
            @if let Some(e) = error { p.bad id="login-error" { (e) } }
            form method="post" action="/console/login" {
                label { "Admin token " input type="password" name="token" id="token" autocomplete="off" required; }
                button type="submit" id="login" { "Log in" }
            }
            p.note { "Use one of the worker's admin tokens (ADMIN_TOKEN, ADMIN_TOKENS or ADMIN_TOKENS_FILE); its name is recorded as the actor of what you do." }
        },
    )
}

/// One service's readiness: its checks and the reason of each that is not ok.
pub struct ServiceReadiness {
    pub name: String,
    pub ready: bool,
    pub checks: Vec<(String, String)>,
}

pub struct Overview {
    pub services: Vec<ServiceReadiness>,
    /// Per service asked (`CONSOLE_READYZ_URLS`), its consumer lag.
    pub lags: Vec<(String, ServiceLag)>,
    pub waiting: usize,
    pub next_due: Option<DateTime<Utc>>,
    pub in_flight: usize,
    pub counts: ParkingCounts,
    pub groups: usize,
    pub chart: HourlyChart,
}

/// Dead letters and parkings per clock hour, oldest first; the last hour is the current one.
pub struct HourlyChart {
    pub first_hour: DateTime<Utc>,
    pub dead_lettered: Vec<u64>,
    pub parked: Vec<u64>,
}

impl HourlyChart {
    fn hour(&self, i: usize) -> DateTime<Utc> {
        self.first_hour + chrono::TimeDelta::hours(i64::try_from(i).unwrap_or(0))
    }
}

const PARKED_STATES: [ParkedState; 3] = [ParkedState::Parked, ParkedState::Redriven, ParkedState::Discarded];

pub fn overview(o: &Overview) -> Markup {
    html! {
        h2 { "Services" }
        table id="services" {
            tr { th { "service" } th { "ready" } th { "checks" } }
            @for s in &o.services {
                tr {
                    td { (s.name) }
                    td { @if s.ready { span.ok { "ready" } } @else { span.bad { "not ready" } } }
                    td { @for (name, state) in &s.checks {
                        div { (name) ": " @if state == "ok" { span.ok { "ok" } } @else { span.bad { (state) } } }
                    } }
                }
            }
        }
        h2 { "Consumer lag" }
        (lag_table(&o.lags))
        h2 { "Dead-letter queue" }
        p id="dlq" {
            (o.waiting) " waiting, " (o.in_flight) " in flight; next due: "
            @match o.next_due { Some(t) => { (time(t)) } None => { "none" } }
        }
        h2 { "Parking lot" }
        // Every state, 0 included: a state missing from the table would read as unknown.
        @let count = |state: ParkedState| o.counts.by_state.iter().find(|(s, _)| s == state.as_str()).map_or(0, |(_, n)| *n);
        table id="counts" {
            tr { @for state in PARKED_STATES { th { (state.as_str()) } } }
            tr { @for state in PARKED_STATES { td { (count(state)) } } }
        }
        p { a href="/console/groups" { (o.groups) " signature groups of parked messages" } }
        h3 { "Dead-lettered and parked per hour, last " (o.chart.parked.len()) " hours (UTC)" }
        (chart(&o.chart))
    }
}

/// Per service and partition: messages not yet committed, as the service itself last computed.
fn lag_table(lags: &[(String, ServiceLag)]) -> Markup {
    html! {
        table id="lag" {
            tr { th { "service" } th { "topic" } th { "partition" } th { "lag" } }
            @for (service, lag) in lags {
                @match lag {
                    ServiceLag::Partitions(partitions) => {
                        @for (topic, partition, n) in partitions {
                            tr.lag data-service=(service) data-topic=(topic) data-partition=(partition) {
                                td { (service) } td { (topic) } td { (partition) } td.lag-value { (n) }
                            }
                        }
                    }
                    ServiceLag::NoneExported => {
                        tr { td { (service) } td colspan="3" { span.note { "no consumer lag (no consumer, or no partition assigned yet)" } } }
                    }
                    ServiceLag::Unknown(why) => {
                        tr.lag-unknown data-service=(service) {
                            td { (service) } td colspan="3" { span.bad { "unknown" } " " span.note { "(" (why) ")" } }
                        }
                    }
                }
            }
        }
        p.note { "High watermark minus committed offset, refreshed every second: the dlq-worker's own on its dead-letter topics, the others' from their /metrics (consumer_partition_lag)." }
    }
}

/// The messages page for the messages parked in hour `i` of the chart, in any state now.
fn hour_messages(c: &HourlyChart, i: usize) -> String {
    let at = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    format!("/console/messages?state=&since={}&until={}", at(c.hour(i)), at(c.hour(i + 1)))
}

/// Two bars per hour (dead-lettered, parked) as inline SVG with axes, a `<title>` per bar and
/// the same numbers as a table, for those who read rather than look.
fn chart(c: &HourlyChart) -> Markup {
    const LEFT: usize = 44;
    const SLOT: usize = 46;
    const BAR: usize = 18;
    const TOP: u64 = 24;
    const HEIGHT: u64 = 140;
    let max = c.dead_lettered.iter().chain(&c.parked).copied().max().unwrap_or(0).max(1);
    let width = LEFT + c.parked.len() * SLOT + 10;
    let base = TOP + HEIGHT;
    let label = |i: usize| c.hour(i).format("%H:00").to_string();
    let span = |i: usize| format!("{}–{} UTC", label(i), c.hour(i + 1).format("%H:00"));
    let series = [("dead-lettered", "#6b7280", &c.dead_lettered), ("parked", "#b91c1c", &c.parked)];
    html! {
        svg id="chart" width=(width) height=(base + 44) role="img" aria-labelledby="chart-title" {
            title id="chart-title" { "Dead-lettered and parked messages per hour, last " (c.parked.len()) " hours" }
            // Legend.
            @for (k, (name, colour, _)) in series.iter().enumerate() {
                rect x=(LEFT + k * 130) y="4" width="10" height="10" fill=(colour) {}
                text x=(LEFT + 14 + k * 130) y="13" font-size="11" { (name) }
            }
            // Y axis: 0, half and the maximum, with a label.
            line x1=(LEFT - 4) y1=(TOP) x2=(LEFT - 4) y2=(base) stroke="#555" {}
            @for v in [0, max / 2, max] {
                @let y = base - v * HEIGHT / max;
                text x=(LEFT - 8) y=(y + 4) font-size="10" text-anchor="end" { (v) }
                line x1=(LEFT - 4) y1=(y) x2=(width) y2=(y) stroke="#eee" {}
            }
            text x="10" y=(TOP + HEIGHT / 2) font-size="10" transform=(format!("rotate(-90 10 {})", TOP + HEIGHT / 2)) text-anchor="middle" { "messages" }
            @for i in 0..c.parked.len() {
                @for (k, (name, colour, values)) in series.iter().enumerate() {
                    @let v = values.get(i).copied().unwrap_or(0);
                    @let h = v * HEIGHT / max;
                    @let bar = html! {
                        rect class=(format!("bar {name}")) data-hour=(c.hour(i).to_rfc3339()) data-count=(v)
                            x=(LEFT + i * SLOT + 4 + k * (BAR + 1)) y=(base - h) width=(BAR) height=(h) fill=(colour) {
                            title { (span(i)) ": " (v) " " (name) }
                        }
                    };
                    // A parked bar opens that hour's parked messages (re-sent ones are not stored).
                    @if *name == "parked" && v > 0 {
                        a.hour-messages href=(hour_messages(c, i)) { (bar) }
                    } @else {
                        (bar)
                    }
                }
                text x=(LEFT + i * SLOT + 4 + BAR) y=(base + 14) font-size="10" text-anchor="middle" { (label(i)) }
            }
            line x1=(LEFT - 4) y1=(base) x2=(width) y2=(base) stroke="#555" {}
            text x=(LEFT + (width - LEFT) / 2) y=(base + 34) font-size="10" text-anchor="middle" { "hour (UTC); the last one is the current hour" }
        }
        details {
            summary { "The chart as a table" }
            table id="chart-data" {
                tr { th { "hour (UTC)" } th { "dead-lettered" } th { "parked" } }
                @for i in 0..c.parked.len() {
                    tr { td { (span(i)) } td { (c.dead_lettered.get(i).copied().unwrap_or(0)) } td { (c.parked[i]) } }
                }
            }
        }
        p.note { "A dead letter counts in the hour it was written to its -dlq topic, once the worker has re-sent or parked it; a parked message in the hour it was parked (click its bar for those messages)." }
    }
}

/// The filter form shared by the groups and messages pages.
pub fn filters(action: &str, f: &super::FilterForm) -> Markup {
    html! {
        form method="get" action=(action) id="filters" {
            label { "topic " input name="topic" value=(f.topic.clone().unwrap_or_default()); }
            label { "state " select name="state" {
                @for s in ["parked", "redriven", "discarded", ""] {
                    option value=(s) selected[f.state.as_deref().unwrap_or("parked") == s] { @if s.is_empty() { "any" } @else { (s) } }
                }
            } }
            label { "since (RFC 3339) " input name="since" value=(f.since.clone().unwrap_or_default()); }
            label { "until " input name="until" value=(f.until.clone().unwrap_or_default()); }
            label { "request id " input name="request_id" value=(f.request_id.clone().unwrap_or_default()); }
            label { "key " input name="key" value=(f.key.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
    }
}

pub fn groups(groups: &[SignatureGroup], form: &super::FilterForm, csrf: &str) -> Markup {
    html! {
        (filters("/console/groups", form))
        @if groups.is_empty() { p id="no-groups" { "No parked messages match." } }
        @for g in groups {
            fieldset.group id=(format!("group-{}", g.signature)) {
                legend { b { (g.count) " × " } (g.source_topic) " · " (g.error_kind) }
                p { code.pattern { (g.pattern) } }
                p.note {
                    "signature " code { (g.signature) } " · first seen " (time(g.first_seen)) " · last seen " (time(g.last_seen))
                    " · reasons " (g.reasons.join(", "))
                    " · failed by " @if g.failed_by.is_empty() { "(not stated)" } @else { (g.failed_by.join(", ")) }
                }
                p { a href=(format!("/console/messages?signature={}&state={}", g.signature, form.state.clone().unwrap_or_else(|| "parked".into()))) { "the " (g.count) " messages" } }
                (redrive_form(csrf, &[("signature", g.signature.as_str())], g.count))
            }
        }
    }
}

/// Redrive (optionally as a canary) of a group or of one message.
pub fn redrive_form(csrf: &str, target: &[(&str, &str)], count: u64) -> Markup {
    html! {
        form.redrive method="post" action="/console/redrive" {
            input type="hidden" name="csrf" value=(csrf);
            @for (k, v) in target { input type="hidden" name=(k) value=(v); }
            label { "rate " input name="rate" value="10/s" size="6"; }
            label { input type="checkbox" name="canary" value="on" checked; " canary: first " input name="canary_size" value=(count.clamp(1, 3)) size="3"; }
            label { "stop after more than " input name="max_failures" value="0" size="3"; " failures" }
            label { "wait " input name="wait_seconds" value="30" size="3"; " s" }
            label { "reason " input name="reason" value="" size="24"; }
            button type="submit" class="redrive-button" { "Redrive " (count) }
        }
    }
}

pub fn messages(items: &[ParkedSummary], form: &super::FilterForm) -> Markup {
    html! {
        (filters("/console/messages", form))
        table id="messages" {
            tr { th { "id" } th { "state" } th { "topic" } th { "reason" } th { "kind" } th { "retries" } th { "parked at" } th { "key" } th { "error" } }
            @for m in items {
                tr {
                    td { a href=(format!("/console/messages/{}", m.id)) { (m.id) } }
                    td { (m.state.as_str()) } td { (m.source_topic) } td { (m.reason) } td { (m.error_kind) }
                    td { (m.retry_count) } td { (time(m.parked_at)) } td { (m.key.clone().unwrap_or_default()) }
                    td { (m.error_message.clone().unwrap_or_default()) }
                }
            }
        }
    }
}

pub fn message(m: &ParkedMessage, audit: &[AuditEntry], csrf: &str) -> Markup {
    let headers = mask::headers(&m.headers);
    let trace_id = m
        .headers
        .iter()
        .find(|h| h.key == "traceparent")
        .and_then(|h| h.value.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split('-').nth(1))
        .map(str::to_owned);
    html! {
        table id="metadata" {
            tr { th { "state" } td id="state" { (m.state.as_str()) } }
            tr { th { "source topic" } td { (m.source_topic) } }
            tr { th { "origin" } td { "partition " (m.original_partition.map_or("?".into(), |p| p.to_string())) ", offset " (m.original_offset.map_or("?".into(), |o| o.to_string())) } }
            tr { th { "dead letter" } td { (m.dlq_topic) "/" (m.dlq_partition) "@" (m.dlq_offset) } }
            tr { th { "key" } td { (m.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default()) } }
            tr { th { "request id" } td { (m.request_id.map(|r| r.to_string()).unwrap_or_default()) } }
            tr { th { "trace id" } td id="trace-id" { (trace_id.unwrap_or_else(|| "(none)".into())) } }
            tr { th { "signature" } td { a href=(format!("/console/groups?signature={}", m.signature())) { (m.signature()) } } }
            tr { th { "failed by" } td { (m.failed_by().unwrap_or_else(|| "(not stated)".into())) } }
        }
        h2 { "Retry history" }
        table id="history" {
            tr { th { "first failure" } td { (m.first_failure_at.map(time).unwrap_or_default()) } }
            tr { th { "last failure" } td { (m.last_failure_at.map(time).unwrap_or_default()) } }
            tr { th { "retries" } td { (m.retry_count) } }
            tr { th { "parked" } td { (time(m.parked_at)) " (" (m.reason) ", " (m.error_kind) ")" } }
            tr { th { "error" } td id="error" { (m.error_message.clone().unwrap_or_default()) } }
        }
        h2 { "Headers" }
        table id="headers" { @for (k, v) in &headers { tr { td { (k) } td { (v) } } } }
        h2 { "Payload" }
        pre id="payload" { (mask::payload(m.payload.as_deref())) }
        h2 { "Audit trail" }
        (audit_table(audit))
        @if m.state == reliable_messaging::parking::ParkedState::Parked {
            h2 { "Actions" }
            (redrive_form(csrf, &[("ids", m.id.to_string().as_str())], 1))
            form method="post" action="/console/discard" id="discard" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="id" value=(m.id);
                label { "reason " input name="reason" id="discard-reason" required size="40"; }
                button type="submit" id="discard-button" { "Discard" }
            }
        }
    }
}

pub fn audit_table(audit: &[AuditEntry]) -> Markup {
    html! {
        table id="audit" {
            tr { th { "at" } th { "message" } th { "action" } th { "actor" } th { "reason" } }
            @for a in audit {
                tr {
                    td { (time(a.at)) }
                    td { a href=(format!("/console/messages/{}", a.parked_message_id)) { (a.parked_message_id) } }
                    td { (a.action) } td.actor { (a.actor) } td { (a.reason.clone().unwrap_or_default()) }
                }
            }
        }
    }
}

pub fn redrive_result(report: &RedriveReport) -> Markup {
    html! {
        @match &report.stopped {
            Some(why) => { p.bad id="stopped" { "Stopped: " (why) } }
            None => { p.ok id="completed" { "Redrive ran to the end." } }
        }
        @if !report.canary.is_empty() {
            p { "Canary: " (report.canary.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) }
        }
        table id="results" {
            tr { th { "id" } th { "result" } th { "after" } th { "detail" } }
            @for r in &report.results {
                tr {
                    td { a href=(format!("/console/messages/{}", r.id)) { (r.id) } }
                    td.result { (r.outcome) }
                    td.after { (r.after.as_ref().map_or("", after_label)) }
                    td { (r.detail.clone().unwrap_or_default()) }
                }
            }
        }
        p { a href="/console/groups" { "Back to the signature groups" } }
    }
}

fn after_label(outcome: &reliable_messaging::parking::Outcome) -> &'static str {
    match outcome {
        reliable_messaging::parking::Outcome::Succeeded => "succeeded",
        reliable_messaging::parking::Outcome::Failed(_) => "failed again",
        reliable_messaging::parking::Outcome::Pending => "no outcome yet",
    }
}

pub fn error(detail: &str) -> Markup {
    html! { p.bad id="error" { (detail) } p { a href="/console" { "Back" } } }
}
