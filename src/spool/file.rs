//! The spool file itself: encoding, naming, writing (temporary file + rename) and reading (with uWSGI's
//! fcntl lock), and the order `spooler-ordered` scans in. The encoding and ordering are pure and tested here.

use std::cmp::Ordering;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::SpoolBoard;

/// uWSGI's `UWSGI_MODIFIER_SPOOL_REQUEST`.
pub const MODIFIER_SPOOL: u8 = 17;
/// Spool files start with this.
pub const PREFIX: &str = "uwsgi_spoolfile_on_";
/// Temporary files (never picked up: neither the prefix nor a number).
const TEMP_PREFIX: &str = ".liege_spooling_";

/// The arguments of a task, in order.
pub type Args = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("[uwsgi-spooler] args buffer is limited to 64k, use the 'body' for bigger values")]
    TooBig,
    #[error("[uwsgi-spooler] no spooler available")]
    NoSpooler,
    #[error("[uwsgi-spooler] unable to find spooler \"{0}\"")]
    UnknownSpooler(String),
    #[error("[uwsgi-spooler] cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The uwsgi dict of `args` (each length a u16 LE); `None` if a key or value exceeds 64 KiB.
pub fn encode_args(args: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (key, value) in args {
        for part in [key, value] {
            out.extend_from_slice(&u16::try_from(part.len()).ok()?.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    Some(out)
}

/// Parses a uwsgi dict (uWSGI's `uwsgi_hooked_parse`): `None` if it is truncated.
pub fn decode_args(mut bytes: &[u8]) -> Option<Args> {
    let mut args = Vec::new();
    let take = |bytes: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let len = u16::from_le_bytes(*len) as usize;
        let part = rest.get(..len)?.to_vec();
        *bytes = &rest[len..];
        Some(part)
    };
    while !bytes.is_empty() {
        let key = take(&mut bytes)?;
        let value = take(&mut bytes)?;
        args.push((key, value));
    }
    Some(args)
}

/// The 4-byte uwsgi header of an arguments block of `len` bytes.
pub fn header(len: u16) -> [u8; 4] {
    let size = len.to_le_bytes();
    [MODIFIER_SPOOL, size[0], size[1], 0]
}

/// What the spooling code reads from the arguments (uWSGI's `spooler_req_parser_hook`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routing<'a> {
    pub spooler: Option<&'a [u8]>,
    pub priority: Option<&'a [u8]>,
    /// Unix seconds; 0 = now.
    pub at: u64,
}

pub fn routing(args: &[(Vec<u8>, Vec<u8>)]) -> Routing<'_> {
    let mut routing = Routing::default();
    for (key, value) in args {
        match key.as_slice() {
            b"spooler" => routing.spooler = Some(value),
            b"priority" => routing.priority = Some(value),
            // "at can be a float": the integer part, as uWSGI's uwsgi_str_num (leading digits).
            b"at" => {
                let digits = value
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')));
                routing.at = digits;
            }
            _ => {}
        }
    }
    routing
}

/// uWSGI's file name: `uwsgi_spoolfile_on_HOST_PID_COUNTER_RAND_SEC_USEC`.
pub fn file_name(host: &str, pid: u32, counter: u64, random: u32, sec: u64, usec: u32) -> String {
    format!("{PREFIX}{host}_{pid}_{counter}_{random}_{sec}_{usec}")
}

/// Whether a spooler looks at a directory entry (`spooler-ordered` also enters numbered directories).
pub fn is_candidate(name: &str, ordered: bool) -> bool {
    name.starts_with(PREFIX) || (ordered && is_number(name))
}

/// uWSGI's `is_a_number`: only digits (and not empty).
pub fn is_number(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// glibc's `versionsort` (strverscmp) for the names `spooler-ordered` scans: runs of digits compare by
/// value, so priority directories run `1`, `2`, `10`, and before the `uwsgi_spoolfile_on_` files.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..run(a)], &b[..run(b)]);
                // Fewer leading zeros first, then by value (length of the significant part, then digits).
                let trim = |d: &[u8]| d.iter().skip_while(|&&c| c == b'0').count();
                let order = trim(da)
                    .cmp(&trim(db))
                    .then_with(|| da[da.len() - trim(da)..].cmp(&db[db.len() - trim(db)..]))
                    .then_with(|| db.len().cmp(&da.len()));
                if order != Ordering::Equal {
                    return order;
                }
                a = &a[da.len()..];
                b = &b[db.len()..];
            }
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a task for the spooler its `spooler` argument names (default: the first) and wakes that
/// directory's idle spoolers: uWSGI's `uwsgi_spool_request`. Returns the file's path.
pub fn spool(board: &SpoolBoard, args: &[(Vec<u8>, Vec<u8>)], body: &[u8], quiet: bool) -> Result<PathBuf, SpoolError> {
    let encoded = encode_args(args).filter(|e| e.len() <= 0xffff).ok_or(SpoolError::TooBig)?;
    let routing = routing(args);
    let dir = match routing.spooler {
        None => board.dir_named(None).ok_or(SpoolError::NoSpooler)?,
        Some(name) => board
            .dir_named(Some(name))
            .ok_or_else(|| SpoolError::UnknownSpooler(String::from_utf8_lossy(name).into_owned()))?,
    };
    // (increased even if the request fails, as uWSGI)
    let counter = COUNTER.fetch_add(1, Relaxed) + 1;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let random = (now.subsec_nanos() ^ (counter as u32).wrapping_mul(2_654_435_761)) & 0x7fff_ffff;
    let name = file_name(host, std::process::id(), counter, random, now.as_secs(), now.subsec_micros());
    let mut target = dir.path.clone();
    if let Some(priority) = routing.priority.filter(|p| !p.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        target.push(std::ffi::OsStr::from_bytes(priority));
        // (no need to check for errors, as uWSGI: the open below fails if it is not there)
        let _ = std::fs::create_dir(&target);
    }
    let temp = target.join(format!("{TEMP_PREFIX}{name}"));
    let path = target.join(&name);
    let write_error = |source| SpoolError::Write { path: path.clone(), source };
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        let mut content = Vec::with_capacity(4 + encoded.len() + body.len());
        content.extend_from_slice(&header(encoded.len() as u16));
        content.extend_from_slice(&encoded);
        content.extend_from_slice(body);
        file.write_all(&content)?;
        if routing.at > 0 {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(routing.at);
            file.set_times(std::fs::FileTimes::new().set_accessed(at).set_modified(at))?;
        }
        drop(file);
        std::fs::rename(&temp, &path)?;
        Ok(content.len())
    })();
    let length = match written {
        Ok(length) => length,
        Err(err) => {
            let _ = std::fs::remove_file(&temp);
            return Err(write_error(err));
        }
    };
    if !quiet {
        tracing::info!("[spooler] written {length} bytes to file {}", path.display());
    }
    board.wake(&dir.path);
    Ok(path)
}

/// A task read from its file.
#[derive(Debug)]
pub struct Task {
    pub args: Args,
    pub body: Vec<u8>,
}

/// Why a file was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// Locked by another spooler, gone, or not a whole header: skip it for now.
    Skip,
    /// Its content is broken: uWSGI deletes it.
    Broken,
}

/// An open spool file, locked (fcntl, as uWSGI) until dropped.
pub struct Locked {
    /// Held, never read: the fcntl lock lasts as long as this descriptor is open.
    _file: std::fs::File,
}

/// Opens and locks `path` and reads its task: uWSGI's `uwsgi_spooler_read_header` + `_read_content`.
pub fn open_task(path: &Path) -> Result<(Locked, Task), ReadFailure> {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(|_| ReadFailure::Skip)?;
    if !try_lock(&file) {
        return Err(ReadFailure::Skip);
    }
    // "unlink() can destroy the lock": a spooler that ran it meanwhile removed it.
    if !path.exists() {
        return Err(ReadFailure::Skip);
    }
    let mut head = [0u8; 4];
    file.read_exact(&mut head).map_err(|_| ReadFailure::Skip)?;
    let size = u16::from_le_bytes([head[1], head[2]]) as usize;
    let total = std::fs::symlink_metadata(path).map_err(|_| ReadFailure::Skip)?.len() as usize;
    let mut args = vec![0u8; size];
    file.read_exact(&mut args).map_err(|_| ReadFailure::Broken)?;
    let mut body = vec![0u8; total.saturating_sub(size + 4)];
    file.read_exact(&mut body).map_err(|_| ReadFailure::Broken)?;
    let args = decode_args(&args).ok_or(ReadFailure::Broken)?;
    Ok((Locked { _file: file }, Task { args, body }))
}

/// Reads a task without keeping a lock (`uwsgi.spooler_get_task`).
pub fn read_task(path: &Path) -> Option<Task> {
    open_task(path).ok().map(|(_, task)| task)
}

/// uWSGI's `uwsgi_fcntl_is_locked`: takes a write lock on the whole file, false if another process holds one.
fn try_lock(file: &std::fs::File) -> bool {
    // SAFETY: a zeroed flock is valid; F_SETLK only reads it, on our own open descriptor.
    unsafe {
        let mut lock: libc::flock = std::mem::zeroed();
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) == 0
    }
}

/// The task files of `dir` (`uwsgi.spooler_jobs`): regular files with the prefix, in directory order.
pub fn jobs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Args {
        items.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn args_round_trip_in_uwsgi_encoding() {
        let args = pairs(&[("a", "1"), ("name", ""), ("", "x")]);
        let encoded = encode_args(&args).unwrap();
        assert_eq!(&encoded[..8], &[1, 0, b'a', 1, 0, b'1', 4, 0]);
        assert_eq!(decode_args(&encoded).unwrap(), args);
        assert_eq!(decode_args(&encoded[..encoded.len() - 1]), None, "truncated");
        assert_eq!(header(0x1234), [17, 0x34, 0x12, 0]);
        assert_eq!(encode_args(&[(vec![0; 70_000], vec![])]), None);
    }

    #[test]
    fn routing_keys() {
        let args = pairs(&[("spooler", "/s"), ("priority", "3"), ("at", "1700000000.75"), ("x", "y")]);
        let routing = routing(&args);
        assert_eq!(routing, Routing { spooler: Some(b"/s"), priority: Some(b"3"), at: 1_700_000_000 });
        assert_eq!(super::routing(&pairs(&[("at", "soon")])).at, 0);
    }

    #[test]
    fn names_and_candidates() {
        let name = file_name("box", 42, 7, 99, 1_700_000_000, 12);
        assert_eq!(name, "uwsgi_spoolfile_on_box_42_7_99_1700000000_12");
        assert!(is_candidate(&name, false));
        assert!(!is_candidate("10", false));
        assert!(is_candidate("10", true));
        assert!(!is_candidate(".liege_spooling_uwsgi_spoolfile_on_x", true));
        assert!(!is_candidate("1a", true));
    }

    #[test]
    fn version_order_puts_priorities_first_by_value() {
        let mut names = vec!["uwsgi_spoolfile_on_h_1_10_0_5_0", "10", "2", "uwsgi_spoolfile_on_h_1_9_0_5_0", "1"];
        names.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(names, vec!["1", "2", "10", "uwsgi_spoolfile_on_h_1_9_0_5_0", "uwsgi_spoolfile_on_h_1_10_0_5_0"]);
        assert_eq!(version_cmp("a", "a"), Ordering::Equal);
        assert_eq!(version_cmp("a", "ab"), Ordering::Less);
    }
}
