//! The overall time limit of a request (`REQUEST_TIMEOUT_MS`), and the point past which it no
//! longer applies: once a registration's record is handed to the producer, cutting the
//! request would answer "not accepted" for a record the broker may store (in a flood, 23 of
//! 170 such answers were stored). From that point the publish timeout alone bounds the
//! request, and its own 503 says "may have been recorded", with the request id and `Location`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::metrics::Metrics;
use crate::problem::{types, Problem};

/// Set by a handler just before it hands work to something it cannot take back (the
/// producer). A request extension, put there by [`deadline`].
#[derive(Clone, Debug, Default)]
pub struct Handover(Arc<AtomicBool>);

impl Handover {
    /// From here on the request is not cut by the overall limit.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What [`deadline`] needs: the limit, and the metrics that count the requests it let run
/// past it.
#[derive(Clone)]
pub struct Deadline {
    pub limit: Duration,
    pub metrics: Arc<Metrics>,
}

/// Bounds every request by `limit`, except one whose [`Handover`] is marked when the limit
/// passes: that one finishes (its publish timeout bounds it). A request cut here is answered
/// 503 "not accepted", which is true: nothing of it reached the producer. The handler runs in
/// this task, so once the flag is read unset and the handler dropped, it cannot mark it later.
pub async fn deadline(State(deadline): State<Deadline>, mut request: Request, next: Next) -> Response {
    let handover = Handover::default();
    request.extensions_mut().insert(handover.clone());
    let mut handling = std::pin::pin!(next.run(request));
    match tokio::time::timeout(deadline.limit, &mut handling).await {
        Ok(response) => response,
        Err(_) if handover.marked() => {
            deadline.metrics.ran_past_deadline();
            handling.await
        }
        Err(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, types::TIMED_OUT, "Request timed out")
            .detail(format!(
                "the request took longer than {} ms and was abandoned before its registration reached the \
                 message broker; it was not accepted",
                deadline.limit.as_millis()
            ))
            .retry_after(Duration::from_secs(5))
            .into_response(),
    }
}
