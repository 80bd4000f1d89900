//! The log process: uWSGI's "log master", for the logging family of options (`logger`, `req-logger`,
//! `log-route`, `log-encoder`, `log-drain`, `log-filter`, `log-maxsize`, `touch-logrotate`, `log-master`...).
//!
//! When one of them is set, the master starts this process before anything else: the master's stdout and
//! stderr (which the workers, the app and its subprocesses inherit) become a pipe it reads, and request
//! lines get a pipe of their own when there is a `req-logger`. It splits the streams into lines, asks
//! [`super::dispatch`] where each goes, runs the encoders and writes to the loggers; it also rotates the
//! `logto` file. uWSGI does this in the master process itself; a separate process keeps the master's loop
//! free of log I/O and survives a master crash long enough to write its last words.
//!
//! Lifetime: the process is a grandchild of the master (so the master's child reaping never sees it) in the
//! same process group, ignores the terminal's signals, and exits when every writer has closed the pipes (the
//! master, its workers and their subprocesses are gone), after writing what was left. On a reload the
//! re-executed master starts a new one; the old one drains the old workers and exits. The original output
//! survives the exec as the descriptor named by `LIEGE_LOG_ORIGINAL_FD`, so reloads never chain routers.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use liege_config::logs::{EncoderSpec, LogRouting, LoggerSpec, LoggerTarget};
use liege_config::VassalConfig;

use super::dispatch::{Destination, Rules};
use super::encode::{self, LocalClock};

/// Names the (non close-on-exec) descriptor of the original output across a reload's exec.
const ORIGINAL_FD_ENV: &str = "LIEGE_LOG_ORIGINAL_FD";
/// Longest line kept whole; a longer one without a newline is written in pieces of this size.
const MAX_LINE: usize = 64 * 1024;

/// Starts the log process if the config asks for one. Call once, early, while the master is single-threaded
/// and before it opens sockets or loads Python (the child closes every descriptor it does not need anyway).
pub fn start(config: &VassalConfig) -> anyhow::Result<()> {
    let routing = &config.logs;
    if !routing.needs_router() {
        return Ok(());
    }
    let general_rules = Rules::general(routing).context("log routes")?;
    let request_rules = Rules::requests(routing).context("log request routes")?;
    let original = original_output(config.logto.is_some() || config.daemonize.is_some())?;
    let (general_read, general_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("log pipe")?;
    let request_pipe = if routing.req_loggers.is_empty() {
        None
    } else {
        Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("request log pipe")?)
    };
    enlarge_pipe(general_write.as_raw_fd());
    if let Some((_, write)) = &request_pipe {
        enlarge_pipe(write.as_raw_fd());
    }
    let logfile = config.logto.clone().or_else(|| config.daemonize.clone());
    // SAFETY: the master is single-threaded here (no other thread can hold a lock the child would need), and
    // the child only runs this module's code before exiting with `_exit`.
    match unsafe { nix::unistd::fork() }.context("fork of the log process")? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: as above; the intermediate child forks once more and leaves at once.
            if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
                let keep = [
                    Some(original.as_raw_fd()),
                    Some(general_read.as_raw_fd()),
                    request_pipe.as_ref().map(|(read, _)| read.as_raw_fd()),
                ];
                drop(general_write);
                let request_read = request_pipe.map(|(read, write)| {
                    drop(write);
                    read
                });
                close_all_but(&keep);
                // Its own stdout/stderr may be the previous log process's pipe (after a reload): holding
                // that open would keep the previous one alive, so they become the original output too.
                for target in [1, 2] {
                    // SAFETY: dup2 onto this process's own standard descriptors.
                    unsafe { libc::dup2(original.as_raw_fd(), target) };
                }
                ignore_signals();
                let mut streams = vec![Stream::new(general_read, general_rules, &routing.loggers, &routing.encoders)];
                if let Some(read) = request_read {
                    streams.push(Stream::new(read, request_rules, &routing.req_loggers, &routing.req_encoders));
                }
                Router::new(routing, original, logfile).run(streams);
            }
            // SAFETY: _exit skips the parent's atexit handlers and destructors, which are not ours to run.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let _ = nix::sys::wait::waitpid(child, None);
        }
    }
    // The master keeps the original output open for as long as it lives: the descriptor number is in
    // LIEGE_LOG_ORIGINAL_FD for the master a reload re-executes (closing it here would let that number be
    // reused by a socket, which the next log process would then take for its output).
    let _ = std::os::fd::IntoRawFd::into_raw_fd(original);
    drop(general_read);
    for target in [1, 2] {
        // SAFETY: dup2 onto the standard descriptors this process owns.
        if unsafe { libc::dup2(general_write.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("log pipe onto stdout/stderr");
        }
    }
    drop(general_write);
    if let Some((read, write)) = request_pipe {
        drop(read);
        super::set_request_log_fd(write);
    }
    Ok(())
}

/// The output lines go to when no logger takes them: the `logto` file freshly opened on fd 2, or what the
/// first master had (kept across reloads), else a duplicate of fd 2 (a terminal, the emperor's pipe).
fn original_output(fresh_logfile: bool) -> anyhow::Result<OwnedFd> {
    if !fresh_logfile {
        if let Some(fd) = std::env::var(ORIGINAL_FD_ENV).ok().and_then(|text| text.parse::<RawFd>().ok()) {
            // SAFETY: F_GETFD only asks whether the descriptor is open.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
                // SAFETY: the previous master left this descriptor open for us and nothing else owns it.
                let inherited = unsafe { OwnedFd::from_raw_fd(fd) };
                return Ok(inherited);
            }
        }
    }
    // SAFETY: F_DUPFD on fd 2; the new descriptor is ours. Not close-on-exec on purpose (see the module docs).
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("dup of stderr for the log process");
    }
    #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
    std::env::set_var(ORIGINAL_FD_ENV, fd.to_string());
    // SAFETY: fd was just created by F_DUPFD and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// 1 MiB pipes, as the emperor gives its vassals, so a burst of lines rarely blocks a worker.
fn enlarge_pipe(fd: RawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe we own; failure only leaves the default size.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
}

fn close_all_but(keep: &[Option<RawFd>]) {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in open {
        if fd > 2 && !keep.contains(&Some(fd)) {
            // SAFETY: closing a descriptor this freshly forked process does not use (the read_dir handle is
            // already closed).
            unsafe { libc::close(fd) };
        }
    }
}

/// The terminal's Ctrl-C and the emperor's signals are meant for the master; this process exits by EOF.
fn ignore_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE, libc::SIGUSR1] {
        // SAFETY: setting a signal to SIG_IGN installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

/// A logger's open output.
enum Sink {
    File { file: Option<File>, path: PathBuf, maxsize: Option<u64>, backupname: Option<PathBuf> },
    Fd(RawFd),
    Original,
    Syslog { ident: std::ffi::CString, facility: libc::c_int },
    Udp(std::net::UdpSocket, String),
    Unix(std::os::unix::net::UnixDatagram, PathBuf),
}

impl Sink {
    fn open(spec: &LoggerSpec) -> Sink {
        match &spec.target {
            LoggerTarget::File { path, maxsize, backupname } => Sink::File {
                file: open_append(path).map_err(|err| eprintln!("liege log: {}: {err}", path.display())).ok(),
                path: path.clone(),
                maxsize: *maxsize,
                backupname: backupname.clone(),
            },
            LoggerTarget::Fd(fd) => Sink::Fd(*fd),
            LoggerTarget::Stdio => Sink::Original,
            LoggerTarget::Syslog { ident, facility } => Sink::Syslog {
                ident: std::ffi::CString::new(ident.as_str()).unwrap_or_default(),
                facility: syslog_facility(facility),
            },
            LoggerTarget::Socket(address) if address.contains('/') || !address.contains(':') => {
                match std::os::unix::net::UnixDatagram::unbound() {
                    Ok(socket) => Sink::Unix(socket, PathBuf::from(address)),
                    Err(_) => Sink::Original,
                }
            }
            LoggerTarget::Socket(address) => {
                match std::net::UdpSocket::bind(if address.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" }) {
                    Ok(socket) => Sink::Udp(socket, address.clone()),
                    Err(_) => Sink::Original,
                }
            }
        }
    }
}

fn syslog_facility(name: &str) -> libc::c_int {
    match name {
        "auth" | "security" => libc::LOG_AUTH,
        "authpriv" => libc::LOG_AUTHPRIV,
        "cron" => libc::LOG_CRON,
        "ftp" => libc::LOG_FTP,
        "kern" => libc::LOG_KERN,
        "lpr" => libc::LOG_LPR,
        "mail" => libc::LOG_MAIL,
        "news" => libc::LOG_NEWS,
        "syslog" => libc::LOG_SYSLOG,
        "user" => libc::LOG_USER,
        "uucp" => libc::LOG_UUCP,
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => libc::LOG_DAEMON,
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

/// One stream being read: its pipe, the partial line read so far, its rules, loggers and encoders.
struct Stream {
    pipe: File,
    pending: Vec<u8>,
    open: bool,
    rules: Rules,
    sinks: Vec<Sink>,
    ids: Vec<Option<String>>,
    encoders: Vec<EncoderSpec>,
}

impl Stream {
    fn new(pipe: OwnedFd, rules: Rules, loggers: &[LoggerSpec], encoders: &[EncoderSpec]) -> Self {
        Stream {
            pipe: File::from(pipe),
            pending: Vec::new(),
            open: true,
            rules,
            sinks: loggers.iter().map(Sink::open).collect(),
            ids: loggers.iter().map(|logger| logger.id.clone()).collect(),
            encoders: encoders.to_vec(),
        }
    }
}

/// The original output and the `logto` file's rotation state.
struct Router {
    original: File,
    logfile: Option<PathBuf>,
    maxsize: Option<u64>,
    backupname: Option<PathBuf>,
    touch_logrotate: Vec<(PathBuf, Option<SystemTime>)>,
    touch_logreopen: Vec<(PathBuf, Option<SystemTime>)>,
}

impl Router {
    fn new(routing: &LogRouting, original: OwnedFd, logfile: Option<PathBuf>) -> Self {
        let touched = |paths: &[PathBuf]| paths.iter().map(|path| (path.clone(), modified(path))).collect();
        Router {
            original: File::from(original),
            logfile,
            maxsize: routing.maxsize,
            backupname: routing.backupname.clone(),
            touch_logrotate: touched(&routing.touch_logrotate),
            touch_logreopen: touched(&routing.touch_logreopen),
        }
    }

    fn run(&mut self, mut streams: Vec<Stream>) {
        let mut buffer = vec![0u8; MAX_LINE];
        let mut destinations = Vec::new();
        let mut last_check = Instant::now();
        while streams.iter().any(|stream| stream.open) {
            let mut fds: Vec<libc::pollfd> = streams
                .iter()
                .map(|stream| libc::pollfd {
                    fd: if stream.open { stream.pipe.as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: fds is a valid array of pollfd for the duration of the call.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
            if ready > 0 {
                for (stream, fd) in streams.iter_mut().zip(&fds) {
                    if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                        continue;
                    }
                    match std::io::Read::read(&mut stream.pipe, &mut buffer) {
                        Ok(0) | Err(_) => {
                            stream.open = false;
                            if !stream.pending.is_empty() {
                                stream.pending.push(b'\n');
                                let line = std::mem::take(&mut stream.pending);
                                self.deliver(stream, &line, &mut destinations);
                            }
                        }
                        Ok(read) => self.feed(stream, &buffer[..read], &mut destinations),
                    }
                }
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                self.check_touches();
            }
        }
    }

    /// Splits what was read into lines (a partial one waits for the rest, up to [`MAX_LINE`]).
    fn feed(&mut self, stream: &mut Stream, bytes: &[u8], destinations: &mut Vec<Destination>) {
        let mut rest = bytes;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            if stream.pending.is_empty() {
                self.deliver(stream, &rest[..=end], destinations);
            } else {
                stream.pending.extend_from_slice(&rest[..=end]);
                let line = std::mem::take(&mut stream.pending);
                self.deliver(stream, &line, destinations);
            }
            rest = &rest[end + 1..];
        }
        stream.pending.extend_from_slice(rest);
        if stream.pending.len() >= MAX_LINE {
            stream.pending.push(b'\n');
            let line = std::mem::take(&mut stream.pending);
            self.deliver(stream, &line, destinations);
        }
    }

    fn deliver(&mut self, stream: &mut Stream, line: &[u8], destinations: &mut Vec<Destination>) {
        stream.rules.destinations(line, destinations);
        for destination in destinations.iter() {
            match *destination {
                Destination::Raw => {
                    let encoded = encode::encode(&stream.encoders, None, line, &LocalClock);
                    self.write_original(&encoded);
                }
                Destination::Logger(index) => {
                    let id = stream.ids.get(index).and_then(|id| id.as_deref());
                    let encoded = encode::encode(&stream.encoders, id, line, &LocalClock);
                    if let Some(sink) = stream.sinks.get_mut(index) {
                        self.write_sink(sink, &encoded);
                    }
                }
            }
        }
    }

    fn write_original(&mut self, bytes: &[u8]) {
        let _ = self.original.write_all(bytes);
        if let (Some(maxsize), Some(logfile)) = (self.maxsize, &self.logfile) {
            let size = self.original.metadata().map_or(0, |meta| meta.len());
            if size > maxsize && self.original.metadata().is_ok_and(|meta| meta.is_file()) {
                let logfile = logfile.clone();
                let backup = self.backupname.clone();
                if let Some(file) = rotate(&mut self.original, &logfile, backup.as_deref(), size) {
                    self.original = file;
                }
            }
        }
    }

    fn write_sink(&mut self, sink: &mut Sink, bytes: &[u8]) {
        match sink {
            Sink::Original => self.write_original(bytes),
            Sink::File { file: Some(file), path, maxsize, backupname } => {
                let _ = file.write_all(bytes);
                if let Some(maxsize) = maxsize {
                    let size = file.metadata().map_or(0, |meta| meta.len());
                    if size > *maxsize {
                        if let Some(new) = rotate(file, path, backupname.as_deref(), size) {
                            *file = new;
                        }
                    }
                }
            }
            Sink::File { file: None, .. } => {}
            Sink::Fd(fd) => {
                // SAFETY: write(2) from our buffer to a descriptor the config named; a bad fd only fails.
                unsafe { libc::write(*fd, bytes.as_ptr().cast(), bytes.len()) };
            }
            Sink::Syslog { ident, facility } => {
                let message = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                let message =
                    std::ffi::CString::new(message.iter().map(|&b| if b == 0 { b' ' } else { b }).collect::<Vec<u8>>())
                        .unwrap_or_default();
                // SAFETY: ident and message are NUL-terminated strings that outlive the calls; "%s" takes one.
                unsafe {
                    libc::openlog(ident.as_ptr(), 0, *facility);
                    libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), message.as_ptr());
                }
            }
            Sink::Udp(socket, address) => {
                let _ = socket.send_to(bytes, address.as_str());
            }
            Sink::Unix(socket, path) => {
                let _ = socket.send_to(bytes, &*path);
            }
        }
    }

    /// `touch-logrotate` / `touch-logreopen`, checked once a second as uWSGI's master does.
    fn check_touches(&mut self) {
        let rotate_now = touched(&mut self.touch_logrotate);
        let reopen_now = touched(&mut self.touch_logreopen);
        let Some(logfile) = self.logfile.clone() else { return };
        if rotate_now {
            let size = self.original.metadata().map_or(0, |meta| meta.len());
            let backup = self.backupname.clone();
            if let Some(file) = rotate(&mut self.original, &logfile, backup.as_deref(), size) {
                self.original = file;
            }
        } else if reopen_now {
            let size = self.original.metadata().map_or(0, |meta| meta.len());
            let _ = writeln!(self.original, "[{}] logsize: {size}, triggering log-reopen...", unix_now());
            match open_append(&logfile) {
                Ok(mut file) => {
                    let _ = writeln!(file, "[{}] {} reopened.", unix_now(), logfile.display());
                    self.original = file;
                }
                Err(err) => {
                    let _ = writeln!(self.original, "liege log: cannot reopen {}: {err}", logfile.display());
                }
            }
        }
    }
}

fn touched(files: &mut [(PathBuf, Option<SystemTime>)]) -> bool {
    let mut any = false;
    for (path, seen) in files.iter_mut() {
        let now = modified(path);
        if now.is_some() && now != *seen {
            any = true;
        }
        *seen = now;
    }
    any
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// uWSGI's `uwsgi_log_do_rotate`: a last line in the old file, the file renamed to `backupname` (default
/// `FILE.UNIXTIME`), a new empty one opened in its place. Returns the new file.
fn rotate(current: &mut File, logfile: &Path, backupname: Option<&Path>, size: u64) -> Option<File> {
    let backup = backupname.map(Path::to_path_buf).unwrap_or_else(|| rotated_name(logfile, unix_now()));
    let _ = writeln!(current, "logsize: {size}, triggering rotation to {}...", backup.display());
    if let Err(err) = std::fs::rename(logfile, &backup) {
        let _ = writeln!(current, "liege log: unable to rotate log: rename: {err}");
        return None;
    }
    // The old name is free after the rename: appending to it starts a new, empty file.
    match open_append(logfile) {
        Ok(file) => Some(file),
        Err(err) => {
            let _ = writeln!(current, "liege log: cannot open {} after rotation: {err}", logfile.display());
            None
        }
    }
}

/// `FILE.UNIXTIME`, the rotated name without `log-backupname`.
pub fn rotated_name(logfile: &Path, unix: u64) -> PathBuf {
    let mut name = logfile.as_os_str().to_owned();
    name.push(format!(".{unix}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_renames_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let mut file = open_append(&log).unwrap();
        file.write_all(b"old line\n").unwrap();
        let backup = dir.path().join("app.log.old");
        let mut new = rotate(&mut file, &log, Some(&backup), 9).unwrap();
        new.write_all(b"new line\n").unwrap();
        let old = std::fs::read_to_string(&backup).unwrap();
        assert!(old.starts_with("old line\nlogsize: 9, triggering rotation to "), "{old}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "new line\n");
        assert_eq!(rotated_name(Path::new("/var/log/x.log"), 17), PathBuf::from("/var/log/x.log.17"));
    }

    #[test]
    fn touches_fire_on_change_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("touch");
        let mut files = vec![(path.clone(), None)];
        assert!(!touched(&mut files));
        std::fs::write(&path, "").unwrap();
        assert!(touched(&mut files));
        assert!(!touched(&mut files));
    }
}
