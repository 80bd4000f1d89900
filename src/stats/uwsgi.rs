//! The document uWSGI's stats server writes (`stats = ADDR`), field for field, so `uwsgitop`, `uwsgi_exporter`,
//! Telegraf's and Netdata's uWSGI collectors read a liege vassal as they read uWSGI. Units are uWSGI's: bytes
//! for `rss`/`vsz`/`tx`, microseconds for `running_time`/`avg_rt`, unix seconds for `last_spawn`.
//!
//! Unlike uWSGI's hand-written JSON, this is serialized by serde: always valid, whatever bytes a path holds.
//! Fields uWSGI fills from subsystems liege does not have (signals, locks, offloading, routing, static files)
//! are present for the parsers, with the value that is true here: there are none, so 0 or empty.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Document {
    pub version: String,
    /// Connections waiting in the accept queue of the first TCP socket (uWSGI reports the same).
    pub listen_queue: u64,
    /// Times an accept queue was found full.
    pub listen_queue_errors: u64,
    pub signal_queue: u64,
    /// Requests being served right now (busy workers).
    pub load: u64,
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub locks: Vec<std::collections::BTreeMap<String, u64>>,
    /// The `cache2` / `cache` caches, only when there are some (as uWSGI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caches: Option<Vec<crate::cache::StatsEntry>>,
    pub sockets: Vec<Socket>,
    pub workers: Vec<Worker>,
    /// The mules, only when there are some. uWSGI's document has no such list (its mules are in no stats);
    /// liege adds it after the workers, where readers that do not know it skip it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mules: Vec<Mule>,
    /// The spooler processes, only when there are some (as uWSGI, after the workers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spoolers: Vec<Spooler>,
}

/// One mule (liege's addition, see [`Document::mules`]); names as the workers' fields.
#[derive(Debug, Serialize)]
pub struct Mule {
    pub id: u32,
    /// 0 while it is not running (waiting to be respawned).
    pub pid: i32,
    /// What it runs: `mule = VALUE` as written (empty for a message-only mule).
    pub file: String,
    pub respawn_count: u64,
    pub last_spawn: u64,
    pub rss: u64,
    pub vsz: u64,
}

/// One spooler process in uWSGI's stats (`uwsgi_stats` of core/master_utils.c).
#[derive(Debug, Serialize)]
pub struct Spooler {
    pub dir: String,
    pub pid: u64,
    pub tasks: u64,
    pub respawns: u64,
    pub running: u64,
}

#[derive(Debug, Serialize)]
pub struct Socket {
    pub name: String,
    pub proto: String,
    pub queue: u64,
    pub max_queue: u64,
    pub shared: u64,
    pub can_offload: u64,
}

#[derive(Debug, Serialize)]
pub struct Worker {
    pub id: u32,
    pub pid: i32,
    pub accepting: u8,
    pub requests: u64,
    /// Requests in the last second (uWSGI: since the master's last cycle).
    pub delta_requests: u64,
    pub exceptions: u64,
    pub harakiri_count: u64,
    pub signals: u64,
    pub signal_queue: u64,
    /// `idle`, `busy`, `cheap` (not running: cheaper mode or between respawns), `pause` is never used.
    pub status: String,
    pub rss: u64,
    pub vsz: u64,
    pub running_time: u64,
    pub last_spawn: u64,
    pub respawn_count: u64,
    pub tx: u64,
    pub avg_rt: u64,
    pub apps: Vec<App>,
    pub cores: Vec<Core>,
}

#[derive(Debug, Serialize)]
pub struct App {
    pub id: u32,
    pub modifier1: u32,
    pub mountpoint: String,
    pub startup_time: u64,
    pub requests: u64,
    pub exceptions: u64,
    pub chdir: String,
}

/// liege serves each worker's requests from one event loop, so a worker has one core, holding its counters.
#[derive(Debug, Serialize)]
pub struct Core {
    pub id: u32,
    pub requests: u64,
    pub static_requests: u64,
    pub routed_requests: u64,
    pub offloaded_requests: u64,
    pub write_errors: u64,
    pub read_errors: u64,
    pub in_request: u8,
    pub vars: Vec<String>,
    pub req_info: std::collections::BTreeMap<String, u64>,
}

impl Worker {
    /// A worker with its app and core filled from the worker's own counters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        pid: i32,
        status: &str,
        requests: u64,
        exceptions: u64,
        running_time_us: u64,
        tx: u64,
    ) -> Worker {
        let serving = matches!(status, "idle" | "busy");
        Worker {
            id,
            pid,
            accepting: u8::from(serving),
            requests,
            delta_requests: 0,
            exceptions,
            harakiri_count: 0,
            signals: 0,
            signal_queue: 0,
            status: status.to_owned(),
            rss: 0,
            vsz: 0,
            running_time: running_time_us,
            last_spawn: 0,
            respawn_count: 0,
            tx,
            avg_rt: running_time_us.checked_div(requests).unwrap_or(0),
            apps: vec![App {
                id: 0,
                modifier1: 0,
                mountpoint: String::new(),
                startup_time: 0,
                requests,
                exceptions,
                chdir: String::new(),
            }],
            cores: vec![Core {
                id: 0,
                requests,
                static_requests: 0,
                routed_requests: 0,
                offloaded_requests: 0,
                write_errors: 0,
                read_errors: 0,
                in_request: u8::from(status == "busy"),
                vars: Vec::new(),
                req_info: std::collections::BTreeMap::new(),
            }],
        }
    }
}

/// The document of uWSGI's emperor stats server (`emperor-stats = ADDR`): the emperor and one entry per vassal.
/// `uwsgitop ADDR` shows it as its emperor view.
#[derive(Debug, Serialize)]
pub struct EmperorDocument {
    pub version: String,
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    /// The watched directories.
    pub emperor: Vec<String>,
    pub emperor_tyrant: u8,
    /// Vassals waiting out a crash-loop backoff.
    pub throttle_level: u64,
    pub vassals: Vec<EmperorVassal>,
    pub blacklist: Vec<String>,
}

/// A vassal as uWSGI's emperor stats show it. Times are unix seconds (0: never).
#[derive(Debug, Serialize)]
pub struct EmperorVassal {
    /// The vassal file's name (`app.ini`).
    pub id: String,
    pub pid: i32,
    /// When the serving process started.
    pub born: u64,
    /// Modification time of the vassal file.
    pub last_mod: u64,
    pub last_heartbeat: u64,
    /// 1 when the vassal is serving and reporting (uWSGI: it has sent its first heartbeat).
    pub loyal: u8,
    pub ready: u8,
    pub accepting: u8,
    pub last_loyal: u64,
    pub last_ready: u64,
    pub last_accepting: u64,
    /// When the emperor first started it, and when it last did.
    pub first_run: u64,
    pub last_run: u64,
    /// 1 while it crash-loops (throttled) or cannot start.
    pub cursed: u8,
    pub zerg: u8,
    pub on_demand: String,
    pub uid: u32,
    pub gid: u32,
    pub monitor: String,
    pub respawns: u64,
}

/// Accept-queue length and limit of a listening TCP socket (`tcpi_unacked` / `tcpi_sacked` of `TCP_INFO` on a
/// listener, the numbers `ss -lnt` shows); `None` for other sockets.
/// `TCP_LISTEN` of the kernel's `enum tcp_state` (not exported by the libc crate).
const TCP_LISTEN: u8 = 10;

pub fn listen_queue(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is a valid borrowed descriptor; `info` and `len` are live locals of the size passed, and the
    // kernel writes at most `len` bytes (a non-TCP socket just makes the call fail).
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0 && info.tcpi_state == TCP_LISTEN).then(|| (u64::from(info.tcpi_unacked), u64::from(info.tcpi_sacked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_valid_json_whatever_the_paths() {
        let document = Document {
            version: "liege-0".into(),
            listen_queue: 0,
            listen_queue_errors: 0,
            signal_queue: 0,
            load: 0,
            pid: 1,
            uid: 0,
            gid: 0,
            cwd: "/srv/\"quoted\"\\dir\n".into(),
            locks: Vec::new(),
            caches: None,
            sockets: vec![],
            workers: vec![Worker::new(1, 2, "busy", 10, 1, 1000, 55)],
            mules: Vec::new(),
            spoolers: vec![],
        };
        let text = serde_json::to_string(&document).expect("json");
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid");
        assert_eq!(back["cwd"], "/srv/\"quoted\"\\dir\n");
        assert!(back.get("mules").is_none(), "no mules, no key (as uWSGI's document)");
        assert_eq!(back["workers"][0]["avg_rt"], 100);
        assert_eq!(back["workers"][0]["cores"][0]["in_request"], 1);
    }

    #[test]
    fn listen_queue_of_a_tcp_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        use std::os::fd::AsFd;
        let (queued, limit) = listen_queue(listener.as_fd()).expect("tcp info");
        assert_eq!(queued, 1);
        assert!(limit > 0);
        let (unix, _) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(listen_queue(unix.as_fd()), None);
    }
}
