//! Per-vassal output capture: every line a vassal's processes print (master, workers, app prints,
//! tracebacks, request lines) goes to a ring buffer in memory (what the API tails), a log file per vassal
//! rotated by size, live subscribers (the stats API's stream), and the emperor's own stderr with the vassal's
//! name in front (what a uWSGI emperor user sees in the terminal or the journal).
//!
//! Why pipes and not `logto` in each vassal: the emperor sees every byte, including what a vassal prints
//! before it has parsed its config (an import error, a config error), so a failed start is always explained.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::broadcast;

/// Lines kept in memory per vassal.
pub const RING_LINES: usize = 2000;
/// Longer lines are cut into pieces of this size (a runaway print without newline must not eat memory).
pub const MAX_LINE: usize = 16 * 1024;
/// A log file is rotated when it would grow past this...
pub const ROTATE_BYTES: u64 = 16 * 1024 * 1024;
/// ...keeping this many old files (`NAME.log.1` is the most recent).
pub const KEEP_ROTATED: u32 = 3;
/// stderr lines kept per vassal process to explain a failed start.
pub const ERROR_TAIL_LINES: usize = 60;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    /// Written by the emperor about this vassal (spawned, exited, throttled...).
    Emperor,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Increases by one per line of this vassal: lets a client ask for what it has not seen yet.
    pub seq: u64,
    /// Unix time, seconds with millisecond precision.
    pub time: f64,
    pub stream: Stream,
    /// The vassal process (master pid) that printed it; `None` for the emperor's own lines.
    pub pid: Option<i32>,
    pub text: String,
}

struct Inner {
    ring: VecDeque<Arc<LogLine>>,
    next_seq: u64,
    file: Option<RotatingFile>,
}

/// Everything captured for one vassal.
pub struct LogStore {
    name: String,
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<LogLine>>,
}

impl LogStore {
    /// `log_dir` gets `NAME.log`; without it (or if it cannot be opened, which is logged) lines are kept in
    /// memory only.
    pub fn new(name: &str, log_dir: Option<&Path>) -> Self {
        let file = log_dir.and_then(|dir| {
            let path = dir.join(format!("{name}.log"));
            match RotatingFile::open(path.clone()) {
                Ok(file) => Some(file),
                Err(err) => {
                    tracing::warn!("vassal {name}: cannot open log file {}: {err}", path.display());
                    None
                }
            }
        });
        let (live, _) = broadcast::channel(1024);
        LogStore {
            name: name.to_owned(),
            inner: Mutex::new(Inner { ring: VecDeque::with_capacity(256), next_seq: 1, file }),
            live,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds lines read from a process's pipe; `raw` is those lines as bytes (newlines included), written to
    /// the file in one call.
    fn push(&self, stream: Stream, pid: Option<i32>, lines: Vec<String>, raw: &[u8]) {
        // The emperor's own notes reach its stderr through `tracing`, with a level.
        let echo_lines = stream != Stream::Emperor;
        if lines.is_empty() {
            return;
        }
        let time = unix_time();
        let mut echo = Vec::with_capacity(raw.len() + lines.len() * (self.name.len() + 3));
        let mut inner = self.lock();
        if let Some(file) = inner.file.as_mut() {
            file.write(raw);
        }
        for text in lines {
            echo.extend_from_slice(b"[");
            echo.extend_from_slice(self.name.as_bytes());
            echo.extend_from_slice(b"] ");
            echo.extend_from_slice(text.as_bytes());
            echo.push(b'\n');
            let line = Arc::new(LogLine { seq: inner.next_seq, time, stream, pid, text });
            inner.next_seq += 1;
            if inner.ring.len() >= RING_LINES {
                inner.ring.pop_front();
            }
            // No subscriber is the common case: then the line is not even offered.
            if self.live.receiver_count() > 0 {
                let _ = self.live.send(line.clone());
            }
            inner.ring.push_back(line);
        }
        drop(inner);
        if echo_lines {
            echo_to_stderr(echo);
        }
    }

    /// Records a line written by the emperor about this vassal (`liege emperor: ...` in the file).
    pub fn note(&self, text: &str) {
        let raw = format!("liege emperor: {text}\n");
        self.push(Stream::Emperor, None, vec![raw.trim_end().to_owned()], raw.as_bytes());
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<Arc<LogLine>> {
        let inner = self.lock();
        let skip = inner.ring.len().saturating_sub(n);
        inner.ring.iter().skip(skip).cloned().collect()
    }

    /// Every line captured from now on (for live streams); a slow receiver misses lines, never blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.live.subscribe()
    }

    pub fn file_path(&self) -> Option<PathBuf> {
        self.lock().file.as_ref().map(|file| file.path.clone())
    }
}

/// The last stderr lines of one vassal process, kept to explain why it failed.
pub type ErrorTail = Arc<Mutex<VecDeque<String>>>;

/// Bytes a vassal's output pipe holds (Linux's default is 64 KiB; 1 MiB is the unprivileged maximum).
pub const PIPE_BYTES: i32 = 1 << 20;

/// Gives a vassal's output pipe room for a burst (a busy app's request log): its workers write without
/// waiting for the emperor, and the emperor reads fewer, larger batches.
pub fn enlarge_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a pipe descriptor we own; a refusal (a lower pipe-max-size) leaves the default.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES) };
}

/// Reads a vassal process's stdout or stderr until EOF into `store` (and `tail`, for stderr).
pub async fn capture<R: AsyncRead + Unpin>(
    mut reader: R,
    store: Arc<LogStore>,
    stream: Stream,
    pid: i32,
    tail: Option<ErrorTail>,
) {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::debug!("reading vassal output: {err}");
                break;
            }
        };
        pending.extend_from_slice(&buffer[..n]);
        let (lines, consumed) = split_lines(&pending, false);
        if consumed > 0 {
            remember(&tail, &lines);
            store.push(stream, Some(pid), lines, &pending[..consumed]);
            pending.drain(..consumed);
        }
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        let (lines, _) = split_lines(&pending, true);
        remember(&tail, &lines);
        store.push(stream, Some(pid), lines, &pending);
    }
}

fn remember(tail: &Option<ErrorTail>, lines: &[String]) {
    let Some(tail) = tail else { return };
    let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Only the batch's last lines can stay in the tail: copying the others (a busy app's request log) would
    // be work thrown away at once.
    for line in &lines[lines.len().saturating_sub(ERROR_TAIL_LINES)..] {
        if tail.len() >= ERROR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
    }
}

/// Splits complete lines off `bytes`; returns them and how many bytes they used. A line longer than
/// [`MAX_LINE`] is cut. `all` also takes a final line without newline.
fn split_lines(bytes: &[u8], all: bool) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let rest = &bytes[start..];
        let (line_len, used) = match memchr::memchr(b'\n', rest) {
            Some(end) if end <= MAX_LINE => (end, end + 1),
            _ if rest.len() > MAX_LINE => (MAX_LINE, MAX_LINE),
            None if all => (rest.len(), rest.len()),
            _ => break,
        };
        let line = &rest[..line_len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Valid UTF-8 (nearly every line) is checked at SIMD speed and copied once.
        lines.push(match std::str::from_utf8(line) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(line).into_owned(),
        });
        start += used;
    }
    (lines, start)
}

/// A log file that starts over when it reaches [`ROTATE_BYTES`], keeping [`KEEP_ROTATED`] old ones.
struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    /// Set after a write error, so a full disk is reported once, not per line.
    failing: bool,
}

impl RotatingFile {
    fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { path, file, size, failing: false })
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.size > 0 && self.size + bytes.len() as u64 > ROTATE_BYTES {
            self.rotate();
        }
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                self.failing = false;
            }
            Err(err) => {
                if !self.failing {
                    tracing::warn!("cannot write {}: {err}", self.path.display());
                }
                self.failing = true;
            }
        }
    }

    fn rotate(&mut self) {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..KEEP_ROTATED).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        if let Err(err) = std::fs::rename(&self.path, numbered(1)) {
            tracing::warn!("cannot rotate {}: {err}", self.path.display());
        }
        match OpenOptions::new().create(true).append(true).open(&self.path) {
            Ok(file) => {
                self.file = file;
                self.size = 0;
            }
            // Keep writing to the renamed file rather than losing lines.
            Err(err) => tracing::warn!("cannot reopen {}: {err}", self.path.display()),
        }
    }
}

pub use crate::process::unix_time;

/// Vassal lines copied to the emperor's stderr by one thread, so a slow terminal never stalls the tokio
/// workers; when it cannot keep up, lines are dropped there (they are still in the ring and the file).
fn echo_to_stderr(bytes: Vec<u8>) {
    if cfg!(test) {
        return;
    }
    static ECHO: OnceLock<Option<std::sync::mpsc::SyncSender<Vec<u8>>>> = OnceLock::new();
    let sender = ECHO.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(4096);
        std::thread::Builder::new()
            .name("liege-echo".into())
            .spawn(move || {
                let stderr = std::io::stderr();
                for chunk in receiver {
                    let _ = stderr.lock().write_all(&chunk);
                }
            })
            .ok()
            .map(|_| sender)
    });
    if let Some(sender) = sender {
        let _ = sender.try_send(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_cuts_long_ones() {
        let (lines, used) = split_lines(b"a\r\nb\npartial", false);
        assert_eq!(lines, ["a", "b"]);
        assert_eq!(used, 5);
        let long = vec![b'x'; MAX_LINE + 10];
        let (lines, used) = split_lines(&long, false);
        assert_eq!(lines.len(), 1);
        assert_eq!(used, MAX_LINE);
        let (lines, _) = split_lines(b"end", true);
        assert_eq!(lines, ["end"]);
    }

    #[test]
    fn ring_keeps_the_last_lines_and_the_file_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::new("app", Some(dir.path()));
        for i in 0..(RING_LINES + 5) {
            let text = format!("line {i}");
            let raw = format!("{text}\n");
            store.push(Stream::Stdout, Some(1), vec![text], raw.as_bytes());
        }
        let tail = store.tail(3);
        assert_eq!(
            tail.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            [
                format!("line {}", RING_LINES + 2),
                format!("line {}", RING_LINES + 3),
                format!("line {}", RING_LINES + 4)
            ]
        );
        assert_eq!(tail[2].seq, RING_LINES as u64 + 5);
        assert_eq!(store.tail(usize::MAX).len(), RING_LINES);
        let text = std::fs::read_to_string(dir.path().join("app.log")).expect("log file");
        assert!(text.starts_with("line 0\n"));

        let mut file = RotatingFile::open(dir.path().join("big.log")).expect("open");
        let chunk = vec![b'y'; (ROTATE_BYTES / 2 + 1) as usize];
        file.write(&chunk);
        file.write(&chunk);
        assert!(dir.path().join("big.log.1").exists());
        assert_eq!(std::fs::metadata(dir.path().join("big.log")).expect("meta").len(), chunk.len() as u64);
    }
}
