//! Wiring: build every part from [`Settings`], bind the public and the internal listener, serve
//! until told to stop.

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
use crate::client_budget::{self, ClientBudget};
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

/// A gateway bound to its ports, ready to serve: the public API on one, `/metrics` and the
/// probes on the other.
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    internal_port: u16,
    internal_listener: TcpListener,
    internal_router: Router,
    routes: Vec<ServedRoute>,
    internal_routes: Vec<ServedRoute>,
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
        let budget = ClientBudget::start(&settings.client_budget, Arc::clone(&state.metrics));
        let Routers { public: router, routes, internal: internal_router, internal_routes } =
            routers(state, readiness, deadline, budget);

        let (listener, port) = bind(&settings.addr).await?;
        let (internal_listener, internal_port) = bind(&settings.internal_addr).await?;
        Ok(Self {
            port,
            listener,
            router,
            internal_port,
            internal_listener,
            internal_router,
            routes,
            internal_routes,
            producer,
            http_limits: settings.http,
            migrations_stop,
        })
    }

    /// The public API's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/metrics` and the probes.
    pub fn internal_port(&self) -> u16 {
        self.internal_port
    }

    /// Every method and path the public listener serves (what `/openapi.json` documents).
    pub fn routes(&self) -> &[ServedRoute] {
        &self.routes
    }

    /// Every method and path the internal listener serves.
    pub fn internal_routes(&self) -> &[ServedRoute] {
        &self.internal_routes
    }

    /// Serves until `shutdown` is cancelled, lets requests in flight finish (each one waits
    /// for its broker acknowledgement), then flushes the producer. Slow and excess clients
    /// are cut off as [`crate::http_server`] describes.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(port = self.port, internal_port = self.internal_port, "gateway listening");
        // Limits per listener: a flood of public connections cannot take the probes' sockets.
        let (served, internal) = tokio::join!(
            crate::http_server::serve(self.listener, self.router, self.http_limits, shutdown.clone()),
            crate::http_server::serve(self.internal_listener, self.internal_router, self.http_limits, shutdown),
        );
        let served = served.and(internal);
        self.migrations_stop.cancel();
        let producer = self.producer;
        let _ = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT)).await;
        tracing::info!("gateway stopped");
        served
    }
}

/// The public router (sign-up, status, the API document; held to the per-client budget) and
/// the internal one (`/metrics` and the probes), each with the routes it serves.
fn routers(state: AppState, readiness: Readiness, deadline: Deadline, budget: Option<Arc<ClientBudget>>) -> Routers {
    let (public, routes) = RouteTable::new()
        .post("/registrations", routes::register)
        .get("/registrations/{request_id}", routes::registration_status)
        .delete("/registrations/{request_id}", routes::withdraw)
        .get("/openapi.json", routes::openapi)
        .with_state(state.clone())
        .into_parts();
    let (internal, internal_routes) = RouteTable::new()
        .get("/metrics", routes::metrics)
        .with_state(state)
        .merge(health::router(readiness), &[(Method::GET, "/healthz"), (Method::GET, "/readyz")])
        .into_parts();
    let public = public.layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Inside the request limit: a request over its budget is answered before anything is read.
    let public = match budget {
        Some(budget) => public.layer(middleware::from_fn_with_state(budget, client_budget::enforce)),
        None => public,
    };
    Routers {
        public: layered(public, deadline.clone()),
        routes,
        internal: layered(internal, deadline),
        internal_routes,
    }
}

struct Routers {
    public: Router,
    routes: Vec<ServedRoute>,
    internal: Router,
    internal_routes: Vec<ServedRoute>,
}

/// What every route of both listeners gets: the request limit, panics and bare errors as
/// problem documents, and a span per request.
fn layered(router: Router, deadline: Deadline) -> Router {
    router
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
        ))
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

async fn bind(addr: &str) -> Result<(TcpListener, u16), StartupError> {
    let bind_error = |source| StartupError::Bind { addr: addr.to_owned(), source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    Ok((listener, port))
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
