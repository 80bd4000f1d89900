//! uwsgi-protocol connections (nginx `uwsgi_pass`): one request per connection, a binary packet of CGI vars
//! in, raw HTTP out, then close.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use liege_protocol::uwsgi;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::body::{FileReader, IterReader, StreamAborted, StreamReader};
use super::record::RequestRecord;
use super::request_body::BodyCollector;
use super::request_path::{self, Answer, AnswerBody, Front};
use super::stream::Stream;
use super::Worker;
use crate::python::response::{call_app, BodySource, Prepared};
use crate::python::start_response::ResponseHead;

pub async fn serve(mut stream: Stream, remote: Rc<str>, worker: Rc<Worker>) {
    let limits = &worker.limits;
    let mut buffer = BytesMut::with_capacity(8192);
    // Read the packet: header first, then exactly the vars it announces.
    let packet_len = loop {
        match uwsgi::check(&buffer, limits.buffer_size) {
            Ok(uwsgi::Status::Complete { packet_len }) => break packet_len,
            Ok(uwsgi::Status::Partial { needed }) => {
                buffer.reserve(needed);
                match tokio::time::timeout(limits.socket_timeout, stream.read_buf(&mut buffer)).await {
                    Ok(Ok(0)) | Err(_) => return, // closed or timed out before a whole packet: nothing to answer
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => {
                        tracing::debug!("uwsgi read failed: {err}");
                        return;
                    }
                }
            }
            Err(err) => {
                tracing::info!("refused uwsgi packet from {remote}: {err}");
                let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let _ = write_refusal(&mut stream, status).await;
                return;
            }
        }
    };
    let packet = buffer.split_to(packet_len).freeze();
    let request = match uwsgi::parse(&packet) {
        Ok(request) => request,
        Err(err) => {
            tracing::info!("refused uwsgi packet from {remote}: {err}");
            let _ = write_refusal(&mut stream, StatusCode::BAD_REQUEST).await;
            return;
        }
    };
    let method = request.get(b"REQUEST_METHOD").unwrap_or(b"GET");
    let uri = request.get(b"REQUEST_URI").or_else(|| request.get(b"PATH_INFO")).unwrap_or(b"/");
    let request_line = format!("{} {}", String::from_utf8_lossy(method), String::from_utf8_lossy(uri));
    let remote_addr: Rc<str> =
        request.get(b"REMOTE_ADDR").map_or(remote, |a| Rc::from(String::from_utf8_lossy(a).as_ref()));
    let protocol = match request.get(b"SERVER_PROTOCOL") {
        Some(b"HTTP/1.0") => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut record = RequestRecord::begin(Rc::clone(&worker), request_line, remote_addr, protocol);
    record.vars = request.vars.len();
    record.head_in = packet_len;
    record.captured = worker.request_log.capture_vars(|name| request.get(name));
    record.modifier2 = packet.get(3).copied().unwrap_or(0);
    record.pktsize = packet_len.saturating_sub(uwsgi::HEADER_LEN);

    // The body follows the packet: CONTENT_LENGTH bytes, part of which may already be buffered.
    let content_length = match request.content_length() {
        Ok(length) => length,
        Err(err) => return refuse(&mut stream, record, StatusCode::BAD_REQUEST, &err.to_string()).await,
    };
    let mut collector = BodyCollector::new(limits.post_buffering, limits.limit_post, limits.post_buffering_bufsize);
    if let Err(err) = collector.check_declared(Some(content_length)) {
        return refuse(&mut stream, record, err.status(), &err.to_string()).await;
    }
    let mut remaining = content_length;
    let already = buffer.split_to(buffer.len().min(remaining as usize)).freeze();
    remaining -= already.len() as u64;
    if let Err(err) = collector.push(already) {
        return refuse(&mut stream, record, err.status(), &err.to_string()).await;
    }
    while remaining > 0 {
        // `post-buffering-bufsize`: the size of each read of the body.
        let mut chunk = BytesMut::with_capacity((remaining as usize).min(limits.post_buffering_bufsize));
        match tokio::time::timeout(limits.socket_timeout, stream.read_buf(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => {
                return refuse(&mut stream, record, StatusCode::BAD_REQUEST, "request body cut short").await
            }
            Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                remaining -= (n as u64).min(remaining);
                if let Err(err) = collector.push(chunk.freeze()) {
                    return refuse(&mut stream, record, err.status(), &err.to_string()).await;
                }
            }
        }
    }
    record.bytes_in = collector.len();
    let mut route_state = None;
    if worker.request_path.is_active() {
        match worker.request_path.front(&request_path::UwsgiVars(&request)) {
            Front::App(state) => route_state = Some(state),
            Front::Respond(answer) => {
                if let Err(err) = write_answer(&mut stream, answer, &mut record, protocol).await {
                    tracing::debug!("uwsgi response write failed: {err}");
                }
                let _ = stream.shutdown().await;
                return;
            }
            Front::Close { donotlog } => {
                record.donotlog = donotlog;
                return;
            }
        }
    }
    let overrides = route_state.as_mut().map(|state| std::mem::take(&mut state.overrides)).unwrap_or_default();
    let body = match collector.finish() {
        Ok(body) => body,
        Err(err) => return refuse(&mut stream, record, err.status(), &err.to_string()).await,
    };
    let head_only = method == b"HEAD";
    let https = request.url_scheme() == "https";
    let turn = worker.python.turn().await;
    record.app_started();
    if let Some(watch) = &worker.harakiri {
        watch.arm(stream.as_raw_fd(), || {
            request
                .vars
                .iter()
                .map(|(k, v)| format!("{}={}", String::from_utf8_lossy(k), String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
                .join("\n")
        });
    }
    let request_line = std::mem::take(&mut record.request_line);
    let outcome = worker
        .python
        .run(turn, move |py, context| {
            // The packet was validated above; parsing it again here is cheaper than copying its vars out.
            let environ = uwsgi::parse(&packet).map_err(|err| err.to_string()).and_then(|request| {
                context.environ.uwsgi(py, request.environ_vars(), https, body).map_err(|err| err.to_string())
            });
            if let Ok(environ) = &environ {
                request_path::apply_overrides(environ, &overrides);
            }
            let prepared = match environ {
                Ok(environ) => call_app(py, &context.app, environ, head_only, &request_line),
                Err(err) => {
                    tracing::error!("cannot build the environ for {request_line}: {err}");
                    Prepared::plain(StatusCode::INTERNAL_SERVER_ERROR, true, b"Internal Server Error\n")
                }
            };
            (prepared, request_line)
        })
        .await;
    if let Some(watch) = &worker.harakiri {
        watch.disarm();
    }
    let Some((prepared, request_line)) = outcome else {
        return refuse(&mut stream, record, StatusCode::SERVICE_UNAVAILABLE, "the app threads are gone").await;
    };
    record.request_line = request_line;
    let mut prepared = prepared;
    if let Some(state) = route_state.as_mut() {
        if let Some(answer) = worker.request_path.finish(&mut prepared.head, state) {
            if let Err(err) = write_answer(&mut stream, answer, &mut record, protocol).await {
                tracing::debug!("uwsgi response write failed: {err}");
            }
            let _ = stream.shutdown().await;
            return;
        }
        record.donotlog = state.donotlog();
    }
    let mut iteration = None;
    if let Err(err) = write_response(&mut stream, prepared, &mut record, protocol, &mut iteration).await {
        tracing::debug!("uwsgi response write failed: {err}");
    }
    let _ = stream.shutdown().await;
    // The record (log line, stats) before the iteration, whose drop hands the inline worker's turn on.
    drop(record);
    drop(iteration);
}

async fn refuse(stream: &mut Stream, mut record: RequestRecord, status: StatusCode, reason: &str) {
    tracing::info!("refused {} from {}: {status} ({reason})", record.request_line, record.remote_addr);
    record.status = status.as_u16();
    let _ = write_refusal(stream, status).await;
}

async fn write_refusal(stream: &mut Stream, status: StatusCode) -> std::io::Result<()> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let response = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}\n",
        status.as_u16(),
        reason.len() + 1
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The status line and headers as raw HTTP, which nginx's uwsgi module parses.
fn encode_head(head: &ResponseHead, protocol: &str, content_length: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(protocol.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.status.as_str().as_bytes());
    out.push(b' ');
    match &head.reason {
        Some(reason) => out.extend_from_slice(reason),
        None => out.extend_from_slice(head.status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in &head.headers {
        out.extend_from_slice(title_case(name.as_str()).as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let (Some(length), false) = (content_length, head.headers.contains_key(http::header::CONTENT_LENGTH)) {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn title_case(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let mapped = if upper { c.to_ascii_uppercase() } else { c };
            upper = c == '-';
            mapped
        })
        .collect()
}

/// Writes the response; an iterated body is left in `iteration` (closed) so the caller drops it last.
async fn write_response(
    stream: &mut Stream,
    prepared: Prepared,
    record: &mut RequestRecord,
    protocol: &str,
    iteration: &mut Option<IterReader>,
) -> std::io::Result<()> {
    let Prepared { head, body, app_failed } = prepared;
    record.status = head.status.as_u16();
    record.failed = app_failed;
    record.header_count = head.headers.len();
    match body {
        BodySource::Empty => {
            let head_bytes = encode_head(&head, protocol, Some(0));
            record.head_bytes = head_bytes.len();
            stream.write_all(&head_bytes).await
        }
        BodySource::Full(data) => {
            let head_bytes = encode_head(&head, protocol, Some(data.len() as u64));
            record.head_bytes = head_bytes.len();
            write_all_vectored(stream, &head_bytes, &data).await?;
            record.bytes_out += data.len() as u64;
            Ok(())
        }
        BodySource::Iter { first, iter } => {
            let head_bytes = encode_head(&head, protocol, None);
            record.head_bytes = head_bytes.len();
            let reader = iteration.insert(IterReader::new(Bytes::new(), iter));
            let written = write_iterated(stream, &head_bytes, first, reader, record).await;
            reader.close();
            written
        }
        BodySource::Stream { first, shared } => {
            let head_bytes = encode_head(&head, protocol, None);
            record.head_bytes = head_bytes.len();
            write_all_vectored(stream, &head_bytes, &first).await?;
            record.bytes_out += first.len() as u64;
            let mut reader = StreamReader::new(Bytes::new(), shared);
            while let Some(chunk) = std::future::poll_fn(|cx| reader.poll_next(cx)).await {
                match chunk {
                    Ok(data) => {
                        stream.write_all(&data).await?;
                        record.bytes_out += data.len() as u64;
                    }
                    Err(aborted) => {
                        record.failed = true;
                        return Err(std::io::Error::other(aborted));
                    }
                }
            }
            Ok(())
        }
        BodySource::File { source, closer } => {
            let head_bytes = encode_head(&head, protocol, Some(source.len));
            record.head_bytes = head_bytes.len();
            stream.write_all(&head_bytes).await?;
            let reader = FileReader::new(source, closer);
            record.bytes_out += sendfile_all(stream, reader).await?;
            Ok(())
        }
    }
}

/// Sends a response liege made itself (static file, route reply); files go with sendfile(2).
async fn write_answer(
    stream: &mut Stream,
    answer: Answer,
    record: &mut RequestRecord,
    protocol: &str,
) -> std::io::Result<()> {
    record.status = answer.head.status.as_u16();
    record.header_count = answer.head.headers.len();
    record.donotlog = answer.donotlog;
    let mut head = answer.head;
    if head.close {
        head.headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    let head_bytes = encode_head(&head, protocol, Some(answer.body.len()));
    record.head_bytes = head_bytes.len();
    match answer.body {
        AnswerBody::Empty => stream.write_all(&head_bytes).await,
        AnswerBody::Full(data) => {
            write_all_vectored(stream, &head_bytes, &data).await?;
            record.bytes_out += data.len() as u64;
            Ok(())
        }
        AnswerBody::File(source) => {
            stream.write_all(&head_bytes).await?;
            record.bytes_out += sendfile_all(stream, FileReader::plain(source)).await?;
            Ok(())
        }
    }
}

/// Writes the head and the first chunk, then pulls batch after batch on this (the calling) thread, writing
/// each before the next pull: a chunk never waits in liege while Python runs, and a client that does not
/// drain stops the pulling.
async fn write_iterated(
    stream: &mut Stream,
    head_bytes: &[u8],
    first: Bytes,
    reader: &mut IterReader,
    record: &mut RequestRecord,
) -> std::io::Result<()> {
    write_all_vectored(stream, head_bytes, &first).await?;
    record.bytes_out += first.len() as u64;
    loop {
        let data = reader.pull();
        let mut wrote = false;
        for data in [data, reader.take_big()].into_iter().flatten() {
            stream.write_all(&data).await?;
            record.bytes_out += data.len() as u64;
            wrote = true;
        }
        match reader.ended() {
            Some(true) => return Ok(()),
            Some(false) => {
                record.failed = true;
                return Err(std::io::Error::other(StreamAborted));
            }
            // A slow generator yielding empty chunks: let the event loop breathe between its batches.
            None if !wrote => tokio::task::yield_now().await,
            None => {}
        }
    }
}

async fn write_all_vectored(stream: &mut Stream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let written = stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head = &head[from_head..];
        body = &body[written - from_head..];
    }
    Ok(())
}

/// Sends the file with sendfile(2): the bytes go from the page cache to the socket without passing through
/// user space.
async fn sendfile_all(stream: &mut Stream, mut reader: FileReader) -> std::io::Result<u64> {
    let socket_fd = stream.as_raw_fd();
    let mut sent = 0u64;
    while reader.remaining() > 0 {
        stream.writable().await?;
        let mut offset = (reader.source.offset + reader.position) as libc::off_t;
        let count = reader.remaining().min(1 << 30) as usize;
        let file_fd = reader.source.file.as_raw_fd();
        let result = stream.try_write_io(|| {
            // SAFETY: both fds are open for the duration of the call; offset is a valid pointer.
            let n = unsafe { libc::sendfile(socket_fd, file_fd, &mut offset, count) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match result {
            Ok(0) => {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being sent"))
            }
            Ok(n) => {
                reader.position += n;
                sent += n;
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(sent)
}
