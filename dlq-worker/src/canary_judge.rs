//! What became of a redriven message, for a canary redrive: failures from the parking lot and
//! `request_status` (the library's `StatusJudge`), success from the service that owns the
//! request, asked at `CANARY_STATUS_URL` (the gateway's `GET /registrations/{request_id}`,
//! whose `completed` is backed by the stored user row).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use reliable_messaging::parking::{Outcome, OutcomeJudge, ParkedMessage, StatusJudge};
use serde::Deserialize;

pub struct StatusUrlJudge {
    failures: StatusJudge,
    client: reqwest::Client,
    /// With `{request_id}` where the id goes.
    template: String,
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    reason: Option<String>,
    updated_at: Option<DateTime<Utc>>,
}

impl StatusUrlJudge {
    pub fn new(failures: StatusJudge, template: String) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Self { failures, client, template })
    }

    async fn judge(&self, message: &ParkedMessage, redriven_at: DateTime<Utc>) -> Outcome {
        let failure = self.failures.failure(message, redriven_at).await;
        if failure != Outcome::Pending {
            return failure;
        }
        // Without a request id nothing can confirm success: the canary waits, then stops.
        let Some(request_id) = message.request_id else { return Outcome::Pending };
        let url = self.template.replace("{request_id}", &request_id.to_string());
        let body = match self.client.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.json::<StatusBody>().await,
            Ok(r) => {
                tracing::warn!(status = %r.status(), %request_id, "canary status URL answered no status");
                return Outcome::Pending;
            }
            Err(e) => Err(e),
        };
        match body {
            Ok(b) if b.status == "completed" => Outcome::Succeeded,
            // A status from before the redrive is the old failure, not a new one.
            Ok(b) if b.status == "rejected" && b.updated_at.is_none_or(|t| t > redriven_at) => {
                Outcome::Failed(format!("rejected: {}", b.reason.unwrap_or_default()))
            }
            Ok(_) => Outcome::Pending,
            Err(e) => {
                tracing::warn!(error = %e, %request_id, "canary status URL unreachable");
                Outcome::Pending
            }
        }
    }
}

impl OutcomeJudge for StatusUrlJudge {
    fn outcome<'a>(&'a self, message: &'a ParkedMessage, redriven_at: DateTime<Utc>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.judge(message, redriven_at))
    }
}
