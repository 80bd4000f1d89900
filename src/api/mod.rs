//! The emperor's HTTP API (axum), served on `--api` (default `127.0.0.1:9191`).
//!
//! Reads are snapshots published by the vassal supervisors ([`Registry`]); control calls only queue a command
//! for a supervisor, so nothing here waits on a vassal. Every answer is JSON, errors included
//! (`{"error": "..."}` with 400, 401 or 404), because the callers are scripts.
//!
//! - `GET /api/vassals` → `{"vassals": [VASSAL...]}`
//! - `GET /api/vassals/{name}` → `VASSAL` (see [`crate::emperor::registry::VassalStatus`] for the fields)
//! - `GET /api/vassals/{name}/logs?tail=N` → `{"vassal", "lines": [{"seq","time","stream","pid","text"}]}`
//! - `GET /api/vassals/{name}/events` → `{"vassal", "events": [{"time","kind","message"}]}`
//! - `POST /api/vassals/{name}/{reload,stop,start,retry}` with `Authorization: Bearer TOKEN` → 202

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Notify;

mod web;

use axum::http::Uri;

use crate::emperor::logs::{LogLine, RING_LINES};
use crate::emperor::registry::{Command, ControlError, Registry};

/// Lines returned by `/logs` when `tail` is not given.
pub const DEFAULT_TAIL: usize = 100;

type Shared = State<Arc<Registry>>;

/// Serves the API until `shutdown` is notified.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: Arc<Notify>,
) {
    let result = axum::serve(listener, router(registry))
        .with_graceful_shutdown(async move { shutdown.notified().await })
        .await;
    if let Err(err) = result {
        tracing::error!("API server stopped: {err}");
    }
}

pub fn router(registry: Arc<Registry>) -> Router {
    let web_root = Arc::new(web::WebRoot::from_env());
    let index_root = web_root.clone();
    Router::new()
        .route("/", get(move || async move { web::serve(&index_root, "").unwrap_or_else(|| error(StatusCode::NOT_FOUND, "the dashboard is not built into this binary")) }))
        .route("/api/vassals", get(list))
        .route("/api/vassals/{name}", get(one))
        .route("/api/vassals/{name}/logs", get(logs))
        .route("/api/vassals/{name}/events", get(events))
        .route(
            "/api/vassals/{name}/reload",
            post(|s: Shared, h: HeaderMap, n: Path<String>| control(s, h, n, "reload")),
        )
        .route(
            "/api/vassals/{name}/stop",
            post(|s: Shared, h: HeaderMap, n: Path<String>| control(s, h, n, "stop")),
        )
        .route(
            "/api/vassals/{name}/start",
            post(|s: Shared, h: HeaderMap, n: Path<String>| control(s, h, n, "start")),
        )
        .route(
            "/api/vassals/{name}/retry",
            post(|s: Shared, h: HeaderMap, n: Path<String>| control(s, h, n, "retry")),
        )
        .fallback(move |uri: Uri| async move { fallback(&web_root, uri) })
        .with_state(registry)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn unknown(name: &str) -> Response {
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

async fn list(State(registry): Shared) -> Response {
    Json(json!({ "vassals": registry.statuses() })).into_response()
}

async fn one(State(registry): Shared, Path(name): Path<String>) -> Response {
    match registry.status(&name) {
        Some(status) => Json(status).into_response(),
        None => unknown(&name),
    }
}

async fn logs(
    State(registry): Shared,
    Path(name): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let tail = match query.get("tail").map(|value| parse_count(value)) {
        None => DEFAULT_TAIL,
        Some(Some(tail)) => tail.min(RING_LINES),
        Some(None) => return error(
            StatusCode::BAD_REQUEST,
            format!(
                "tail must be a whole number of lines (0 or more; at most {RING_LINES} are kept)"
            ),
        ),
    };
    match registry.logs(&name, tail) {
        Some(lines) => {
            let lines: Vec<&LogLine> = lines.iter().map(|line| line.as_ref()).collect();
            Json(json!({ "vassal": name, "lines": lines })).into_response()
        }
        None => unknown(&name),
    }
}

async fn events(State(registry): Shared, Path(name): Path<String>) -> Response {
    match registry.get(&name) {
        Some(shared) => Json(json!({ "vassal": name, "events": shared.events() })).into_response(),
        None => unknown(&name),
    }
}

async fn control(
    State(registry): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    action: &'static str,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|token| registry.token_matches(token.trim())) {
        let mut response = error(StatusCode::UNAUTHORIZED, "this call needs Authorization: Bearer TOKEN (the token file is named at emperor start)");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let command = match action {
        "reload" => Command::Reload,
        "stop" => Command::Stop,
        "start" => Command::Start,
        _ => Command::Retry,
    };
    match registry.send(&name, command) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "vassal": name, "action": action, "accepted": true })),
        )
            .into_response(),
        Err(ControlError::UnknownVassal(_)) => unknown(&name),
        Err(err @ ControlError::Gone(_)) => error(StatusCode::CONFLICT, err.to_string()),
    }
}

/// A whole number written in plain digits (no sign, no spaces).
fn parse_count(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<usize>().unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_digits() {
        assert_eq!(parse_count("10"), Some(10));
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("99999999999999999999999"), Some(usize::MAX));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("ten"), None);
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count(" 1"), None);
    }
}
