//! The HTTP/1.1 edge: accepts connections and serves the router on them, within limits that
//! a slow or strange client cannot stretch.
//!
//! `axum::serve` waits for a request's headers and body as long as the client likes: a
//! client sending its headers one byte a second held a connection for minutes, and 2,000 of
//! them held 46 MiB. Here ([`HttpLimits`], from the environment):
//!
//! - **headers** must be complete within `HTTP_HEADER_READ_TIMEOUT_MS` of the moment the
//!   gateway starts waiting for a request (a new connection, or a kept-alive one between
//!   requests); past it the connection is **closed without an answer** (hyper sends none, and
//!   there is no request yet to answer). This also bounds how long an idle connection stays.
//! - **the body** must be complete within `HTTP_BODY_READ_TIMEOUT_MS` of the headers; past
//!   it the request is answered **`408`** (a problem document with `Connection: close`) and
//!   the connection closed. Nothing is published for such a request.
//! - **at most `HTTP_MAX_CONNECTIONS`** connections are open at once; a connection beyond it
//!   is **closed as soon as it is accepted** (the client sees the connection end without an
//!   answer and can retry), so a flood of them costs a socket each, for an instant.
//!
//! The request time limit of the router (`REQUEST_TIMEOUT_MS`, a 503) still bounds the
//! whole request until its record is with the producer ([`crate::request_deadline`]); the body limit is shorter by default so that a slow client is told 408,
//! its own fault, rather than 503.
//!
//! The gateway serves two listeners this way, the public API and the internal one (`/metrics`,
//! probes), each with its own connection limit. Every request carries its connection's peer
//! address (`ConnectInfo`), which the per-client budget reads ([`crate::client_budget`]).
//!
//! Shutdown stops accepting, lets every request in flight finish (each is bounded by the
//! limits above), and closes idle connections.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::configuration::HttpLimits;
use crate::problem::{types, Problem};

/// How long the accept loop pauses after an error that is not about one connection (out of
/// file descriptors, say): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The body of a request took longer than its limit to arrive.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .limit.as_millis())]
pub struct BodyReadTimedOut {
    pub limit: Duration,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits for the
/// connections still open to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Refusals are logged once per burst, not once per connection: a flood must not become
    // a flood of log lines.
    let mut refused_in_burst: u64 = 0;

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if !is_connection_error(&error) {
                        tracing::error!(%error, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            if refused_in_burst == 0 {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached: closing new connections until some end"
                );
            }
            refused_in_burst += 1;
            drop(stream);
            continue;
        };
        if refused_in_burst > 0 {
            tracing::info!(refused = refused_in_burst, "accepting connections again after the limit was reached");
            refused_in_burst = 0;
        }

        let service = EdgeService { router: router.clone(), body_read_timeout: limits.body_read_timeout, peer };
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), hyper::service::service_fn(move |r| service.call(r))));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client going away or timing out is routine at the edge, not an error of ours.
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection that went away before it was accepted: not worth a pause.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(error.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
}

/// The router behind the body deadline.
#[derive(Clone)]
struct EdgeService {
    router: Router,
    body_read_timeout: Duration,
    /// The connection's peer, given to the router as `ConnectInfo` (the per-client budget).
    peer: SocketAddr,
}

impl EdgeService {
    fn call(
        &self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static {
        let mut router = self.router.clone();
        let limit = self.body_read_timeout;
        let timed_out = Arc::new(AtomicBool::new(false));
        let mut request: Request = request.map(|body| {
            if body.is_end_stream() {
                // No body to wait for (most GETs): no timer either.
                Body::new(body)
            } else {
                Body::new(DeadlineBody::new(body, limit, Arc::clone(&timed_out)))
            }
        });
        request.extensions_mut().insert(ConnectInfo(self.peer));
        async move {
            // `Router` is always ready: `call` without `poll_ready` is what axum itself does.
            let response = router.call(request).await?;
            // Whatever the handler made of the failed read (a 400 "malformed"), the truth
            // is that the client was too slow.
            if timed_out.load(Ordering::Acquire) {
                return Ok(body_timed_out(limit));
            }
            Ok(response)
        }
    }
}

fn body_timed_out(limit: Duration) -> Response {
    let mut response =
        Problem::new(StatusCode::REQUEST_TIMEOUT, types::BODY_TIMED_OUT, "Request body not received in time")
            .detail(format!(
                "the whole body must arrive within {} ms of the headers; the request was not processed",
                limit.as_millis()
            ))
            .into_response();
    // RFC 9110 §15.5.9: the rest of the body may still be on its way; the connection cannot
    // be reused.
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once `limit` has passed since the headers, however slowly or
/// steadily its bytes trickle in.
struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
    timed_out: Arc<AtomicBool>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, limit: Duration, timed_out: Arc<AtomicBool>) -> Self {
        Self { inner, deadline: Box::pin(tokio::time::sleep(limit)), limit, timed_out }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        // The deadline first: a client that keeps sending must still finish in time.
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(BodyReadTimedOut { limit: this.limit }))));
        }
        Pin::new(&mut this.inner).poll_frame(cx).map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use http_body_util::{BodyExt, StreamBody};

    fn trickle(every: Duration) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let stream = futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), ()))
        });
        StreamBody::new(Box::pin(stream))
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_the_deadline_fails_and_says_so() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = DeadlineBody::new(trickle(Duration::from_millis(5)), Duration::from_millis(100), Arc::clone(&flag));
        let error = tokio::time::timeout(Duration::from_secs(5), body.collect())
            .await
            .expect("the deadline ends the body")
            .expect_err("a timed-out body is an error");
        assert!(error.is::<BodyReadTimedOut>(), "{error}");
        assert!(flag.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn a_body_complete_in_time_is_untouched() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = DeadlineBody::new(Body::from("complete"), Duration::from_secs(5), Arc::clone(&flag));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"complete");
        assert!(!flag.load(Ordering::Acquire));
    }
}
