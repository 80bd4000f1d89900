//! Static files as uWSGI serves them (`static-map`, `static-map2`, `check-static`, `check-static-docroot`,
//! `static-index`, `static-skip-ext`, `static-safe`, `static-expires*`, `static-gzip*`, `mimefile`,
//! `honour-range`, `file-serve-mode`), answered by the worker's event loop without calling Python.
//!
//! Split in three: [`StaticFiles::compile`] checks the options at startup (regexes, `MOUNT=DIR` syntax);
//! [`StaticFiles::find`] maps a PATH_INFO to a real file (the only part touching the file system: realpath,
//! stat, the `.gz` beside it); [`plan`] decides the response (200/206/304/416, headers) from the file's facts
//! and the request's conditional headers, pure and unit-tested.
//!
//! Safety: the candidate path is resolved with `realpath` and must lie under the (resolved) mapped directory,
//! compared by path components (uWSGI compares string prefixes, so `/srv/static` also admits
//! `/srv/static2/...`; liege does not), unless it lies under a `static-safe` directory. So `..`, an encoded
//! `%2e%2e` or `%2f` (PATH_INFO is decoded before it gets here) and symlinks out of the directory are refused,
//! and a NUL byte never reaches the file system. A refused or missing file falls through to the app, as in
//! uWSGI (which logs a security error for an escape; liege logs it at info level).

mod mime;

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use liege_config::{OptionId, RequestPathConfig, StaticLine};
use regex::Regex;

pub use mime::MimeTable;

#[derive(Debug)]
struct Mapping {
    /// Empty for `check-static`.
    mount: String,
    root: PathBuf,
    /// `static-map2`: look up the whole PATH_INFO, mountpoint included.
    append_whole: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpiresOn {
    FileName,
    Uri,
    PathInfo,
}

#[derive(Debug)]
struct Expires {
    on: ExpiresOn,
    regex: Regex,
    seconds: u64,
    from_mtime: bool,
}

/// The compiled static-file settings of a vassal.
#[derive(Debug)]
pub struct StaticFiles {
    /// `check-static` first, then `static-map`, then `static-map2` (uWSGI's order).
    mappings: Vec<Mapping>,
    docroot: bool,
    index: Vec<String>,
    skip_ext: Vec<String>,
    safe: Vec<PathBuf>,
    expires: Vec<Expires>,
    /// (content type, seconds, from mtime)
    expires_type: Vec<(String, u64, bool)>,
    gzip_all: bool,
    gzip_dirs: Vec<String>,
    gzip_exts: Vec<String>,
    gzip_regexes: Vec<Regex>,
    mime: MimeTable,
    honour_range: bool,
    serve_header: Option<&'static str>,
}

fn line_error(line: &StaticLine, name: &str, reason: impl std::fmt::Display) -> String {
    format!("{}: {name} = {}: {reason}", line.origin, line.value)
}

fn regex(line: &StaticLine, name: &str, pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|err| {
        line_error(line, name, format!("invalid regex (Rust regex syntax: PCRE without look-around): {err}"))
    })
}

/// `REGEX SECONDS` (split at the last space, so a regex may contain spaces).
fn regex_seconds(line: &StaticLine, name: &str) -> Result<(Regex, u64), String> {
    let (pattern, seconds) =
        line.value.trim().rsplit_once(' ').ok_or_else(|| line_error(line, name, "expected 'REGEX SECONDS'"))?;
    let seconds = seconds.parse().map_err(|_| line_error(line, name, "expected 'REGEX SECONDS'"))?;
    Ok((regex(line, name, pattern.trim())?, seconds))
}

/// Resolves a configured directory: relative paths are relative to the vassal's working directory (after
/// `chdir`), as in uWSGI; a directory that does not exist (yet) is kept as given and re-resolved per
/// request.
fn resolve(path: &str) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path))
}

impl StaticFiles {
    /// `None` when no static-file option is set.
    pub fn compile(config: &RequestPathConfig) -> Result<Option<Self>, String> {
        if config.static_files.is_empty() && !config.check_static_docroot {
            return Ok(None);
        }
        let mut files = StaticFiles {
            mappings: Vec::new(),
            docroot: config.check_static_docroot,
            index: Vec::new(),
            skip_ext: Vec::new(),
            safe: Vec::new(),
            expires: Vec::new(),
            expires_type: Vec::new(),
            gzip_all: config.static_gzip_all,
            gzip_dirs: Vec::new(),
            gzip_exts: Vec::new(),
            gzip_regexes: Vec::new(),
            mime: MimeTable::default(),
            honour_range: config.honour_range,
            serve_header: config.file_serve_header,
        };
        let mut maps = Vec::new();
        let mut maps2 = Vec::new();
        let mut mimefiles = Vec::new();
        for line in &config.static_files {
            let value = line.value.trim();
            let name = option_name(line.id);
            match line.id {
                OptionId::CheckStatic => {
                    files.mappings.push(Mapping { mount: String::new(), root: resolve(value), append_whole: false })
                }
                OptionId::StaticMap | OptionId::StaticMap2 => {
                    let (mount, dir) =
                        value.split_once('=').ok_or_else(|| line_error(line, name, "expected MOUNTPOINT=DIR"))?;
                    if dir.is_empty() {
                        return Err(line_error(line, name, "expected MOUNTPOINT=DIR"));
                    }
                    let mapping = Mapping {
                        mount: mount.to_owned(),
                        root: resolve(dir),
                        append_whole: line.id == OptionId::StaticMap2,
                    };
                    if !mapping.root.exists() {
                        tracing::warn!("{}: {name}: {} does not exist (yet)", line.origin, dir);
                    }
                    if line.id == OptionId::StaticMap {
                        maps.push(mapping)
                    } else {
                        maps2.push(mapping)
                    }
                }
                OptionId::StaticIndex => files.index.push(value.to_owned()),
                OptionId::StaticSkipExt => files.skip_ext.push(value.to_owned()),
                OptionId::StaticSafe => files.safe.push(resolve(value)),
                OptionId::StaticExpires
                | OptionId::StaticExpiresMtime
                | OptionId::StaticExpiresUri
                | OptionId::StaticExpiresUriMtime
                | OptionId::StaticExpiresPathInfo
                | OptionId::StaticExpiresPathInfoMtime => {
                    let (regex, seconds) = regex_seconds(line, name)?;
                    let on = match line.id {
                        OptionId::StaticExpires | OptionId::StaticExpiresMtime => ExpiresOn::FileName,
                        OptionId::StaticExpiresUri | OptionId::StaticExpiresUriMtime => ExpiresOn::Uri,
                        _ => ExpiresOn::PathInfo,
                    };
                    let from_mtime = matches!(
                        line.id,
                        OptionId::StaticExpiresMtime
                            | OptionId::StaticExpiresUriMtime
                            | OptionId::StaticExpiresPathInfoMtime
                    );
                    files.expires.push(Expires { on, regex, seconds, from_mtime });
                }
                OptionId::StaticExpiresType | OptionId::StaticExpiresTypeMtime => {
                    let (mime, seconds) =
                        value.split_once('=').ok_or_else(|| line_error(line, name, "expected TYPE=SECONDS"))?;
                    let seconds =
                        seconds.trim().parse().map_err(|_| line_error(line, name, "expected TYPE=SECONDS"))?;
                    files.expires_type.push((
                        mime.trim().to_owned(),
                        seconds,
                        line.id == OptionId::StaticExpiresTypeMtime,
                    ));
                }
                OptionId::StaticGzip => files.gzip_regexes.push(regex(line, name, value)?),
                OptionId::StaticGzipDir => {
                    // Compared with the resolved file name, so resolve it too (uWSGI leaves it as written).
                    let dir = resolve(value);
                    let mut dir = dir.to_string_lossy().into_owned();
                    if value.ends_with('/') && !dir.ends_with('/') {
                        dir.push('/');
                    }
                    files.gzip_dirs.push(dir)
                }
                OptionId::StaticGzipExt => files.gzip_exts.push(value.to_owned()),
                OptionId::Mimefile => mimefiles.push((value.to_owned(), line.origin.to_string())),
                _ => {}
            }
        }
        files.mappings.extend(maps);
        files.mappings.extend(maps2);
        files.mime = MimeTable::load(&mimefiles)?;
        Ok(Some(files))
    }

    pub fn mime(&self) -> &MimeTable {
        &self.mime
    }

    /// The file `path_info` maps to, if any: tried in `check-static`, `static-map`, `static-map2`,
    /// DOCUMENT_ROOT order; the first hit wins. Only GET and HEAD are served (others go to the app).
    pub fn find(&self, method: &str, path_info: &str, document_root: Option<&str>) -> Option<Found> {
        if method != "GET" && method != "HEAD" {
            return None;
        }
        if path_info.contains('\0') || self.skip_ext.iter().any(|ext| path_info.ends_with(ext.as_str())) {
            return None;
        }
        for mapping in &self.mappings {
            let rest = if mapping.mount.is_empty() {
                path_info
            } else {
                match path_info.strip_prefix(mapping.mount.as_str()) {
                    Some(rest) => rest,
                    None => continue,
                }
            };
            let relative = if mapping.append_whole { path_info } else { rest };
            if let Some(found) = self.serve_from(&mapping.root, relative) {
                return Some(found);
            }
        }
        if self.docroot {
            if let Some(root) = document_root.filter(|root| !root.is_empty()) {
                return self.serve_from(&resolve(root), path_info);
            }
        }
        None
    }

    /// A file named by a route (`static:PATH`): its own docroot, so only the realpath is checked.
    pub fn find_file(&self, path: &str) -> Option<Found> {
        let real = std::fs::canonicalize(path).ok()?;
        self.stat(real)
    }

    fn serve_from(&self, root: &Path, relative: &str) -> Option<Found> {
        // Resolved per request: the directory may appear after startup (collectstatic after boot) or be a
        // symlink switched by a deploy.
        let root = std::fs::canonicalize(root).ok()?;
        let candidate = if root.is_file() {
            root.clone()
        } else {
            let relative = relative.trim_start_matches('/');
            root.join(relative)
        };
        let real = std::fs::canonicalize(&candidate).ok()?;
        if !real.starts_with(&root) && !self.safe.iter().any(|safe| real.starts_with(safe)) {
            tracing::info!(
                "static file {} is outside {} and no static-safe path: refused",
                real.display(),
                root.display()
            );
            return None;
        }
        let found = self.stat(real)?;
        let name = found.path.to_string_lossy();
        if self.skip_ext.iter().any(|ext| name.ends_with(ext.as_str())) {
            return None;
        }
        Some(found)
    }

    fn stat(&self, real: PathBuf) -> Option<Found> {
        let meta = std::fs::metadata(&real).ok()?;
        if meta.is_file() {
            return Some(Found { path: real, meta });
        }
        if meta.is_dir() {
            for index in &self.index {
                let path = real.join(index);
                if let Ok(meta) = std::fs::metadata(&path) {
                    if meta.is_file() {
                        return Some(Found { path, meta });
                    }
                }
            }
        }
        None
    }

    /// Picks the precompressed variant (`.br`, then `.gz`) when the client accepts it and the options allow
    /// it for this file; returns the file to send and its `Content-Encoding`.
    pub fn variant(&self, found: Found, accept_encoding: Option<&str>) -> (Found, Option<&'static str>) {
        let accept = accept_encoding.unwrap_or("");
        let (gzip, br) = (accept.contains("gzip"), accept.contains("br"));
        if !gzip && !br {
            return (found, None);
        }
        let name = found.path.to_string_lossy().into_owned();
        let wanted = self.gzip_all
            || self.gzip_dirs.iter().any(|dir| name.starts_with(dir.as_str()))
            || self.gzip_exts.iter().any(|ext| name.ends_with(ext.as_str()))
            || self.gzip_regexes.iter().any(|regex| regex.is_match(&name));
        if !wanted {
            return (found, None);
        }
        for (enabled, suffix, encoding) in [(br, ".br", "br"), (gzip, ".gz", "gzip")] {
            if !enabled {
                continue;
            }
            let path = PathBuf::from(format!("{name}{suffix}"));
            if let Ok(meta) = std::fs::metadata(&path) {
                if meta.is_file() {
                    return (Found { path, meta }, Some(encoding));
                }
            }
        }
        (found, None)
    }
}

fn option_name(id: OptionId) -> &'static str {
    liege_config::OPTIONS.iter().find(|def| def.id == id).map_or("static option", |def| def.name)
}

/// A resolved file.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub meta: Metadata,
}

/// The request facts a static response depends on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub head: bool,
    pub if_modified_since: Option<&'a str>,
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub uri: &'a str,
    pub path_info: &'a str,
}

/// The file facts a static response depends on.
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// The file sent (the `.gz` one when precompressed).
    pub path: PathBuf,
    /// The name the MIME type and `static-expires` regexes are matched against (the original, not the `.gz`).
    pub name: String,
    pub size: u64,
    pub mtime: i64,
    pub mime: Option<String>,
    pub encoding: Option<&'static str>,
}

impl FileFacts {
    pub fn new(original: &Path, sent: &Found, mime: Option<String>, encoding: Option<&'static str>) -> Self {
        Self {
            path: sent.path.clone(),
            name: original.to_string_lossy().into_owned(),
            size: sent.meta.len(),
            mtime: sent.meta.mtime(),
            mime,
            encoding,
        }
    }
}

/// What to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// (offset, length) of the file to send; `None` for no body (HEAD, 304, 416, file-serve-mode).
    pub body: Option<(u64, u64)>,
}

/// A `Range: bytes=...` header against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Absent, malformed or several ranges: the whole file (allowed by RFC 9110).
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(header: &str, size: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Range::Whole };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((from, to)) = spec.trim().split_once('-') else { return Range::Whole };
    let (from, to) = (from.trim(), to.trim());
    let number = |text: &str| text.parse::<u64>().ok();
    match (from.is_empty(), to.is_empty()) {
        (true, true) => Range::Whole,
        // the last N bytes
        (true, false) => match number(to) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if size > 0 => Range::Part(size.saturating_sub(n), size - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Whole,
        },
        (false, _) => {
            let Some(start) = number(from) else { return Range::Whole };
            let end = if to.is_empty() { Some(u64::MAX) } else { number(to) };
            match end {
                None => Range::Whole,
                Some(end) if end < start => Range::Whole,
                Some(_) if start >= size => Range::Unsatisfiable,
                Some(end) => Range::Part(start, end.min(size - 1)),
            }
        }
    }
}

fn http_date(unix: i64) -> String {
    let time =
        if unix >= 0 { SystemTime::UNIX_EPOCH + Duration::from_secs(unix as u64) } else { SystemTime::UNIX_EPOCH };
    httpdate::fmt_http_date(time)
}

fn parse_date(text: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    Some(time.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64)
}

impl StaticFiles {
    /// The response for `file`, as uWSGI's `uwsgi_real_file_serve`: a 304 when not modified since
    /// If-Modified-Since; with `honour-range` a 206 for one satisfiable range (unless If-Range names an
    /// older date), a 416 for an unsatisfiable one; else a 200. `now` is the request's start (Unix seconds).
    pub fn plan(&self, file: &FileFacts, request: &Conditions<'_>, now: i64) -> Plan {
        if let Some(since) = request.if_modified_since.and_then(parse_date) {
            if file.mtime <= since {
                return Plan { status: 304, headers: Vec::new(), body: None };
            }
        }
        let mut status = 200;
        let mut span = (0, file.size);
        if self.honour_range {
            match request.range.map_or(Range::Whole, |range| parse_range(range, file.size)) {
                Range::Whole => {}
                Range::Unsatisfiable => {
                    return Plan {
                        status: 416,
                        headers: vec![("Content-Range", format!("bytes */{}", file.size))],
                        body: None,
                    }
                }
                Range::Part(start, end) => {
                    // If-Range with an ETag (not a date) or a date older than the file: the whole file.
                    let fresh = request.if_range.is_none_or(|date| parse_date(date).is_some_and(|d| d >= file.mtime));
                    if fresh {
                        status = 206;
                        span = (start, end - start + 1);
                    }
                }
            }
        }
        let mut headers = Vec::new();
        let expires = |seconds: u64, from_mtime: bool| {
            http_date(if from_mtime { file.mtime } else { now }.saturating_add(seconds as i64))
        };
        // uWSGI adds one Expires per family (file name, PATH_INFO, REQUEST_URI): the first matching rule of
        // each, the "now" rules before the mtime ones.
        for on in [ExpiresOn::FileName, ExpiresOn::PathInfo, ExpiresOn::Uri] {
            let subject = match on {
                ExpiresOn::FileName => file.name.as_str(),
                ExpiresOn::PathInfo => request.path_info,
                ExpiresOn::Uri => request.uri,
            };
            let rule = [false, true].into_iter().find_map(|mtime| {
                self.expires.iter().find(|e| e.on == on && e.from_mtime == mtime && e.regex.is_match(subject))
            });
            if let Some(rule) = rule {
                headers.push(("Expires", expires(rule.seconds, rule.from_mtime)));
            }
        }
        if let Some(encoding) = file.encoding {
            headers.push(("Content-Encoding", encoding.to_owned()));
            headers.push(("Vary", "Accept-Encoding".to_owned()));
        }
        if let Some(mime) = &file.mime {
            headers.push(("Content-Type", mime.clone()));
            let rule = [false, true].into_iter().find_map(|mtime| {
                self.expires_type.iter().find(|(m, _, from_mtime)| *from_mtime == mtime && m == mime)
            });
            if let Some((_, seconds, from_mtime)) = rule {
                headers.push(("Expires", expires(*seconds, *from_mtime)));
            }
        }
        if let Some(header) = self.serve_header {
            headers.push((header, file.path.to_string_lossy().into_owned()));
            headers.push(("Last-Modified", http_date(file.mtime)));
            headers.push(("Content-Length", "0".to_owned()));
            return Plan { status, headers, body: None };
        }
        headers.push(("Content-Length", span.1.to_string()));
        if status == 206 {
            headers.push(("Content-Range", format!("bytes {}-{}/{}", span.0, span.0 + span.1 - 1, file.size)));
        } else if self.honour_range {
            headers.push(("Accept-Ranges", "bytes".to_owned()));
        }
        headers.push(("Last-Modified", http_date(file.mtime)));
        let body = (!request.head).then_some(span);
        Plan { status, headers, body }
    }
}

#[cfg(test)]
mod tests;
