//! The emperor's HTTP API (axum) and dashboard, served on `--api` (default `127.0.0.1:9191`). The reference,
//! with an example of every call, is `docs/api.md`.
//!
//! Reads are snapshots published by the vassal supervisors ([`Registry`]); control calls only queue a command
//! for a supervisor, so nothing here waits on a vassal. Every answer is JSON, errors included
//! (`{"error": "..."}` with 400, 401, 403, 404 or 409), because the callers are scripts.
//!
//! Who may do what: reads need no token from loopback clients; from any other address every `/api` and
//! `/metrics` call needs the bearer token, as do control calls from anywhere. A control call whose `Origin`
//! is not this server is refused, so a page on another site cannot drive the API through a browser.

mod metrics;
mod reads;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Notify;

use crate::emperor::registry::{Command, ControlError, Registry};

type Shared = State<Arc<Registry>>;

/// Serves the API until `shutdown` is notified.
pub async fn serve(listener: tokio::net::TcpListener, registry: Arc<Registry>, shutdown: Arc<Notify>) {
    let service = router(registry).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service).with_graceful_shutdown(async move { shutdown.notified().await }).await;
    if let Err(err) = result {
        tracing::error!("API server stopped: {err}");
    }
}

/// A control action: its name in `POST /api/vassals/{name}/{action}`, and the command it queues.
type Action = (&'static str, fn() -> Command);

const ACTIONS: [Action; 5] = [
    ("reload", || Command::Reload),
    ("chain-reload", || Command::ChainReload),
    ("stop", || Command::Stop),
    ("start", || Command::Start),
    ("retry", || Command::Retry),
];

pub fn router(registry: Arc<Registry>) -> Router {
    let web_root = Arc::new(web::WebRoot::from_env());
    let index_root = web_root.clone();
    Router::new()
        .route(
            "/",
            get(move || async move {
                web::serve(&index_root, "")
                    .unwrap_or_else(|| error(StatusCode::NOT_FOUND, "the dashboard is not built into this binary"))
            }),
        )
        .route("/api/emperor", get(reads::emperor))
        .route("/api/vassals", get(reads::list))
        .route("/api/vassals/{name}", get(reads::one))
        .route("/api/vassals/{name}/history", get(reads::history))
        .route("/api/vassals/{name}/logs", get(reads::logs))
        .route("/api/vassals/{name}/logs/stream", get(reads::log_stream))
        .route("/api/vassals/{name}/events", get(reads::events))
        .route("/api/vassals/{name}/{action}", post(control))
        .route("/metrics", get(metrics::metrics))
        .fallback(move |uri: Uri| async move { fallback(&web_root, uri) })
        .layer(axum::middleware::from_fn_with_state(registry.clone(), authorize))
        .with_state(registry)
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(crate) fn unknown(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no vassal named '{name}'"))
}

/// Anything that is not an API route: a dashboard file, or a JSON 404.
fn fallback(web_root: &web::WebRoot, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if !path.starts_with("api/") {
        if let Some(response) = web::serve(web_root, path) {
            return response;
        }
    }
    error(StatusCode::NOT_FOUND, "no such API endpoint (see docs/api.md)")
}

/// The access rules of the module documentation, applied before any handler runs.
async fn authorize(State(registry): Shared, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let is_data = path.starts_with("/api/") || path == "/metrics";
    let is_control = request.method() == axum::http::Method::POST;
    // Fails closed: a request whose peer is unknown (no `ConnectInfo`, e.g. a router served without
    // `into_make_service_with_connect_info`) is treated as remote and needs the token.
    let from_loopback =
        request.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
    if is_control && !same_origin(request.headers()) {
        return error(StatusCode::FORBIDDEN, "cross-origin control request refused");
    }
    if (is_control || (is_data && !from_loopback)) && !has_token(&registry, request.headers()) {
        let message = if request.headers().contains_key(header::AUTHORIZATION) {
            "the token was refused: it is not the one in the emperor's token file (token_file in /api/emperor)"
        } else {
            "this call needs Authorization: Bearer TOKEN (see token_file in /api/emperor, or the emperor's log)"
        };
        let mut response = error(StatusCode::UNAUTHORIZED, message);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

fn has_token(registry: &Registry, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| registry.token_matches(token.trim()))
}

/// No `Origin` (curl, scripts), or an `Origin` naming the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

async fn control(State(registry): Shared, Path((name, action)): Path<(String, String)>) -> Response {
    let Some((action, command)) = ACTIONS.iter().find(|(known, _)| *known == action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no action '{action}' (use reload, chain-reload, stop, start or retry)"),
        );
    };
    match registry.send(&name, command()) {
        Ok(()) => {
            (StatusCode::ACCEPTED, Json(json!({ "vassal": name, "action": action, "accepted": true }))).into_response()
        }
        Err(ControlError::UnknownVassal(_)) => unknown(&name),
        Err(err @ ControlError::Gone(_)) => error(StatusCode::CONFLICT, err.to_string()),
    }
}

#[cfg(test)]
mod router_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_match_the_host() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers), "scripts send no Origin");
        headers.insert(header::HOST, "127.0.0.1:9191".parse().expect("value"));
        headers.insert(header::ORIGIN, "http://127.0.0.1:9191".parse().expect("value"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://evil.example".parse().expect("value"));
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, "null".parse().expect("value"));
        assert!(!same_origin(&headers));
    }
}
