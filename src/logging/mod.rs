//! Log output. Everything goes to stderr, which the emperor (or a terminal, or `logto`) captures per vassal.
//!
//! Our own messages use `tracing` with a compact one-line format naming the process (`master`/`worker 3`),
//! so interleaved output of a whole process group stays attributable. Request log lines are buffered per
//! worker and written in batches: one `write(2)` per request would cost more than the app on hello-world
//! loads. App output (print, tracebacks) goes straight to fd 2 unbuffered.
//!
//! With uWSGI's logging options (`logger`, `log-route`, `log-encoder`, `log-drain`, `log-maxsize`...) fd 1
//! and 2 are a pipe to the log process ([`router`]), which decides where each line goes ([`dispatch`]) and
//! rewrites it ([`encode`]); request lines then have a pipe of their own when a `req-logger` is set.

pub mod dispatch;
pub mod encode;
pub mod router;

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// 0 = master, [`EMPEROR`] = the emperor, otherwise the worker id; shown in every line.
static ROLE: AtomicU32 = AtomicU32::new(0);
const EMPEROR: u32 = u32::MAX;
/// A spooler process (`spooler`).
const SPOOLER: u32 = u32::MAX - 1;

pub fn set_worker_role(worker_id: u32) {
    ROLE.store(worker_id, Ordering::Relaxed);
}

pub fn set_emperor_role() {
    ROLE.store(EMPEROR, Ordering::Relaxed);
}

/// Mules (mule family): shown as `liege mule N[pid]`. (`EMPEROR` and `SPOOLER` have this bit too: they are
/// told apart first.)
const MULE: u32 = 1 << 31;

pub fn set_mule_role(mule_id: u32) {
    ROLE.store(MULE | mule_id, Ordering::Relaxed);
}

pub fn set_spooler_role() {
    ROLE.store(SPOOLER, Ordering::Relaxed);
}

/// `log-date`: `None` no date; `Some(None)` C's ctime form; `Some(Some(format))` a strftime format. Set once
/// by the binary before logging starts (workers inherit it across fork).
static DATE_PREFIX: std::sync::OnceLock<Option<Option<std::ffi::CString>>> = std::sync::OnceLock::new();

/// uWSGI's `log-date` / `logdate`: every line of liege's own log starts with the date and ` - `, as uWSGI's
/// `uwsgi_log` does (`format` empty: `Mon Nov 23 21:00:00 2026`, C's ctime; else a strftime format).
/// Request log lines have their own `%(ltime)` / `%(ctime)` variables and are left alone, as in uWSGI.
pub fn set_date_prefix(format: Option<&str>) {
    let prefix = format.map(|format| {
        if format.is_empty() {
            None
        } else {
            // A NUL cannot come from an ini value; if it did, the ctime form is the sane fallback.
            std::ffi::CString::new(format).ok()
        }
    });
    let _ = DATE_PREFIX.set(prefix);
}

/// The `log-date` prefix for now, or nothing.
fn date_prefix() -> Option<String> {
    let prefix = DATE_PREFIX.get()?.as_ref()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let tm = local_time(now)?;
    let Some(format) = prefix else {
        return Some(format!("{} - ", format_ctime(&tm)));
    };
    let mut buffer = [0u8; 256];
    // SAFETY: strftime writes at most buffer.len() bytes into our buffer from a NUL-terminated format and a
    // tm we own; it returns the length written (0 if it did not fit).
    let written = unsafe { libc::strftime(buffer.as_mut_ptr().cast(), buffer.len(), format.as_ptr(), &tm) };
    Some(format!("{} - ", String::from_utf8_lossy(&buffer[..written])))
}

struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let role = ROLE.load(Ordering::Relaxed);
        let pid = std::process::id();
        let level = event.metadata().level();
        if let Some(prefix) = date_prefix() {
            writer.write_str(&prefix)?;
        }
        if role == 0 {
            write!(writer, "liege master[{pid}] {level}: ")?;
        } else if role == EMPEROR {
            write!(writer, "liege emperor[{pid}] {level}: ")?;
        } else if role == SPOOLER {
            write!(writer, "liege spooler[{pid}] {level}: ")?;
        } else if role & MULE != 0 {
            write!(writer, "liege mule {}[{pid}] {level}: ", role & !MULE)?;
        } else {
            write!(writer, "liege worker {role}[{pid}] {level}: ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the process-wide subscriber (`RUST_LOG`-style filter from `LIEGE_LOG`, default `info`).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIEGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(LineFormat)
        .try_init();
}

/// Writes bytes to stderr with as few syscalls as possible, retrying short writes.
pub fn write_raw(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// Writes one line to stderr in a single write (atomic for lines under PIPE_BUF even with many writers).
pub fn write_line(bytes: &[u8]) {
    let mut line = Vec::with_capacity(bytes.len() + 1);
    line.extend_from_slice(bytes);
    line.push(b'\n');
    write_raw(&line);
}

/// The request-log pipe of the log process (`req-logger`); request lines go to stderr without it.
static REQUEST_LOG_FD: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// Sends request lines to `fd` from now on (set once by [`router::start`], inherited by the workers).
pub fn set_request_log_fd(fd: OwnedFd) {
    let _ = REQUEST_LOG_FD.set(fd);
}

/// Writes a batch of request lines where they go: the request-log pipe, or stderr.
fn write_request_bytes(bytes: &[u8]) {
    match REQUEST_LOG_FD.get() {
        Some(fd) => {
            let mut rest = bytes;
            while !rest.is_empty() {
                // SAFETY: write(2) from our buffer to the pipe descriptor we own.
                let written = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
                if written < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                rest = &rest[written as usize..];
            }
        }
        None => write_raw(bytes),
    }
}

/// The local time now in a strftime `format` (`log-format-strftime`, encoder `${strftime:...}`); a result
/// longer than 64 KiB, or a format with a NUL, gives nothing.
pub fn strftime_now(format: &str) -> Vec<u8> {
    let Ok(format) = std::ffi::CString::new(format) else { return Vec::new() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let Some(tm) = local_time(now) else { return Vec::new() };
    let mut size = 256;
    while size <= 64 * 1024 {
        let mut buffer = vec![0u8; size];
        // SAFETY: strftime writes at most buffer.len() bytes into our buffer from a NUL-terminated format and
        // a tm we own; it returns the length written (0 if it did not fit, or if the result is empty).
        let written = unsafe { libc::strftime(buffer.as_mut_ptr().cast(), buffer.len(), format.as_ptr(), &tm) };
        if written > 0 || format.as_bytes().is_empty() {
            buffer.truncate(written);
            return buffer;
        }
        size *= 4;
    }
    Vec::new()
}

/// Opens `logto` and puts it on stdout and stderr, as uWSGI's `logto()`: appended to, or emptied first with
/// `log-truncate` on the first start (not on reloads); with `logfile-chown`, given to `uid`/`gid` (resolved
/// as the master drops privileges) so it stays writable after they are dropped.
pub fn redirect_to_logfile(
    path: &std::path::Path,
    truncate: bool,
    owner: Option<(Option<u32>, Option<u32>)>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("logto {}", path.display()))?;
    if truncate {
        file.set_len(0).with_context(|| format!("log-truncate {}", path.display()))?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, uid, gid).with_context(|| format!("logfile-chown {}", path.display()))?;
    }
    for target in [1, 2] {
        // SAFETY: dup2 onto the standard descriptors we own.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("logto");
        }
    }
    Ok(())
}

thread_local! {
    static REQUEST_LOG: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(16 * 1024));
}

/// Flush the request-log buffer once it holds this much (the emperor gives its vassals' pipes 1 MiB, so a
/// write this size rarely waits).
const REQUEST_LOG_FLUSH_BYTES: usize = 64 * 1024;

/// Appends a request log line (the closure writes it, without the newline) to this thread's buffer.
pub fn append_request_line(write: impl FnOnce(&mut Vec<u8>)) {
    REQUEST_LOG.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        write(&mut buffer);
        buffer.push(b'\n');
        if buffer.len() >= REQUEST_LOG_FLUSH_BYTES {
            write_request_bytes(&buffer);
            buffer.clear();
        }
    });
}

/// Writes out buffered request lines (called every few milliseconds by the worker and before it exits).
pub fn flush_request_log() {
    REQUEST_LOG.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        if !buffer.is_empty() {
            write_request_bytes(&buffer);
            buffer.clear();
        }
    });
}

/// Local-time text for a unix second; [`LocalClock`] caches it per second; tests
/// use a fixed one.
pub trait Clock {
    /// `Mon Nov 23 21:00:00 2026` (C `ctime` without the newline).
    fn ctime(&mut self, secs: u64, out: &mut Vec<u8>);
    /// `23/Nov/2026:21:00:00 +0100` (strftime `%d/%b/%Y:%H:%M:%S %z`, uWSGI's `%(ltime)`).
    fn ltime(&mut self, secs: u64, out: &mut Vec<u8>);
    /// Unix seconds now.
    fn now_secs(&mut self) -> u64;
}

/// Local-time text for request log lines, cached per second: formatting it (localtime_r) costs more than
/// the rest of a line, and thousands of requests share each second.
#[derive(Default)]
pub struct LocalClock {
    ctime: (u64, Vec<u8>),
    ltime: (u64, Vec<u8>),
}

impl LocalClock {
    pub fn new() -> Self {
        Self { ctime: (u64::MAX, Vec::new()), ltime: (u64::MAX, Vec::new()) }
    }
}

impl Clock for LocalClock {
    fn ctime(&mut self, secs: u64, out: &mut Vec<u8>) {
        if self.ctime.0 != secs {
            self.ctime = (secs, local_time(secs).map(|tm| format_ctime(&tm)).unwrap_or_default().into_bytes());
        }
        out.extend_from_slice(&self.ctime.1);
    }

    fn ltime(&mut self, secs: u64, out: &mut Vec<u8>) {
        if self.ltime.0 != secs {
            self.ltime = (secs, local_time(secs).map(|tm| format_ltime(&tm)).unwrap_or_default().into_bytes());
        }
        out.extend_from_slice(&self.ltime.1);
    }

    fn now_secs(&mut self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

fn local_time(secs: u64) -> Option<libc::tm> {
    let secs = secs as libc::time_t;
    // SAFETY: localtime_r fills the zeroed tm we own; no shared state.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return None;
        }
        Some(tm)
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Mon Nov 23 21:00:00 2026`, as C's ctime (and uWSGI's default request line) shows it.
fn format_ctime(tm: &libc::tm) -> String {
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday.clamp(0, 6) as usize],
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// `23/Nov/2026:21:00:00 +0100`: strftime `%d/%b/%Y:%H:%M:%S %z` in the C locale, uWSGI's `%(ltime)`.
fn format_ltime(tm: &libc::tm) -> String {
    let offset_minutes = tm.tm_gmtoff / 60;
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let offset_minutes = offset_minutes.abs();
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} {}{:02}{:02}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        sign,
        offset_minutes / 60,
        offset_minutes % 60
    )
}
