//! A router that remembers which method and path pairs it serves.
//!
//! axum cannot list its routes, so every route is added through [`RouteTable`], which keeps
//! the list; the OpenAPI test compares it with the document in both directions.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{delete, get, post};
use axum::Router;

/// One served route, path in OpenAPI template syntax (`/registrations/{request_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServedRoute {
    pub method: String,
    pub path: String,
}

pub struct RouteTable<S> {
    router: Router<S>,
    served: Vec<ServedRoute>,
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S> {
    pub fn new() -> Self {
        Self { router: Router::new(), served: Vec::new() }
    }

    pub fn get<H, T>(mut self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.router = self.router.route(path, get(handler));
        self.record(Method::GET, path)
    }

    pub fn post<H, T>(mut self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.router = self.router.route(path, post(handler));
        self.record(Method::POST, path)
    }

    pub fn delete<H, T>(mut self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.router = self.router.route(path, delete(handler));
        self.record(Method::DELETE, path)
    }

    /// Provides the state; the result can take routers built elsewhere.
    pub fn with_state(self, state: S) -> RouteTable<()> {
        RouteTable { router: self.router.with_state(state), served: self.served }
    }

    fn record(mut self, method: Method, path: &str) -> Self {
        self.served.push(ServedRoute { method: method.to_string(), path: path.to_owned() });
        self
    }
}

impl<S: Clone + Send + Sync + 'static> Default for RouteTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteTable<()> {
    /// Merges a router built elsewhere (e.g. the shared health router), declaring the routes
    /// it serves.
    pub fn merge(mut self, router: Router, serves: &[(Method, &str)]) -> Self {
        self.router = self.router.merge(router);
        for (method, path) in serves {
            self = self.record(method.clone(), path);
        }
        self
    }

    pub fn into_parts(self) -> (Router, Vec<ServedRoute>) {
        (self.router, self.served)
    }
}
