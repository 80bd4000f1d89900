//! The dashboard's files (`web/`), embedded in the binary at build time so the emperor serves them offline, from
//! any directory, with nothing to install. `LIEGE_WEB_DIR=web` serves them from disk instead, for working on the
//! dashboard without rebuilding (see README, "Working on the dashboard").
//!
//! Every page answer carries a strict Content-Security-Policy: scripts, styles and API calls only from this
//! origin, no inline script, no framing. Together with the dashboard rendering API data as text only, a
//! hostile vassal name or log line cannot run code in an operator's browser.

use std::path::{Component, Path, PathBuf};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Environment variable naming a directory to serve the dashboard from instead of the embedded copy.
pub const WEB_DIR_ENV: &str = "LIEGE_WEB_DIR";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Where the files come from, decided once at start.
#[derive(Debug, Clone)]
pub enum WebRoot {
    Embedded,
    Directory(PathBuf),
}

impl WebRoot {
    pub fn from_env() -> Self {
        match std::env::var_os(WEB_DIR_ENV) {
            Some(dir) if !dir.is_empty() => WebRoot::Directory(PathBuf::from(dir)),
            _ => WebRoot::Embedded,
        }
    }

    /// The file at `path` (relative, `/`-separated), if it exists. `..` and absolute components are refused,
    /// so a request can never leave the web root.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        let path = if path.is_empty() { "index.html" } else { path };
        let relative = Path::new(path);
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        match self {
            WebRoot::Embedded => {
                embedded::ASSETS.iter().find(|(name, _)| *name == path).map(|(_, bytes)| bytes.to_vec())
            }
            WebRoot::Directory(dir) => std::fs::read(dir.join(relative)).ok(),
        }
    }
}

/// Answers `GET /PATH` with a dashboard file, or `None` when there is no such file.
pub fn serve(root: &WebRoot, path: &str) -> Option<Response> {
    let body = root.file(path)?;
    let content_type = content_type(if path.is_empty() { "index.html" } else { path });
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    Some(response)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").expect("write");
        let root = WebRoot::Directory(dir.path().join("."));
        assert_eq!(root.file("").as_deref(), Some(&b"<p>hi</p>"[..]));
        assert_eq!(root.file("index.html").as_deref(), Some(&b"<p>hi</p>"[..]));
        assert!(root.file("../etc/passwd").is_none());
        assert!(root.file("/etc/passwd").is_none());
        assert!(root.file("missing.js").is_none());
    }

    #[test]
    fn types_follow_extensions() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
