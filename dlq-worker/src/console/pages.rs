//! The console's pages, server-rendered with maud: every value interpolated with `(..)` is
//! HTML-escaped, so a sign-up name `<script>` shows as text. No script runs on any page.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use reliable_messaging::parking::{AuditEntry, ParkedMessage, ParkedSummary, ParkingCounts, SignatureGroup};

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
    pub waiting: usize,
    pub next_due: Option<DateTime<Utc>>,
    pub in_flight: usize,
    pub counts: ParkingCounts,
    pub groups: usize,
}

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
        h2 { "Dead-letter queue" }
        p id="dlq" {
            (o.waiting) " waiting, " (o.in_flight) " in flight; next due: "
            @match o.next_due { Some(t) => { (time(t)) } None => { "none" } }
        }
        h2 { "Parking lot" }
        table id="counts" {
            tr { @for (state, _) in &o.counts.by_state { th { (state) } } }
            tr { @for (_, n) in &o.counts.by_state { td { (n) } } }
        }
        p { a href="/console/groups" { (o.groups) " signature groups of parked messages" } }
        h3 { "Parked per hour, last " (o.counts.parked_per_hour.len()) " hours" }
        (chart(&o.counts.parked_per_hour))
        p.note { "Consumer lag per partition is on each service's /metrics (kafka_consumer lag gauges); the worker does not fetch it." }
    }
}

/// Bars of `values`, oldest first, as inline SVG.
fn chart(values: &[u64]) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let (w, h, bar) = (values.len() * 20 + 40, 120u64, 16usize);
    html! {
        svg id="chart" width=(w) height=(h + 30) role="img" aria-label="parked messages per hour" {
            @for (i, v) in values.iter().enumerate() {
                @let height = v * h / max;
                rect x=(30 + i * 20) y=(h - height + 5) width=(bar) height=(height) fill="#b91c1c" {
                    title { (v) " parked" }
                }
            }
            line x1="28" y1=(h + 5) x2=(w) y2=(h + 5) stroke="#555" {}
            text x="0" y="15" font-size="11" { (max) }
            text x="0" y=(h + 25) font-size="11" { "-" (values.len()) "h" }
            text x=(w - 30) y=(h + 25) font-size="11" { "now" }
        }
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
