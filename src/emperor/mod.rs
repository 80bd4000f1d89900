//! The emperor: `liege emperor DIR` (or uWSGI's `liege --emperor DIR`) runs one vassal per `*.ini` file in
//! DIR. Drop a file to deploy, touch it to reload, delete it to stop.
//!
//! This process runs tokio (multi-thread) and never forks without exec: vassals are `liege vassal FILE`
//! processes of the same binary. The pieces, one module each:
//!
//! - [`scan`]: the directory listing and each file's identity; notify events only trigger a rescan, which
//!   also runs every [`RESCAN_EVERY`].
//! - [`vassal`]: one supervisor task per vassal (the lifecycle state machine) and one task per vassal process.
//! - [`sockets`]: listening sockets the emperor owns and hands down by fd, and the stable port book.
//! - [`logs`]: each vassal's output, in a ring buffer, a rotated log file, and the emperor's stderr.
//! - [`throttle`]: exponential backoff for crash loops.
//! - [`registry`]: the state shared with the HTTP API ([`api`]).
//! - [`orphans`]: as PID 1 (a container) or with `emperor-subreaper`, reaping the orphans reparented to it.
//!
//! Signals: SIGTERM stops every vassal gracefully, then exits (a second SIGTERM or a SIGINT makes it quick);
//! SIGINT/SIGQUIT stop them quickly; SIGHUP reloads every vassal gracefully.
//!
//! `emperor-required-heartbeat` (default 30 s) restarts a vassal master silent that long. Tuning without options
//! yet (environment, seconds): `LIEGE_EMPEROR_START_TIMEOUT` (default 120: a vassal not ready that long after
//! it started is a failed start), `LIEGE_EMPEROR_CONCURRENT_STARTS` (default 2 per CPU, at least 4).

pub mod api;
pub mod logs;
pub mod orphans;
pub mod registry;
pub mod scan;
pub mod sockets;
pub mod stats_server;
pub mod vassal;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use liege_config::EmperorConfig;
use notify::Watcher;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;

use registry::{Command, Registry, VassalEntry, VassalShared};
use scan::{Change, KnownVersion};

/// The directory is rescanned this often even without any file-system event.
pub const RESCAN_EVERY: Duration = Duration::from_secs(2);
/// After a file-system event, wait this long for the burst to end before rescanning (at most
/// [`SETTLE_MAX`] after the first event).
const SETTLE: Duration = Duration::from_millis(60);
const SETTLE_MAX: Duration = Duration::from_millis(500);
/// Extra time the emperor gives its vassals to stop on SIGTERM beyond their own deadlines.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Settings every vassal supervisor reads.
pub struct Context {
    /// The vassal directory (absolute); also the vassals' working directory, as with uWSGI. With a glob
    /// ([`Self::pattern`]), the emperor's working directory, where uWSGI's glob monitor runs vassals.
    pub dir: PathBuf,
    /// `emperor = PATTERN`: the vassals are the `*.ini` files matching it (absolute), under [`Self::watched`].
    pub pattern: Option<String>,
    /// The directory watched for changes: the vassal directory, or recursively the pattern's fixed part.
    pub watched: PathBuf,
    pub run_dir: PathBuf,
    pub log_dir: PathBuf,
    /// What starts a vassal by default (issue 13): the liege binary, or the interpreter that loaded liege's
    /// extension module; each vassal's `python`/`virtualenv` may pick another (`crate::launch::choose`).
    pub program: crate::launch::Program,
    pub includes: Vec<PathBuf>,
    pub vassal_set: Vec<(String, String)>,
    pub throttle_base: Duration,
    pub throttle_max: Duration,
    pub heartbeat_timeout: Duration,
    pub start_timeout: Duration,
    pub ports: Mutex<sockets::PortBook>,
    pub start_slots: Arc<Semaphore>,
    pub registry: Arc<Registry>,
    /// `emperor-tyrant`: each vassal runs as the owner of its file.
    pub tyrant: Option<liege_config::Tyrant>,
    /// The vassal processes the emperor spawned, which the orphan reaper must leave to their waiters.
    pub children: Arc<orphans::Children>,
}

/// Runs the emperor with its command line (argv without the program name, with or without the leading
/// `emperor`/`--emperor`); returns the process exit code.
pub fn run(args: &[OsString]) -> ExitCode {
    crate::logging::set_emperor_role();
    crate::logging::init();
    let config = match liege_config::parse_emperor_args(args, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("liege: {err}");
            return ExitCode::from(1);
        }
    };
    let mut setup = match Setup::prepare(config) {
        Ok(setup) => setup,
        Err(err) => {
            eprintln!("liege: {err:#}");
            return ExitCode::from(1);
        }
    };
    // `emperor-subreaper`: orphans below the emperor come to it, and it reaps them (orphans.rs).
    if setup.config.subreaper {
        if let Err(err) = orphans::become_subreaper() {
            eprintln!("liege: emperor-subreaper: cannot become a child subreaper: {err}");
            return ExitCode::from(1);
        }
    }
    // Bind what may need root, then become `uid`/`gid` keeping `cap`, as a uWSGI emperor does: here, while
    // the process is single-threaded, because capabilities belong to each thread (capset(2)) and the
    // runtime's threads must all inherit the kept ones (a tyrant's vassals are started from any of them).
    if let Err(err) = setup.bind().and_then(|()| drop_privileges(&setup)) {
        eprintln!("liege: {err:#}");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("liege-emperor").build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("liege: cannot start the emperor's runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(emperor(setup));
    // Process tasks still running here were told to kill their process; don't wait for stragglers.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Everything resolved before the runtime starts (paths made absolute, directories created, the run
/// directory locked), so errors are reported plainly and early.
struct Setup {
    config: EmperorConfig,
    dir: PathBuf,
    /// The absolute glob pattern and the directory watched for it (see [`Context::pattern`]).
    pattern: Option<String>,
    watched: PathBuf,
    run_dir: PathBuf,
    log_dir: PathBuf,
    includes: Vec<PathBuf>,
    token: String,
    token_path: Option<PathBuf>,
    /// The API and stats sockets, bound by [`Setup::bind`] before the runtime takes them.
    api: Option<std::net::TcpListener>,
    stats: Option<stats_server::Bound>,
    /// Held for the emperor's life: two emperors must not share a run directory (ports, logs).
    _lock: std::fs::File,
}

impl Setup {
    fn prepare(mut config: EmperorConfig) -> anyhow::Result<Self> {
        let watched =
            std::fs::canonicalize(&config.dir).with_context(|| format!("vassal directory {}", config.dir.display()))?;
        if !watched.is_dir() {
            anyhow::bail!("{} is not a directory", watched.display());
        }
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        // A glob's vassals run where the emperor runs (uWSGI's glob monitor does not chdir); a directory's
        // vassals run in it.
        let pattern = config.pattern.as_deref().map(|pattern| {
            if Path::new(pattern).is_absolute() {
                pattern.to_owned()
            } else {
                format!("{}/{pattern}", cwd.display())
            }
        });
        let dir = if pattern.is_some() { cwd.clone() } else { watched.clone() };
        let absolute = |path: &Path| {
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                cwd.join(path)
            }
        };
        // One run directory per vassal directory, or per pattern.
        let key = pattern.as_deref().map_or_else(|| dir.clone(), PathBuf::from);
        let run_dir = config.run_dir.as_deref().map(absolute).unwrap_or_else(|| default_run_dir(&key));
        std::fs::create_dir_all(&run_dir).with_context(|| format!("run directory {}", run_dir.display()))?;
        let log_dir = config.log_dir.as_deref().map(absolute).unwrap_or_else(|| run_dir.join("logs"));
        std::fs::create_dir_all(&log_dir).with_context(|| format!("log directory {}", log_dir.display()))?;
        let lock_path = run_dir.join("emperor.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("lock file {}", lock_path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            anyhow::bail!(
                "another emperor is using the run directory {} (give each emperor its own --run-dir)",
                run_dir.display()
            );
        }
        let includes = config.vassals_include.iter().map(|p| absolute(p)).collect();
        // Relative to where the emperor was started, not to the vassal directory it moves into below.
        config.touch_reload = config.touch_reload.iter().map(|p| absolute(p)).collect();
        let (token, token_path) = match &config.api_token_file {
            Some(path) => {
                let path = absolute(path);
                let token =
                    std::fs::read_to_string(&path).with_context(|| format!("API token file {}", path.display()))?;
                let token = token.trim().to_owned();
                if token.is_empty() {
                    anyhow::bail!("API token file {} is empty", path.display());
                }
                (token, Some(path))
            }
            None => {
                let token = new_token()?;
                let path = run_dir.join("api-token");
                let _ = std::fs::remove_file(&path);
                let mut file = std::fs::OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("API token file {}", path.display()))?;
                writeln!(file, "{token}").with_context(|| format!("API token file {}", path.display()))?;
                (token, Some(path))
            }
        };
        // Vassals run in DIR (uWSGI's emperor does the same), and the emperor validates their files from
        // there too, so relative paths in vassal files mean the same thing to both.
        std::env::set_current_dir(&dir).with_context(|| format!("chdir {}", dir.display()))?;
        Ok(Setup {
            config,
            dir,
            pattern,
            watched,
            run_dir,
            log_dir,
            includes,
            token,
            token_path,
            api: None,
            stats: None,
            _lock: lock,
        })
    }

    /// Binds the API and the stats socket (`chmod-socket` applies to a unix one).
    fn bind(&mut self) -> anyhow::Result<()> {
        let api = &self.config.api;
        let listener = std::net::TcpListener::bind(api.as_str())
            .with_context(|| format!("cannot serve the API on {api} (choose another address with --api)"))?;
        listener.set_nonblocking(true).context("API socket")?;
        self.api = Some(listener);
        if let Some(address) = &self.config.stats {
            let bound = stats_server::Bound::bind(address)
                .with_context(|| format!("cannot serve the emperor stats on {address:?}"))?;
            if let (liege_config::SocketAddress::Unix(path), Some(mode)) = (address, self.config.chmod_socket) {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("chmod-socket {mode:o} {}", path.display()))?;
            }
            self.stats = Some(bound);
        }
        Ok(())
    }
}

/// `/run/liege/NAME-HASH` as root, else under `$XDG_RUNTIME_DIR/liege` or `/tmp/liege-UID`: one per vassal
/// directory, so ports stay stable across restarts of the same emperor and two emperors never collide.
fn default_run_dir(dir: &Path) -> PathBuf {
    let uid = nix::unistd::geteuid();
    let base = if uid.is_root() {
        PathBuf::from("/run/liege")
    } else if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        PathBuf::from(runtime).join("liege")
    } else {
        PathBuf::from(format!("/tmp/liege-{uid}"))
    };
    let label: String = dir
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect()
        })
        .unwrap_or_else(|| "root".to_owned());
    let mut hash: u32 = 0x811c_9dc5;
    for byte in dir.as_os_str().as_encoded_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    base.join(format!("{label}-{hash:08x}"))
}

/// `binary-path`: an executable file, taken as a liege binary (the vassal's handshake tells if it is not).
fn binary_at(path: &Path) -> anyhow::Result<crate::launch::Program> {
    let path = std::fs::canonicalize(path).context("cannot resolve it")?;
    nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK).context("not executable")?;
    if !path.is_file() {
        anyhow::bail!("not a file");
    }
    Ok(crate::launch::Program::Binary(path))
}

/// The emperor's own `uid`, `gid` and `cap`. The run and log directories (and what the emperor keeps writing
/// in them: the port book, the vassals' log files) are handed to the new user first, so it can go on
/// writing there; the vassals it starts afterwards run as that user (they cannot become anyone else, unless
/// `cap` kept setuid/setgid, which `emperor-tyrant` needs).
fn drop_privileges(setup: &Setup) -> anyhow::Result<()> {
    let config = &setup.config;
    let target = crate::privileges::Target::resolve(config.uid.as_deref(), config.gid.as_deref(), &config.caps)
        .context("emperor uid/gid/cap")?;
    if target.is_empty() {
        return Ok(());
    }
    if !nix::unistd::Uid::effective().is_root() {
        if config.tyrant.is_some() || !config.caps.is_empty() {
            anyhow::bail!("emperor uid/gid/cap need the emperor to start as root");
        }
        tracing::info!("not running as root: the emperor's uid/gid are ignored (as uWSGI)");
        return Ok(());
    }
    let mut owned = vec![setup.run_dir.clone(), setup.log_dir.clone()];
    for dir in [&setup.run_dir, &setup.log_dir] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            owned.extend(entries.flatten().map(|entry| entry.path()).filter(|path| path.is_file()));
        }
    }
    for path in owned {
        nix::unistd::chown(&path, target.uid, target.gid).with_context(|| format!("chown {}", path.display()))?;
    }
    target.apply().context("emperor uid/gid/cap")?;
    tracing::info!(
        "emperor dropped privileges to uid {} gid {}{}",
        nix::unistd::getuid(),
        nix::unistd::getgid(),
        if config.caps.is_empty() { String::new() } else { format!(" keeping cap {}", config.caps.join(",")) }
    );
    Ok(())
}

fn new_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn env_seconds(name: &str, default: u64) -> Duration {
    let seconds = std::env::var(name).ok().and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| *v > 0.0);
    seconds.map_or(Duration::from_secs(default), Duration::from_secs_f64)
}

async fn emperor(mut setup: Setup) -> ExitCode {
    let registry = Arc::new(Registry::new(setup.dir.clone(), setup.token.clone(), setup.token_path.clone()));
    let program = match &setup.config.binary_path {
        // `binary-path`: uWSGI's emperor starts its vassals with this binary.
        Some(path) => match binary_at(path) {
            Ok(program) => program,
            Err(err) => {
                eprintln!("liege: binary-path {}: {err}", path.display());
                return ExitCode::from(1);
            }
        },
        None => match crate::launch::Program::current() {
            Ok(program) => program,
            Err(err) => {
                eprintln!("liege: cannot find the liege binary to start vassals with: {err}");
                return ExitCode::from(1);
            }
        },
    };
    let concurrency = std::env::var("LIEGE_EMPEROR_CONCURRENT_STARTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| (liege_config_cpus() * 2).max(4));
    let ctx = Arc::new(Context {
        dir: setup.dir.clone(),
        pattern: setup.pattern.clone(),
        watched: setup.watched.clone(),
        run_dir: setup.run_dir.clone(),
        log_dir: setup.log_dir.clone(),
        program,
        includes: setup.includes.clone(),
        vassal_set: setup.config.vassal_set.clone(),
        throttle_base: setup.config.throttle_base,
        throttle_max: setup.config.throttle_max,
        heartbeat_timeout: setup.config.required_heartbeat,
        start_timeout: env_seconds("LIEGE_EMPEROR_START_TIMEOUT", 120),
        ports: Mutex::new(sockets::PortBook::load(setup.run_dir.join("ports.json"), setup.config.vassal_port_range)),
        start_slots: Arc::new(Semaphore::new(concurrency)),
        registry: registry.clone(),
        tyrant: setup.config.tyrant,
        children: Arc::new(orphans::Children::new()),
    });
    // In a container the emperor is PID 1: every orphan of the namespace becomes its child.
    if let Some(why) = orphans::should_reap(nix::unistd::getpid().as_raw(), orphans::is_subreaper()) {
        tracing::info!("{why}: it reaps the orphaned processes reparented to it");
        tokio::spawn(orphans::run(ctx.children.clone()));
    }

    let Some(api_bound) = setup.api.take() else {
        eprintln!("liege: the API socket was not bound");
        return ExitCode::from(1);
    };
    let api_listener = match tokio::net::TcpListener::from_std(api_bound) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("liege: cannot serve the API on {}: {err}", setup.config.api);
            return ExitCode::from(1);
        }
    };
    let api_address = api_listener.local_addr().map_or_else(|_| setup.config.api.clone(), |a| a.to_string());
    let api_shutdown = Arc::new(Notify::new());
    let stats_task = match setup.stats.take().map(stats_server::Listener::from_bound) {
        None => None,
        Some(Ok(listener)) => {
            tracing::info!("emperor stats server on {}", listener.name());
            Some(tokio::spawn(stats_server::serve(listener, registry.clone())))
        }
        Some(Err(err)) => {
            eprintln!("liege: cannot serve the emperor stats: {err}");
            return ExitCode::from(1);
        }
    };
    let api_task = tokio::spawn(api::serve(api_listener, registry.clone(), api_shutdown.clone()));

    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("liege: cannot install signal handlers: {err}");
            return ExitCode::from(1);
        }
    };

    let hint = Arc::new(Notify::new());
    let mode =
        if setup.pattern.is_some() { notify::RecursiveMode::Recursive } else { notify::RecursiveMode::NonRecursive };
    let watcher = watch(&setup.watched, mode, hint.clone());

    tracing::info!(
        "watching {} (run dir {}, logs in {}, ports {}-{})",
        setup.pattern.clone().unwrap_or_else(|| setup.dir.display().to_string()),
        setup.run_dir.display(),
        setup.log_dir.display(),
        setup.config.vassal_port_range.0,
        setup.config.vassal_port_range.1
    );
    if let Some(path) = &setup.token_path {
        tracing::info!("API token for control calls: {}", path.display());
    }
    tracing::info!("dashboard: http://{api_address}/  API: http://{api_address}/api/vassals");

    let mut emperor = Emperor {
        ctx,
        known: BTreeMap::new(),
        removing: HashSet::new(),
        supervisors: JoinSet::new(),
        scan_failing: false,
        owners: BTreeMap::new(),
    };
    emperor.rescan();
    let mut status = systemd_status(&registry);
    crate::systemd::ready(&status);
    let mut touched = Touched::new(&setup.config.touch_reload);
    let mut ticker = tokio::time::interval(RESCAN_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let quick = loop {
        tokio::select! {
            _ = hint.notified() => {
                settle(&hint).await;
                emperor.rescan();
            }
            _ = ticker.tick() => {
                if touched.check() {
                    tracing::info!("touch-reload: a watched file changed; reloading every vassal gracefully");
                    emperor.reload_all();
                }
                emperor.rescan();
                let now = systemd_status(&registry);
                if now != status {
                    crate::systemd::status(&now);
                    status = now;
                }
            }
            Some(done) = emperor.supervisors.join_next() => {
                emperor.finished(done);
                emperor.rescan();
            }
            received = signals.next() => match received {
                Received::Terminate => break false,
                Received::Interrupt => break true,
                Received::Hangup => emperor.reload_all(),
            },
        }
    };
    drop(watcher);
    crate::systemd::stopping();
    emperor.shutdown(quick, &mut signals).await;
    api_shutdown.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    if let Some(task) = stats_task {
        task.abort();
        let _ = task.await; // drops the listener, which removes a unix socket file
    }
    tracing::info!("all vassals stopped; bye");
    ExitCode::SUCCESS
}

/// What `systemctl status` shows: vassals by state, e.g. `3 vassal(s): 2 running, 1 throttled`.
fn systemd_status(registry: &Registry) -> String {
    let statuses = registry.statuses();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for status in &statuses {
        *counts.entry(status.state.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(state, n)| format!("{n} {state}")).collect();
    format!("{} vassal(s){}{}", statuses.len(), if parts.is_empty() { "" } else { ": " }, parts.join(", "))
}

fn liege_config_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Waits until file-system events stop coming for [`SETTLE`] (at most [`SETTLE_MAX`]): a burst of 100 files
/// becomes one rescan, and a file being written is more likely complete when read.
async fn settle(hint: &Notify) {
    let deadline = Instant::now() + SETTLE_MAX;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return;
        }
        if tokio::time::timeout(SETTLE.min(remaining), hint.notified()).await.is_err() {
            return;
        }
    }
}

/// Starts the notify watcher on DIR. Failing to watch is not fatal: the periodic rescan still finds
/// everything, only later.
fn watch(dir: &Path, mode: notify::RecursiveMode, hint: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        // Every event (and every error, such as a queue overflow) only means "look again", except reads:
        // the rescan itself (and each vassal reading its file) opens files, and must not trigger a rescan.
        match &event {
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) && !event.need_rescan() => return,
            Ok(_) => {}
            Err(err) => tracing::debug!("watch error (rescanning): {err}"),
        }
        hint.notify_one();
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!("cannot watch {}: {err}; rescanning every {} s only", dir.display(), RESCAN_EVERY.as_secs());
            return None;
        }
    };
    if let Err(err) = watcher.watch(dir, mode) {
        tracing::warn!("cannot watch {}: {err}; rescanning every {} s only", dir.display(), RESCAN_EVERY.as_secs());
        return None;
    }
    Some(watcher)
}

enum Received {
    Terminate,
    Interrupt,
    Hangup,
}

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.terminate.recv() => Received::Terminate,
            _ = self.interrupt.recv() => Received::Interrupt,
            _ = self.quit.recv() => Received::Interrupt,
            _ = self.hangup.recv() => Received::Hangup,
        }
    }
}

/// The emperor's `touch-reload` files and their last modification times, checked each [`RESCAN_EVERY`]
/// (uWSGI's master checks its touch files on its own timer too). A file appearing counts as a touch; one
/// missing does not.
struct Touched {
    files: Vec<(PathBuf, Option<std::time::SystemTime>)>,
}

impl Touched {
    fn new(paths: &[PathBuf]) -> Self {
        Touched { files: paths.iter().map(|path| (path.clone(), modified(path))).collect() }
    }

    /// Whether any file changed since the last look.
    fn check(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.files {
            let now = modified(path);
            if now.is_some() && now != *seen {
                changed = true;
            }
            *seen = now;
        }
        changed
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok()
}

struct Emperor {
    ctx: Arc<Context>,
    /// The version of each file last acted on.
    known: BTreeMap<String, KnownVersion>,
    /// Vassals whose file is gone and whose processes are still stopping: a file of the same name that
    /// appears meanwhile is picked up once they are gone.
    removing: HashSet<String>,
    supervisors: JoinSet<String>,
    scan_failing: bool,
    /// `emperor-tyrant`: the owner each vassal was started as; a file whose owner changes is stopped and
    /// started again as the new owner (a graceful reload would keep the old user), as uWSGI stops it.
    owners: BTreeMap<String, (u32, u32)>,
}

impl Emperor {
    fn rescan(&mut self) {
        let listing = match &self.ctx.pattern {
            Some(pattern) => scan::scan_glob(pattern, &self.ctx.watched),
            None => scan::scan(&self.ctx.dir),
        };
        let files = match listing {
            Ok(files) => {
                if self.scan_failing {
                    tracing::info!("{} is readable again", self.ctx.watched.display());
                }
                self.scan_failing = false;
                files
            }
            Err(err) => {
                // Never stop vassals because the listing failed once (NFS hiccup, permissions being fixed).
                if !self.scan_failing {
                    tracing::error!(
                        "cannot list {}: {err}; keeping the vassals as they are",
                        self.ctx.watched.display()
                    );
                }
                self.scan_failing = true;
                return;
            }
        };
        for (name, file) in &files {
            if self.removing.contains(name) {
                continue;
            }
            let problem = file.identity.as_ref().err().cloned();
            match self.known.get(name) {
                None => {
                    tracing::info!("vassal {name}: new file {}", file.path.display());
                    if let Some(owner) = self.owner(&file.path) {
                        self.owners.insert(name.clone(), owner);
                    }
                    self.known.insert(name.clone(), KnownVersion::of(file));
                    self.spawn_supervisor(name, &file.path, Command::Changed { problem });
                }
                Some(known) => match scan::compare(known, file) {
                    Change::Unchanged => {}
                    Change::Relinked(version) => {
                        tracing::debug!("vassal {name}: same content behind a new link target; not reloading");
                        self.known.insert(name.clone(), version);
                    }
                    Change::Changed(_) if self.owner_changed(name, &file.path) => {
                        tracing::warn!(
                            "vassal {name}: emperor-tyrant: the file's owner changed; stopping the instance"
                        );
                        self.stop_removed(name, "the file's owner changed (emperor-tyrant): stopping");
                    }
                    Change::Changed(version) => {
                        tracing::info!("vassal {name}: file changed");
                        self.known.insert(name.clone(), version);
                        let _ = self.ctx.registry.send(name, Command::Changed { problem });
                    }
                },
            }
        }
        let gone: Vec<String> = self.known.keys().filter(|name| !files.contains_key(*name)).cloned().collect();
        for name in gone {
            tracing::info!("vassal {name}: file removed; stopping");
            self.stop_removed(&name, "file removed: stopping");
        }
    }

    /// Stops a vassal and forgets its file: once stopped, a file still there is a new vassal again.
    fn stop_removed(&mut self, name: &str, why: &str) {
        self.known.remove(name);
        self.owners.remove(name);
        self.removing.insert(name.to_owned());
        if let Some(shared) = self.ctx.registry.get(name) {
            shared.event("config", why.to_owned());
        }
        let _ = self.ctx.registry.send(name, Command::Remove { quick: false });
    }

    /// The owner a tyrant emperor runs the file's vassal as (`None` when not a tyrant or unreadable).
    fn owner(&self, path: &Path) -> Option<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let tyrant = self.ctx.tyrant?;
        let metadata = if tyrant.nofollow { std::fs::symlink_metadata(path) } else { std::fs::metadata(path) };
        metadata.ok().map(|m| (m.uid(), m.gid()))
    }

    fn owner_changed(&self, name: &str, path: &Path) -> bool {
        match (self.owners.get(name), self.owner(path)) {
            (Some(before), Some(now)) => *before != now,
            _ => false,
        }
    }

    fn spawn_supervisor(&mut self, name: &str, path: &Path, first: Command) {
        let logs = Arc::new(logs::LogStore::new(name, Some(&self.ctx.log_dir)));
        let shared = Arc::new(VassalShared::new(name, path.to_path_buf(), logs));
        let (commands, receiver) = mpsc::unbounded_channel();
        // The receiver is alive: it was just created and is moved into the supervisor below.
        let _ = commands.send(first);
        self.ctx.registry.insert(VassalEntry { shared: shared.clone(), commands });
        let supervisor = vassal::Supervisor::new(self.ctx.clone(), shared, receiver);
        self.supervisors.spawn(supervisor.run());
    }

    fn finished(&mut self, done: Result<String, tokio::task::JoinError>) {
        match done {
            Ok(name) => {
                tracing::info!("vassal {name}: stopped and removed");
                self.ctx.registry.remove(&name);
                self.removing.remove(&name);
            }
            Err(err) => {
                // A supervisor that panicked (a bug): its processes were killed with it (kill_on_drop).
                // Forget what we knew so the next rescan starts the vassal again.
                tracing::error!("a vassal supervisor failed: {err}");
                let names: Vec<String> = self
                    .ctx
                    .registry
                    .entries()
                    .iter()
                    .filter(|e| e.commands.is_closed())
                    .map(|e| e.shared.name.clone())
                    .collect();
                for name in names {
                    self.ctx.registry.remove(&name);
                    self.known.remove(&name);
                    self.removing.remove(&name);
                }
            }
        }
    }

    fn reload_all(&self) {
        let entries = self.ctx.registry.entries();
        tracing::info!("SIGHUP: reloading {} vassal(s) gracefully", entries.len());
        for entry in entries {
            let _ = entry.commands.send(Command::Reload);
        }
    }

    /// Stops every vassal (gracefully unless `quick`) and waits for all of them; a second SIGTERM or a
    /// SIGINT turns a graceful stop into a quick one.
    async fn shutdown(&mut self, quick: bool, signals: &mut Signals) {
        let entries = self.ctx.registry.entries();
        tracing::info!("stopping {} vassal(s) {}", entries.len(), if quick { "now" } else { "gracefully" });
        for entry in &entries {
            let _ = entry.commands.send(Command::Remove { quick });
        }
        // Each supervisor kills what does not stop by its vassal's reload-mercy; this bound only matters if
        // something is badly wrong.
        let longest_mercy = Duration::from_secs(60);
        let deadline = tokio::time::Instant::now() + longest_mercy + SHUTDOWN_GRACE;
        loop {
            tokio::select! {
                done = self.supervisors.join_next() => match done {
                    Some(done) => self.finished(done),
                    None => break,
                },
                received = signals.next() => {
                    if matches!(received, Received::Terminate | Received::Interrupt) {
                        tracing::info!("stopping every vassal now");
                        for entry in self.ctx.registry.entries() {
                            let _ = entry.commands.send(Command::Remove { quick: true });
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::error!("vassals still running after {} s; killing them", (longest_mercy + SHUTDOWN_GRACE).as_secs());
                    // Aborting a supervisor drops its processes' command channels: each process task then
                    // kills its process.
                    self.supervisors.abort_all();
                    while self.supervisors.join_next().await.is_some() {}
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}
