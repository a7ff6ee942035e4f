//! A router that keeps a list of the routes it was given, so that a test can hold the list
//! against the OpenAPI document (`api::openapi`): a route added here and not documented
//! there fails that test instead of drifting silently.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;

/// Routes by method and path, and the router that serves them.
pub struct Routes<S> {
    router: Router<S>,
    table: Vec<(Method, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, MethodFilter::GET, path, handler)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, MethodFilter::POST, path, handler)
    }

    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PUT, MethodFilter::PUT, path, handler)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    fn add<H: Handler<T, S>, T: 'static>(
        mut self,
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Self {
        // axum merges the methods of one path given in several calls.
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }

    /// Every (method, path pattern) routed, in the order given.
    pub fn table(&self) -> &[(Method, &'static str)] {
        &self.table
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}
