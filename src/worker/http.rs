//! HTTP/1.1 connections: hyper parses and frames, liege's policy refuses what hyper lets through, the app is
//! called inline.

use std::rc::Rc;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use liege_protocol::http_policy;
use tokio::sync::watch;

use super::body::ResponseBody;
use super::record::RequestRecord;
use super::request_body::{BodyCollector, BodyReadError};
use super::request_path::{self, Front};
use super::stream::{HeadQueue, Stream, WatchedStream};
use super::Worker;
use crate::python::environ::ConnectionInfo;
use crate::python::response::{call_app, Prepared};
use pyo3::types::PyDictMethods;

struct Connection {
    info: Arc<ConnectionInfo>,
    remote: Rc<str>,
    fd: std::os::fd::RawFd,
    /// True once the worker drains (see the graceful stop in `serve`): every response from then on carries
    /// `Connection: close`, so a client learns the connection ends before it sends another request.
    draining: watch::Receiver<bool>,
    /// The framing headers each request head really carried, in order (hyper drops a `Content-Length` that
    /// comes with `Transfer-Encoding` before liege's policy sees the head).
    heads: Rc<HeadQueue>,
}

/// How long a draining worker keeps an idle connection open for the request its client may already be sending.
///
/// Closing an idle kept-alive connection races the client's next request: a request already on the wire would
/// meet the close and fail, and clients that do not retry (Python's `http.client`, any POST) report it. So a
/// draining worker does not close idle connections at once: a request that arrives within this grace is
/// answered with `Connection: close` (the client then reconnects, to a live worker), and only a connection that
/// stayed silent for the whole grace is closed. Capped by `http-keepalive`, since the client can't expect an
/// idle connection to live longer than that anyway.
const DRAIN_IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn serve(stream: Stream, info: ConnectionInfo, worker: Rc<Worker>, mut shutdown: watch::Receiver<bool>) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let (stream, heads) = WatchedStream::new(stream);
    let connection = Rc::new(Connection {
        remote: Rc::from(info.remote_addr.as_str()),
        info: Arc::new(info),
        fd,
        draining: shutdown.clone(),
        heads,
    });
    let service_worker = Rc::clone(&worker);
    let service_connection = Rc::clone(&connection);
    let service = hyper::service::service_fn(move |request| {
        let worker = Rc::clone(&service_worker);
        let connection = Rc::clone(&service_connection);
        async move {
            let response = handle(request, worker, connection).await;
            // A `break` route: hyper closes the connection when the service fails.
            match response.extensions().get::<request_path::CloseConnection>() {
                Some(_) => Err(request_path::CloseConnection),
                None => Ok(response),
            }
        }
    });
    let limits = &worker.limits;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(!limits.keepalive.is_zero())
        .header_read_timeout(if limits.keepalive.is_zero() {
            limits.socket_timeout
        } else {
            limits.keepalive.min(limits.socket_timeout)
        })
        .title_case_headers(true)
        // One flat buffer per write instead of an iovec per header block and chunk: measured +3 to +15 % on
        // small responses (the common case); large bodies pay one memcpy, cheap next to the network.
        .writev(false)
        .max_headers(limits.policy.max_header_count)
        .max_buf_size(limits.buffer_size.max(8192));
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => log_connection_error(result),
        _ = shutdown.wait_for(|stop| *stop) => {
            // Draining. A request in flight is answered with `Connection: close` (`respond` checks `draining`)
            // and hyper closes the connection after it; so is any request arriving within the grace. A
            // connection still open after the grace is idle: closed now (hyper closes an idle one at once).
            let grace = if limits.keepalive.is_zero() { DRAIN_IDLE_GRACE } else { DRAIN_IDLE_GRACE.min(limits.keepalive) };
            tokio::select! {
                result = connection.as_mut() => return log_connection_error(result),
                _ = tokio::time::sleep(grace) => {}
            }
            connection.as_mut().graceful_shutdown();
            log_connection_error(connection.await);
        }
    }
}

fn log_connection_error(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // Client-side trouble (resets, timeouts, malformed input hyper already answered) is routine.
        tracing::debug!("connection ended: {err}");
    }
}

async fn handle(request: Request<Incoming>, worker: Rc<Worker>, connection: Rc<Connection>) -> Response<ResponseBody> {
    let (parts, incoming) = request.into_parts();
    let request_line = format!("{} {}", parts.method, parts.uri);
    let protocol = if parts.version == http::Version::HTTP_10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut record = RequestRecord::begin(Rc::clone(&worker), request_line, Rc::clone(&connection.remote), protocol);
    record.header_count = parts.headers.len();
    record.vars = parts.headers.len();
    let info = &connection.info;
    record.captured = worker.request_log.capture_http(
        &parts,
        &info.remote_addr,
        &info.remote_port,
        &info.server_name,
        &info.server_port,
    );
    // uWSGI logs the size of the request vars; the request head's size is the HTTP equivalent.
    record.head_in = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + parts.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum::<usize>();
    record.pktsize = record.head_in;

    // RFC 9112 §6.1 allows either refusing Content-Length with Transfer-Encoding or letting Transfer-Encoding win
    // and closing; hyper did the latter already, liege refuses (an intermediary framing by the length disagrees
    // with us on where the next request starts, and the operator should hear of it).
    if connection.heads.next_request().is_some_and(|facts| facts.is_ambiguous()) {
        let violation = http_policy::Violation::ContentLengthWithTransferEncoding;
        return refusal(record, StatusCode::BAD_REQUEST, violation.to_string());
    }
    if let Err(violation) =
        http_policy::check_request(&parts.method, &parts.uri, parts.version, &parts.headers, &worker.limits.policy)
    {
        return refusal(
            record,
            StatusCode::from_u16(violation.status()).unwrap_or(StatusCode::BAD_REQUEST),
            violation.to_string(),
        );
    }
    let mut route_state = None;
    if worker.request_path.is_active() {
        match worker.request_path.front(&request_path::HttpVars { parts: &parts, info: &connection.info }) {
            Front::App(state) => route_state = Some(state),
            Front::Respond(answer) => return request_path::http_response(answer, record),
            Front::Close { donotlog } => return request_path::http_close(record, donotlog),
        }
    }
    let overrides = route_state.as_mut().map(|state| std::mem::take(&mut state.overrides)).unwrap_or_default();
    let body = match receive_body(incoming, &parts.headers, &worker).await {
        Ok(body) => body,
        Err(err) => return refusal(record, err.status(), err.to_string()),
    };
    record.bytes_in = body.len();
    let head_only = parts.method == http::Method::HEAD;
    let turn = worker.python.turn().await;
    record.app_started();
    if let Some(watch) = &worker.harakiri {
        watch.arm(connection.fd, || {
            let mut vars = format!(
                "REQUEST_METHOD={}\nREQUEST_URI={}\nREMOTE_ADDR={}",
                parts.method, parts.uri, connection.info.remote_addr
            );
            for (name, value) in &parts.headers {
                vars.push_str(&format!("\n{}={}", name, String::from_utf8_lossy(value.as_bytes())));
            }
            vars
        });
    }
    let info = Arc::clone(&connection.info);
    let request_line = std::mem::take(&mut record.request_line);
    let outcome = worker
        .python
        .run(turn, move |py, context| {
            let (prepared, vars) = match context.http_environ(py, &parts, &info, body) {
                Ok(environ) => {
                    request_path::apply_overrides(&environ, &overrides);
                    let vars = environ.len();
                    (call_app(py, &context.app, environ, head_only, &request_line), vars)
                }
                Err(err) => {
                    tracing::error!("cannot build the environ for {request_line}: {err}");
                    (Prepared::plain(StatusCode::INTERNAL_SERVER_ERROR, false, b"Internal Server Error\n"), 0)
                }
            };
            (prepared, vars, request_line)
        })
        .await;
    if let Some(watch) = &worker.harakiri {
        watch.disarm();
    }
    let Some((prepared, vars, request_line)) = outcome else {
        return refusal(record, StatusCode::SERVICE_UNAVAILABLE, "the app threads are gone".into());
    };
    record.request_line = request_line;
    record.vars = vars;
    let mut prepared = prepared;
    if let Some(state) = route_state.as_mut() {
        if let Some(answer) = worker.request_path.finish(&mut prepared.head, state) {
            return request_path::http_response(answer, record);
        }
        record.donotlog = state.donotlog();
    }
    respond(prepared, record, *connection.draining.borrow())
}

async fn receive_body(
    mut incoming: Incoming,
    headers: &http::HeaderMap,
    worker: &Worker,
) -> Result<crate::python::streams::RequestBody, BodyReadError> {
    use http_body::Body;
    let limits = &worker.limits;
    let mut collector = BodyCollector::new(limits.post_buffering, limits.limit_post, limits.post_buffering_bufsize);
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    collector.check_declared(declared)?;
    if incoming.is_end_stream() {
        return collector.finish();
    }
    let receive = async {
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| BodyReadError::Malformed(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                collector.push(data)?;
            }
        }
        Ok::<_, BodyReadError>(())
    };
    match tokio::time::timeout(limits.socket_timeout, receive).await {
        Ok(result) => result?,
        Err(_) => return Err(BodyReadError::Malformed("timed out receiving the request body".into())),
    }
    collector.finish()
}

/// A refusal by liege itself (policy, body errors): a short text body, and the connection closed because
/// after a framing error the next bytes on it can't be trusted.
fn refusal(mut record: RequestRecord, status: StatusCode, reason: String) -> Response<ResponseBody> {
    tracing::info!("refused {} from {}: {status} ({reason})", record.request_line, record.remote_addr);
    record.status = status.as_u16();
    let body = format!("{}\n", status.canonical_reason().unwrap_or("Error"));
    let mut response = Response::new(ResponseBody::new(
        crate::python::response::BodySource::Full(bytes::Bytes::from(body)),
        Some(record),
    ));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn respond(prepared: Prepared, mut record: RequestRecord, draining: bool) -> Response<ResponseBody> {
    let Prepared { head, body, app_failed } = prepared;
    record.status = head.status.as_u16();
    record.failed = app_failed;
    record.head_bytes = head.wire_size();
    record.header_count = head.headers.len();
    let mut response = Response::new(ResponseBody::new(body, Some(record)));
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    if head.close || draining {
        response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(reason) = head.reason {
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
            response.extensions_mut().insert(reason);
        }
    }
    response
}
