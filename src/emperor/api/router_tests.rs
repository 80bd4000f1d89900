//! The API router in process: every route's status and JSON shape, and the access rules, through
//! `tower::ServiceExt::oneshot` on a registry with two fake vassals. No socket is opened: the peer address a
//! server would attach is set (or left out) by hand, which is also how the fail-closed rule is tested.
//!
//! `alpha` is running and has a live command channel (the test holds the receiving end, so it can check
//! which command a call queued); `beta`'s supervisor is gone (receiver dropped), so control calls get 409.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::emperor::logs::LogStore;
use crate::emperor::registry::{Command, Registry, SocketInfo, State, VassalEntry, VassalShared};

const TOKEN: &str = "s3cret-token-for-tests";

struct Fixture {
    registry: Arc<Registry>,
    alpha_commands: mpsc::UnboundedReceiver<Command>,
}

fn fixture() -> Fixture {
    let registry = Arc::new(Registry::new(
        PathBuf::from("/srv/vassals"),
        TOKEN.to_owned(),
        Some(PathBuf::from("/run/liege/api-token")),
    ));
    let shared = |name: &str| {
        let logs = Arc::new(LogStore::new(name, None));
        Arc::new(VassalShared::new(name, PathBuf::from(format!("/srv/vassals/{name}.ini")), logs))
    };

    let alpha = shared("alpha");
    let mut status = alpha.status();
    status.state = State::Running;
    status.pid = Some(4242);
    status.sockets = vec![SocketInfo { proto: "http".into(), address: "127.0.0.1:8000".into(), auto: false }];
    status.started_at = Some(1_700_000_000);
    alpha.publish(status);
    alpha.event("spawned", "master 4242 started".to_owned());
    for text in ["first line", "an ERROR here", "third line"] {
        alpha.logs.note(text);
    }
    let (alpha_tx, alpha_commands) = mpsc::unbounded_channel();
    registry.insert(VassalEntry { shared: alpha, commands: alpha_tx });

    let (beta_tx, beta_rx) = mpsc::unbounded_channel();
    drop(beta_rx);
    registry.insert(VassalEntry { shared: shared("beta"), commands: beta_tx });
    Fixture { registry, alpha_commands }
}

fn loopback() -> Option<SocketAddr> {
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50000))
}

fn remote() -> Option<SocketAddr> {
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 50000))
}

/// A request as a server would hand it to the router: `peer` becomes `ConnectInfo`, unless `None`.
fn request(method: Method, uri: &str, peer: Option<SocketAddr>, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri).header(header::HOST, "127.0.0.1:9191");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(peer) = peer {
        builder = builder.extension(ConnectInfo(peer));
    }
    builder.body(Body::empty()).expect("request")
}

async fn call(registry: &Arc<Registry>, request: Request<Body>) -> Response {
    super::router(registry.clone()).oneshot(request).await.expect("the router is infallible")
}

async fn json_of(response: Response) -> Value {
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    assert_eq!(content_type.as_ref().and_then(|v| v.to_str().ok()), Some("application/json"));
    let body = response.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&body).expect("JSON body")
}

async fn get_json(registry: &Arc<Registry>, uri: &str) -> (StatusCode, Value) {
    let response = call(registry, request(Method::GET, uri, loopback(), &[])).await;
    (response.status(), json_of(response).await)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// --- reads: status and JSON shape of every route -------------------------------------------------------

#[tokio::test]
async fn emperor_sums_its_vassals() {
    let f = fixture();
    let (status, body) = get_json(&f.registry, "/api/emperor").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["pid"], std::process::id());
    assert_eq!(body["dir"], "/srv/vassals");
    assert_eq!(body["token_file"], "/run/liege/api-token");
    assert!(body["uptime_s"].as_f64().is_some_and(|up| up >= 0.0));
    assert_eq!(body["vassals"]["total"], 2);
    let by_state = body["vassals"]["by_state"].as_object().expect("by_state");
    assert_eq!(by_state.len(), State::ALL.len(), "every state is listed, zeros included");
    assert_eq!(by_state["running"], 1);
    assert_eq!(by_state["starting"], 1);
    let totals = &body["totals"];
    assert_eq!(totals["requests"], 0);
    assert_eq!(totals["workers"], 0);
    for class in ["2xx", "3xx", "4xx", "5xx"] {
        assert_eq!(totals["status"][class], 0, "{class}");
    }
    assert!(totals["rps"].as_object().is_some_and(|rps| rps.contains_key("1s") && rps.contains_key("1m")));
}

#[tokio::test]
async fn vassal_list_is_sorted_and_one_vassal_has_its_fields() {
    let f = fixture();
    let (status, body) = get_json(&f.registry, "/api/vassals").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> =
        body["vassals"].as_array().expect("list").iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);

    let (status, alpha) = get_json(&f.registry, "/api/vassals/alpha").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(alpha["config"], "/srv/vassals/alpha.ini");
    assert_eq!(alpha["state"], "running");
    assert_eq!(alpha["pid"], 4242);
    assert_eq!(alpha["sockets"][0]["proto"], "http");
    assert_eq!(alpha["sockets"][0]["address"], "127.0.0.1:8000");
    assert!(alpha["workers"].as_array().is_some_and(Vec::is_empty));
    // The traffic block is flattened into the vassal object.
    for key in ["rps", "latency_ms", "status", "exceptions", "bytes_sent", "requests", "reloads", "respawns"] {
        assert!(alpha.get(key).is_some(), "vassal JSON lacks {key}: {alpha}");
    }
}

#[tokio::test]
async fn unknown_vassals_and_endpoints_are_json_404s() {
    let f = fixture();
    for uri in [
        "/api/vassals/nope",
        "/api/vassals/nope/history",
        "/api/vassals/nope/logs",
        "/api/vassals/nope/logs/stream",
        "/api/vassals/nope/events",
    ] {
        let (status, body) = get_json(&f.registry, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(body["error"], "no vassal named 'nope'", "{uri}");
    }
    let (status, body) = get_json(&f.registry, "/api/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such API endpoint (see docs/api.md)");
}

#[tokio::test]
async fn history_checks_its_window() {
    let f = fixture();
    let (status, body) = get_json(&f.registry, "/api/vassals/alpha/history").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["vassal"], "alpha");
    assert_eq!(body["seconds"], super::reads::DEFAULT_HISTORY);
    assert_eq!(body["interval"], 1);
    assert!(body["points"].is_array());
    let (status, body) = get_json(&f.registry, "/api/vassals/alpha/history?seconds=60").await;
    assert_eq!((status, &body["seconds"]), (StatusCode::OK, &Value::from(60)));
    for bad in ["0", "-1", "ten", "999999"] {
        let (status, body) = get_json(&f.registry, &format!("/api/vassals/alpha/history?seconds={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "seconds={bad}");
        assert!(body["error"].as_str().is_some_and(|e| e.starts_with("seconds must be")));
    }
}

#[tokio::test]
async fn logs_tail_and_grep() {
    let f = fixture();
    let (status, body) = get_json(&f.registry, "/api/vassals/alpha/logs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["vassal"], "alpha");
    let texts = |body: &Value| -> Vec<String> {
        body["lines"].as_array().expect("lines").iter().map(|l| l["text"].as_str().unwrap_or("").to_owned()).collect()
    };
    // The lifecycle event is logged too, before the three noted lines.
    assert_eq!(
        texts(&body),
        [
            "liege emperor: master 4242 started",
            "liege emperor: first line",
            "liege emperor: an ERROR here",
            "liege emperor: third line"
        ]
    );
    let line = &body["lines"][0];
    assert_eq!(line["seq"], 1);
    assert_eq!(line["stream"], "emperor");
    assert!(line["pid"].is_null() && line["time"].is_f64());

    let (_, body) = get_json(&f.registry, "/api/vassals/alpha/logs?tail=1").await;
    assert_eq!(texts(&body), ["liege emperor: third line"]);
    let (_, body) = get_json(&f.registry, "/api/vassals/alpha/logs?grep=error").await;
    assert_eq!(texts(&body), ["liege emperor: an ERROR here"]);
    let (_, body) = get_json(&f.registry, "/api/vassals/alpha/logs?tail=0").await;
    assert!(texts(&body).is_empty());
    let (status, body) = get_json(&f.registry, "/api/vassals/alpha/logs?tail=some").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("tail must be")));
    let long = "x".repeat(1025);
    let (status, body) = get_json(&f.registry, &format!("/api/vassals/alpha/logs?grep={long}")).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &Value::from("grep is limited to 1024 bytes")));
}

#[tokio::test]
async fn log_stream_replays_from_since_as_server_sent_events() {
    let f = fixture();
    let response =
        call(&f.registry, request(Method::GET, "/api/vassals/alpha/logs/stream?since=1", loopback(), &[])).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("text/event-stream"));
    assert_eq!(response.headers().get("x-accel-buffering").map(|v| v.as_bytes()), Some(&b"no"[..]));
    let mut body = response.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("an event in time");
    let data = frame.expect("a frame").expect("no error").into_data().expect("data frame");
    let text = String::from_utf8_lossy(&data);
    // Line 1 (the lifecycle event) was before `since`; line 2 comes first.
    assert!(text.contains("id: 2\n") && text.contains("first line") && !text.contains("4242"), "{text}");

    let (status, body) = get_json(&f.registry, "/api/vassals/alpha/logs/stream?since=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("since")));
}

#[tokio::test]
async fn events_list_lifecycle_events() {
    let f = fixture();
    let (status, body) = get_json(&f.registry, "/api/vassals/alpha/events").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["vassal"], "alpha");
    let events = body["events"].as_array().expect("events");
    let event = events.iter().find(|e| e["kind"] == "spawned").expect("the spawned event");
    assert_eq!(event["message"], "master 4242 started");
    assert!(event["time"].is_f64());
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let f = fixture();
    let response = call(&f.registry, request(Method::GET, "/metrics", loopback(), &[])).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("text/plain; version=0.0.4; charset=utf-8"));
    let body = response.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("# TYPE liege_requests_total counter"), "{text}");
    assert!(text.contains("vassal=\"alpha\"") && text.contains("vassal=\"beta\""), "{text}");
}

// --- control ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_action_queues_its_command() {
    let mut f = fixture();
    let actions = [
        ("reload", Command::Reload),
        ("chain-reload", Command::ChainReload),
        ("stop", Command::Stop),
        ("start", Command::Start),
        ("retry", Command::Retry),
    ];
    for (action, command) in actions {
        let uri = format!("/api/vassals/alpha/{action}");
        let auth = bearer(TOKEN);
        let response =
            call(&f.registry, request(Method::POST, &uri, loopback(), &[("authorization", auth.as_str())])).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{action}");
        let body = json_of(response).await;
        assert_eq!(body, serde_json::json!({ "vassal": "alpha", "action": action, "accepted": true }));
        assert_eq!(f.alpha_commands.try_recv().ok(), Some(command), "{action}");
    }
    assert!(f.alpha_commands.try_recv().is_err(), "one command per call");
}

#[tokio::test]
async fn control_errors() {
    let mut f = fixture();
    let auth = bearer(TOKEN);
    let post = |uri: &str| request(Method::POST, uri, loopback(), &[("authorization", auth.as_str())]);

    let response = call(&f.registry, post("/api/vassals/alpha/frobnicate")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = json_of(response).await;
    assert_eq!(body["error"], "no action 'frobnicate' (use reload, chain-reload, stop, start or retry)");

    let response = call(&f.registry, post("/api/vassals/nope/reload")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(response).await["error"], "no vassal named 'nope'");

    let response = call(&f.registry, post("/api/vassals/beta/reload")).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(json_of(response).await["error"], "vassal 'beta' is being removed");

    // Reads are GET only; a GET on an action path is not a control call.
    let response = call(&f.registry, request(Method::GET, "/api/vassals/alpha/reload", loopback(), &[])).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(f.alpha_commands.try_recv().is_err(), "no failed call queued anything");
}

// --- who may do what --------------------------------------------------------------------------------------

const NEEDS_TOKEN: &str =
    "this call needs Authorization: Bearer TOKEN (see token_file in /api/emperor, or the emperor's log)";
const TOKEN_REFUSED: &str =
    "the token was refused: it is not the one in the emperor's token file (token_file in /api/emperor)";

async fn assert_unauthorized(response: Response, message: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    assert_eq!(json_of(response).await["error"], message);
}

#[tokio::test]
async fn reads_from_loopback_need_no_token() {
    let f = fixture();
    let v6 = Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 50000));
    for peer in [loopback(), v6] {
        for uri in ["/api/emperor", "/api/vassals", "/api/vassals/alpha/logs", "/metrics"] {
            let response = call(&f.registry, request(Method::GET, uri, peer, &[])).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri} from {peer:?}");
        }
    }
}

#[tokio::test]
async fn reads_from_elsewhere_need_the_token() {
    let f = fixture();
    for uri in ["/api/emperor", "/api/vassals", "/api/vassals/alpha", "/api/vassals/alpha/events", "/metrics"] {
        let response = call(&f.registry, request(Method::GET, uri, remote(), &[])).await;
        assert_unauthorized(response, NEEDS_TOKEN).await;
        let response =
            call(&f.registry, request(Method::GET, uri, remote(), &[("authorization", "Bearer wrong")])).await;
        assert_unauthorized(response, TOKEN_REFUSED).await;
        let auth = bearer(TOKEN);
        let response =
            call(&f.registry, request(Method::GET, uri, remote(), &[("authorization", auth.as_str())])).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri} with the token");
    }
    // Another scheme, or the token without its scheme, is a presented-but-refused credential.
    for value in [format!("Basic {TOKEN}"), TOKEN.to_owned(), "Bearer ".to_owned()] {
        let response =
            call(&f.registry, request(Method::GET, "/api/vassals", remote(), &[("authorization", value.as_str())]))
                .await;
        assert_unauthorized(response, TOKEN_REFUSED).await;
    }
    // The dashboard's own files are not data: anyone who can reach the port may load the page.
    let response = call(&f.registry, request(Method::GET, "/", remote(), &[])).await;
    assert_ne!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_peer_is_treated_as_remote() {
    let f = fixture();
    let response = call(&f.registry, request(Method::GET, "/api/vassals", None, &[])).await;
    assert_unauthorized(response, NEEDS_TOKEN).await;
    let auth = bearer(TOKEN);
    let response =
        call(&f.registry, request(Method::GET, "/api/vassals", None, &[("authorization", auth.as_str())])).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn control_always_needs_the_token() {
    let mut f = fixture();
    for peer in [loopback(), remote(), None] {
        let response = call(&f.registry, request(Method::POST, "/api/vassals/alpha/reload", peer, &[])).await;
        assert_unauthorized(response, NEEDS_TOKEN).await;
        let wrong = [("authorization", "Bearer not-the-token")];
        let response = call(&f.registry, request(Method::POST, "/api/vassals/alpha/reload", peer, &wrong)).await;
        assert_unauthorized(response, TOKEN_REFUSED).await;
    }
    assert!(f.alpha_commands.try_recv().is_err(), "a refused call queues nothing");
    let auth = bearer(TOKEN);
    let response = call(
        &f.registry,
        request(Method::POST, "/api/vassals/alpha/reload", remote(), &[("authorization", auth.as_str())]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(f.alpha_commands.try_recv().ok(), Some(Command::Reload));
}

#[tokio::test]
async fn foreign_origin_is_refused_before_the_token_is_looked_at() {
    let mut f = fixture();
    let auth = bearer(TOKEN);
    for origin in ["http://evil.example", "null", "http://127.0.0.1:9191.evil.example", "http://127.0.0.1"] {
        for headers in [vec![("origin", origin)], vec![("origin", origin), ("authorization", auth.as_str())]] {
            let response =
                call(&f.registry, request(Method::POST, "/api/vassals/alpha/stop", loopback(), &headers)).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "Origin: {origin}");
            assert_eq!(json_of(response).await["error"], "cross-origin control request refused");
        }
    }
    assert!(f.alpha_commands.try_recv().is_err());
    // The dashboard itself sends its own origin.
    let headers = [("origin", "http://127.0.0.1:9191"), ("authorization", auth.as_str())];
    let response = call(&f.registry, request(Method::POST, "/api/vassals/alpha/stop", loopback(), &headers)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(f.alpha_commands.try_recv().ok(), Some(Command::Stop));
}

#[test]
fn an_empty_token_matches_nothing() {
    let registry = Registry::new(PathBuf::from("/srv"), String::new(), None);
    assert!(!registry.token_matches(""));
    let registry = Registry::new(PathBuf::from("/srv"), TOKEN.to_owned(), None);
    assert!(registry.token_matches(TOKEN));
    assert!(!registry.token_matches(&TOKEN[1..]));
}
