//! The per-client budget of `POST /registrations`: a token bucket (GCRA, `governor`) per
//! client address, so that one client cannot take the whole hashing capacity. A request
//! over its client's budget is answered `429` with `Retry-After` and a problem document
//! before anything of it is read or hashed. The 503 of a full hashing queue stays for
//! overload from many clients.
//!
//! Memory is bounded: a bucket is dropped by the sweep once it is full again (its state is
//! then that of a new client), so only clients seen within the last refill time plus one
//! sweep interval are held; and never more than `CLIENT_RATE_MAX_CLIENTS`: past that, new
//! requests share one overflow bucket until the sweep makes room (an attack from that many
//! addresses at once is "many clients", which the hashing queue answers anyway).

pub mod client_address;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::configuration::ClientBudgetSettings;
use crate::metrics::{Metrics, RejectReason};
use crate::problem::{types, Problem};
use client_address::{budget_key, ClientAddressing};

/// How often full buckets are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub struct ClientBudget {
    clients: DefaultKeyedRateLimiter<IpAddr>,
    /// Shared by every new client while `max_clients` are tracked.
    overflow: DefaultDirectRateLimiter,
    clock: DefaultClock,
    addressing: ClientAddressing,
    max_clients: usize,
    metrics: Arc<Metrics>,
}

impl ClientBudget {
    /// The budget `settings` describe; `None` when it is switched off. Sweeps in the
    /// background while the returned budget lives.
    pub fn start(settings: &ClientBudgetSettings, metrics: Arc<Metrics>) -> Option<Arc<Self>> {
        if !settings.enabled {
            return None;
        }
        let quota = quota(settings);
        let budget = Arc::new(Self {
            clients: RateLimiter::keyed(quota),
            overflow: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            addressing: settings.addressing.clone(),
            max_clients: settings.max_clients,
            metrics,
        });
        spawn_sweep(Arc::downgrade(&budget));
        Some(budget)
    }

    /// `Ok` while the client behind a request from `peer` has budget left; else how long it
    /// should wait.
    pub fn check(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> Result<(), Duration> {
        let key = budget_key(self.addressing.client(peer, headers));
        let verdict =
            if self.clients.len() < self.max_clients { self.clients.check_key(&key) } else { self.overflow.check() };
        verdict.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    fn sweep(&self) {
        self.clients.retain_recent();
        self.clients.shrink_to_fit();
        self.metrics.budget_clients(self.clients.len());
    }
}

fn quota(settings: &ClientBudgetSettings) -> Quota {
    let per_minute = settings.per_minute.max(1);
    let burst = NonZeroU32::new(settings.burst.max(1)).expect("at least 1");
    Quota::with_period(Duration::from_secs(60) / per_minute).expect("a period above zero").allow_burst(burst)
}

fn spawn_sweep(budget: Weak<ClientBudget>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let Some(budget) = budget.upgrade() else {
                return;
            };
            budget.sweep();
        }
    });
}

/// Middleware of the public router: holds `POST /registrations` to its client's budget. The
/// peer address comes from the connection ([`ConnectInfo`], set by `http_server`); a request
/// without one (a router called in-process) is not limited.
pub async fn enforce(State(budget): State<Arc<ClientBudget>>, request: Request, next: Next) -> Response {
    let limited = request.method() == Method::POST && request.uri().path() == "/registrations";
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match peer {
        Some(peer) if limited => match budget.check(peer, request.headers()) {
            Ok(()) => next.run(request).await,
            Err(wait) => {
                budget.metrics.rejected(RejectReason::RateLimited);
                too_many_requests(wait)
            }
        },
        _ => next.run(request).await,
    }
}

fn too_many_requests(wait: Duration) -> Response {
    // Whole seconds, rounded up: a client retrying at Retry-After finds a token.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Problem::new(StatusCode::TOO_MANY_REQUESTS, types::RATE_LIMITED, "Too many sign-ups from this client")
        .detail(format!(
            "this client has used its sign-up budget; the registration was not accepted. Retry in {} s.",
            seconds.max(1)
        ))
        .retry_after(Duration::from_secs(seconds.max(1)))
        .instance("/registrations")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn settings(burst: u32, max_clients: usize) -> ClientBudgetSettings {
        ClientBudgetSettings { enabled: true, per_minute: 60, burst, max_clients, ..ClientBudgetSettings::default() }
    }

    #[tokio::test]
    async fn a_client_gets_its_burst_then_waits_while_another_is_served() {
        let budget = ClientBudget::start(&settings(3, 100), Arc::new(Metrics::new())).unwrap();
        let (flooder, other) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(budget.check(flooder, &HeaderMap::new()), Ok(()));
        }
        let wait = budget.check(flooder, &HeaderMap::new()).expect_err("over budget");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(budget.check(other, &HeaderMap::new()), Ok(()));
    }

    #[tokio::test]
    async fn past_max_clients_new_clients_share_one_bucket() {
        let budget = ClientBudget::start(&settings(1, 2), Arc::new(Metrics::new())).unwrap();
        let ip = |i: u8| IpAddr::from([192, 0, 2, i]);
        assert!(budget.check(ip(1), &HeaderMap::new()).is_ok() && budget.check(ip(2), &HeaderMap::new()).is_ok());
        assert!(budget.check(ip(3), &HeaderMap::new()).is_ok(), "the overflow bucket's one token");
        assert!(budget.check(ip(4), &HeaderMap::new()).is_err(), "shared with client 3");
        assert_eq!(budget.clients.len(), 2, "memory stays bounded");
    }

    #[test]
    fn switched_off_there_is_no_budget() {
        let off = ClientBudgetSettings { enabled: false, ..ClientBudgetSettings::default() };
        assert!(ClientBudget::start(&off, Arc::new(Metrics::new())).is_none());
    }
}
