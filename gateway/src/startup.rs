//! Wiring: build every part from [`Settings`], bind the listener, serve until told to stop.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware;
use axum::response::Response;
use axum::Router;
use reliable_messaging::producer::DurableProducer;
use reliable_messaging::producer::PublishError;
use reliable_messaging::service::endpoints::health::{self, BrokerCheck, Readiness};
use reliable_messaging::service::runtime::migrations::SchemaStatus;
use reliable_messaging::service::{prepare_database_as, ServiceError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{MakeSpan as _, TraceLayer};

use crate::app_state::AppState;
use crate::configuration::{HttpLimits, Settings};
use crate::idempotency::IdempotencyClaims;
use crate::json_body::MAX_BODY_BYTES;
use crate::metrics::Metrics;
use crate::password_hashing::{InvalidParams, PasswordHasher};
use crate::problem;
use crate::request_deadline::{self, Deadline};
use crate::request_id::RequestIds;
use crate::routes::{self, RouteTable, ServedRoute};

/// How long shutdown waits for records still in the producer's queue.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Producer(#[from] PublishError),
    #[error(transparent)]
    Database(#[from] ServiceError),
    #[error(transparent)]
    Hashing(#[from] InvalidParams),
}

/// A gateway bound to its port, ready to serve.
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    routes: Vec<ServedRoute>,
    producer: DurableProducer,
    http_limits: HttpLimits,
    /// Stops the background migrations when the gateway stops before they are applied.
    migrations_stop: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let producer = DurableProducer::new(&settings.kafka, settings.publish_timeout)?;
        // A 202 is as durable as the topic behind it: warn when it is replicated less than the
        // topic policy asks (the registration-service declares it; this only checks).
        reliable_messaging::kafka::topics::spawn_durability_check(
            settings.kafka.clone(),
            vec![settings.registrations_topic.clone()],
            settings.topic_policy.clone(),
        );
        // Lazy: the gateway starts, and accepts registrations, while the database is down;
        // only the status route needs it, and it waits at most the acquire timeout.
        let db = settings.database.connect_lazy()?;
        let migrations_stop = CancellationToken::new();
        spawn_migrations(db.clone(), settings.database.connect_migrator_lazy()?, migrations_stop.clone());

        let metrics = Arc::new(Metrics::new());
        let state = AppState {
            producer: producer.clone(),
            registrations_topic: Arc::from(settings.registrations_topic.as_str()),
            publish_timeout: settings.publish_timeout,
            hasher: Arc::new(PasswordHasher::new(&settings.hashing)?.with_timings(metrics.stages.clone())),
            request_ids: RequestIds::new(settings.request_id_secret.clone()),
            secret: settings.request_id_secret.clone(),
            idempotency: IdempotencyClaims::new(db.clone(), settings.request_id_secret.clone(), settings.idempotency),
            db,
            metrics,
        };
        spawn_idempotency_sweep(Arc::downgrade(&state.idempotency));
        // Not gated on the schema: accepting a sign-up needs only the broker (Idempotency-Key
        // claims fall back to this instance's map until `idempotency_keys` exists), and a
        // gateway held out of its load balancer while the database is down would refuse
        // sign-ups the system could take.
        let readiness = Readiness::default().with(BrokerCheck(producer.clone()));
        let deadline = Deadline { limit: settings.request_timeout, metrics: Arc::clone(&state.metrics) };
        let (router, routes) = router(state, readiness, deadline);

        let listener = TcpListener::bind(&settings.addr)
            .await
            .map_err(|source| StartupError::Bind { addr: settings.addr.clone(), source })?;
        let port = listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.addr, source })?.port();
        Ok(Self { port, listener, router, routes, producer, http_limits: settings.http, migrations_stop })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every method and path the router serves.
    pub fn routes(&self) -> &[ServedRoute] {
        &self.routes
    }

    /// Serves until `shutdown` is cancelled, lets requests in flight finish (each one waits
    /// for its broker acknowledgement), then flushes the producer. Slow and excess clients
    /// are cut off as [`crate::http_server`] describes.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(port = self.port, "gateway listening");
        let served = crate::http_server::serve(self.listener, self.router, self.http_limits, shutdown).await;
        self.migrations_stop.cancel();
        let producer = self.producer;
        let _ = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT)).await;
        tracing::info!("gateway stopped");
        served
    }
}

fn router(state: AppState, readiness: Readiness, deadline: Deadline) -> (Router, Vec<ServedRoute>) {
    let (router, routes) = RouteTable::new()
        .post("/registrations", routes::register)
        .get("/registrations/{request_id}", routes::registration_status)
        .delete("/registrations/{request_id}", routes::withdraw)
        .get("/metrics", routes::metrics)
        .get("/openapi.json", routes::openapi)
        .with_state(state)
        .merge(health::router(readiness), &[(Method::GET, "/healthz"), (Method::GET, "/readyz")])
        .into_parts();
    let router = router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(deadline, request_deadline::deadline))
        .layer(CatchPanicLayer::custom(problem::from_panic))
        .layer(middleware::from_fn(problem::ensure_problem_body))
        // Default spans hold method, URI and version; never headers or bodies. With tracing
        // on, the request span is the server span of the caller's trace (W3C `traceparent`),
        // or starts one.
        .layer(TraceLayer::new_for_http().make_span_with(http_span).on_response(
            |response: &Response, _latency: Duration, span: &tracing::Span| {
                span.record("http.response.status_code", response.status().as_u16());
            },
        ));
    (router, routes)
}

fn http_span(request: &Request) -> tracing::Span {
    if !reliable_messaging::kafka::trace_context::enabled() {
        return tower_http::trace::DefaultMakeSpan::new().make_span(request);
    }
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str());
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    reliable_messaging::kafka::trace_context::set_parent_from_pairs(
        &span,
        request.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    span
}

/// The gateway prepares the database the way every service does
/// ([`prepare_database`]), but in the background: it must start, and accept sign-ups, while
/// the database is down. Until the migrations are applied the status route answers 503 and
/// Idempotency-Key claims are decided by this instance's map.
fn spawn_migrations(db: sqlx::MySqlPool, owner: Option<sqlx::MySqlPool>, stop: CancellationToken) {
    tokio::spawn(async move {
        // The schema is not a readiness condition of the gateway (see `build`): nobody reads it.
        let schema = SchemaStatus::default();
        let migrator = signup_schema::migrator();
        let grants = crate::database_grants::GRANTS;
        if let Err(error) = prepare_database_as(&db, owner, grants, Some(migrator), false, &schema, &stop).await {
            tracing::error!(error = %error, "the database cannot be prepared; the status route stays unavailable");
        }
    });
}

/// How often expired Idempotency-Key claims are deleted. Expiry itself does not wait for the
/// sweep (an expired claim is taken over by the next request); the sweep only bounds the
/// table's size.
const IDEMPOTENCY_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Sweeps expired claims while the gateway that owns them lives (the task holds only a weak
/// reference, so it ends with the application). Several instances sweeping is harmless.
fn spawn_idempotency_sweep(claims: std::sync::Weak<IdempotencyClaims>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(IDEMPOTENCY_SWEEP_EVERY).await;
            let Some(claims) = claims.upgrade() else {
                return;
            };
            match claims.shared().sweep_expired().await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "expired Idempotency-Key claims swept"),
                Err(error) => tracing::warn!(%error, "sweeping expired Idempotency-Key claims failed"),
            }
        }
    });
}
