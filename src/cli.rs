//! The `liege` command line: `liege [uWSGI options]` runs one app (a vassal), or the emperor when the options
//! say `emperor = DIR` (as distribution packages start uWSGI: `uwsgi --ini /etc/uwsgi.ini`); `liege --help`
//! lists every option, `liege ... --check-config` reads the configuration, prints it and exits.
//!
//! Shared by both builds: the binary's `main` and the extension module's `_liege.main(argv)` (the `liege`
//! console script of `pip install liege`) call [`run`]. It sits on top of the three process kinds and wires
//! the master to the worker program it forks, so `master` never imports `worker`.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;

use crate::launch::{self, Program};
use liege_config::{ConfigError, ConfigWarning, Mode};

/// The worker program the master forks: wired here, above both, so `master` never imports `worker`.
const WORKER: crate::control::handover::WorkerProgram =
    crate::control::handover::WorkerProgram { check_config: crate::worker::check_config, run: crate::worker::run };

/// Runs the command line `args` (without the program name) and returns the exit status.
pub fn run(args: Vec<OsString>) -> u8 {
    let code = main(args);
    // ExitCode has no accessor: find the status it was made from.
    (0..=u8::MAX).find(|&candidate| ExitCode::from(candidate) == code).unwrap_or(1)
}

fn main(mut args: Vec<OsString>) -> ExitCode {
    let chosen = std::env::var_os(launch::CHOSEN_ENV).is_some();
    if chosen {
        #[allow(clippy::disallowed_methods, reason = "read once at startup, before any thread exists")]
        std::env::remove_var(launch::CHOSEN_ENV);
    }
    // --- Python plugin options (py) ---
    if let Some(address) = connect_and_read_address(&args) {
        return connect_and_read(address);
    }
    // --- end Python plugin options ---
    let check_only = take_flag(&mut args, "--check-config");
    match args.first().and_then(|a| a.to_str()) {
        Some("--help" | "-h" | "help") => return print_help(),
        Some("--version" | "-V" | "version") => return print_version(),
        Some("emperor" | "--emperor") if check_only => {
            return check_config(liege_config::parse_emperor_args(&args, &env).map(Mode::Emperor))
        }
        Some("emperor" | "--emperor") => {
            if let Ok(config) = liege_config::parse_emperor_args(&args, &env) {
                if let Err(err) = prepare_emperor(&config) {
                    eprintln!("liege: {err}");
                    return ExitCode::from(1);
                }
            }
            // (a configuration error is reported by the emperor itself)
            return crate::emperor::run(&args);
        }
        // `liege vassal app.ini` is what the emperor runs; it is `liege --ini app.ini`.
        Some("vassal") => {
            args.remove(0);
        }
        _ => {}
    }
    if args.is_empty() {
        eprintln!("usage: liege [OPTIONS]   (liege --help lists every option)");
        return ExitCode::from(2);
    }
    let parsed = liege_config::parse_args(&args, &env);
    if let Err(ConfigError::HelpOrVersion { flag, .. }) = &parsed {
        // `--help` or `--version` after other options.
        return if flag.contains("version") { print_version() } else { print_help() };
    }
    if check_only {
        return check_config(parsed);
    }
    let config = match parsed {
        Ok(Mode::Vassal(config)) => config,
        Ok(Mode::Emperor(config)) => {
            // `liege --ini /etc/uwsgi.ini` whose [uwsgi] section says `emperor = DIR`.
            if let Err(err) = prepare_emperor(&config) {
                eprintln!("liege: {err}");
                return ExitCode::from(1);
            }
            let mut emperor_args = vec![OsString::from("emperor")];
            emperor_args.extend(args);
            return crate::emperor::run(&emperor_args);
        }
        Err(err) => {
            eprintln!("liege: {err}");
            return ExitCode::from(1);
        }
    };
    if !chosen {
        // A vassal started by hand: run it on the interpreter of its environment, as the emperor would.
        if let Err(err) = run_on_own_interpreter(&config, &args) {
            eprintln!("liege: {err}");
            return ExitCode::from(1);
        }
    }
    if let Err(err) = prepare_process(config.umask, config.detach, config.daemonize.as_deref(), None) {
        eprintln!("liege: {err}");
        return ExitCode::from(1);
    }
    crate::logging::set_date_prefix(config.log_date.as_deref());
    crate::logging::init();
    log_warnings(&config.warnings);
    match crate::master::run(&config, args, WORKER) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::from(1)
        }
    }
}

/// If `python` or `virtualenv` call for another interpreter than this process's, becomes that interpreter
/// running liege with the same arguments (exec: same pid, same inherited sockets). Returns only when this
/// process is the right one.
fn run_on_own_interpreter(config: &liege_config::VassalConfig, args: &[OsString]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let current = Program::current().map_err(|err| format!("cannot find the running program: {err}"))?;
    let program = launch::choose(config.python.as_deref(), config.virtualenv.as_deref(), &current)
        .map_err(|err| err.to_string())?;
    if program == current {
        return Ok(());
    }
    let (exe, prefix) = program.command_line();
    let err = std::process::Command::new(&exe).args(prefix).args(args).env(launch::CHOSEN_ENV, "1").exec();
    Err(format!("cannot run {}: {err}", program.describe()))
}

/// The emperor's own process options: umask, daemonize, logto, pidfile (written once detached).
fn prepare_emperor(config: &liege_config::EmperorConfig) -> Result<(), String> {
    prepare_process(config.umask, config.daemonize.is_some(), config.daemonize.as_deref(), config.logto.as_deref())?;
    if config.show_config {
        eprint!("{}", liege_config::show_config(&config.raw));
    }
    if let Some(pidfile) = &config.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(|err| format!("pidfile {}: {err}", pidfile.display()))?;
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

// --- Python plugin options (py) ---
/// `--connect-and-read ADDR` (or `=ADDR`) anywhere before a `--`: uWSGI runs it as soon as it reads it, and
/// exits. `Some(None)` when the address is missing.
fn connect_and_read_address(args: &[OsString]) -> Option<Option<String>> {
    let end = args.iter().position(|arg| arg == "--").unwrap_or(args.len());
    let index = args[..end].iter().position(|arg| {
        arg.to_str().is_some_and(|arg| arg == "--connect-and-read" || arg.starts_with("--connect-and-read="))
    })?;
    let arg = args[index].to_str()?;
    Some(match arg.strip_prefix("--connect-and-read=") {
        Some(value) => Some(value.to_owned()),
        None => args.get(index + 1).and_then(|value| value.to_str()).map(str::to_owned),
    })
}

/// uWSGI's `--connect-and-read ADDR`: connects to a unix socket (a path) or `host:port` (`:port` is this
/// host), copies what it sends to stderr until it closes, and exits; the way to read a `py-tracebacker`
/// socket (`liege --connect-and-read /run/app/tb.1`).
fn connect_and_read(address: Option<String>) -> ExitCode {
    use std::io::{Read, Write};
    let Some(address) = address.filter(|address| !address.is_empty()) else {
        eprintln!("liege: --connect-and-read needs an address (a unix socket path or host:port)");
        return ExitCode::from(2);
    };
    let tcp = address
        .rsplit_once(':')
        .filter(|(host, port)| !host.contains('/') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    let stream: std::io::Result<Box<dyn Read>> = match tcp {
        Some((host, port)) => {
            let host = if host.is_empty() { "127.0.0.1" } else { host.trim_start_matches('[').trim_end_matches(']') };
            std::net::TcpStream::connect((host, port.parse::<u16>().unwrap_or(0))).map(|s| Box::new(s) as Box<dyn Read>)
        }
        None => std::os::unix::net::UnixStream::connect(&address).map(|s| Box::new(s) as Box<dyn Read>),
    };
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(err) => {
            eprintln!("liege: cannot connect to {address}: {err}");
            return ExitCode::from(1);
        }
    };
    let mut buffer = [0u8; 8192];
    let mut stderr = std::io::stderr().lock();
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(n) => {
                if stderr.write_all(&buffer[..n]).is_err() {
                    return ExitCode::from(1);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            // As uWSGI: the end of the data, however it came.
            Err(_) => return ExitCode::SUCCESS,
        }
    }
}
// --- end Python plugin options ---

/// Removes every `flag` argument (before a `--` that ends the options); true if there was one.
fn take_flag(args: &mut Vec<OsString>, flag: &str) -> bool {
    let end = args.iter().position(|arg| arg == "--").unwrap_or(args.len());
    let before = args.len();
    let mut index = 0;
    args.retain(|arg| {
        index += 1;
        !(index <= end && arg == flag)
    });
    args.len() != before
}

/// `--check-config`: the configuration as liege resolved it (every option in order with where it came
/// from, then the warnings), exit status 0; or the error, exit status 1. Nothing is started.
fn check_config(parsed: Result<Mode, ConfigError>) -> ExitCode {
    let (kind, raw, warnings) = match &parsed {
        Ok(Mode::Vassal(config)) => (format!("app '{}'", config.name), &config.raw, &config.warnings),
        Ok(Mode::Emperor(config)) => (format!("emperor of {}", config.dir.display()), &config.raw, &config.warnings),
        Err(err) => {
            eprintln!("liege: {err}");
            return ExitCode::from(1);
        }
    };
    println!("# liege {}: configuration of the {kind}", liege_config::VERSION);
    for option in raw {
        println!("{} = {}    # {}", option.key, option.value, option.origin);
    }
    for warning in warnings {
        eprintln!("liege: {warning}");
    }
    println!("# configuration OK ({} options, {} warnings)", raw.len(), warnings.len());
    ExitCode::SUCCESS
}

fn log_warnings(warnings: &[ConfigWarning]) {
    for warning in warnings {
        tracing::warn!("{warning}");
    }
}

/// What uWSGI does before anything else: `umask` (an immediate option there), then `daemonize` (detach,
/// output appended to its file, or with no file when the output goes over UDP), then for the emperor its own
/// `logto`. A vassal's `logto` is the master's business (it is reopened across reloads).
fn prepare_process(
    umask: Option<u32>,
    daemonize: bool,
    logfile: Option<&Path>,
    logto: Option<&Path>,
) -> Result<(), String> {
    if let Some(mode) = umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mode));
    }
    if daemonize {
        detach(logfile)?;
    }
    if let Some(path) = logto {
        append_output_to(path, "logto")?;
    }
    Ok(())
}

/// uWSGI's `daemonize`: fork (the parent exits 0, so the shell or init script gets its prompt back), start a
/// new session so no terminal can signal us, stdin from /dev/null, stdout and stderr appended to `logfile`
/// (or /dev/null when there is none: the log process then sends the lines over UDP). The log file is opened
/// first, so a wrong path is an error on the terminal rather than a silent death.
fn detach(logfile: Option<&Path>) -> Result<(), String> {
    let null = std::fs::File::open("/dev/null").map_err(|err| format!("daemonize: /dev/null: {err}"))?;
    let log = match logfile {
        Some(path) => open_append(path, "daemonize")?,
        None => std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/null")
            .map_err(|err| format!("daemonize: /dev/null: {err}"))?,
    };
    // SAFETY: called from main before any thread is started, so the child is a complete copy of this process.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(err) => return Err(format!("daemonize: fork: {err}")),
    }
    nix::unistd::setsid().map_err(|err| format!("daemonize: setsid: {err}"))?;
    redirect(null.as_raw_fd(), 0, "daemonize")?;
    redirect(log.as_raw_fd(), 1, "daemonize")?;
    redirect(log.as_raw_fd(), 2, "daemonize")?;
    Ok(())
}

fn append_output_to(path: &Path, what: &str) -> Result<(), String> {
    let file = open_append(path, what)?;
    redirect(file.as_raw_fd(), 1, what)?;
    redirect(file.as_raw_fd(), 2, what)
}

fn open_append(path: &Path, what: &str) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| format!("{what}: cannot open {}: {err}", path.display()))
}

fn redirect(source: i32, target: i32, what: &str) -> Result<(), String> {
    // SAFETY: dup2 onto a standard descriptor this process owns; `source` is open for the call.
    if unsafe { libc::dup2(source, target) } < 0 {
        return Err(format!("{what}: dup2: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn print_help() -> ExitCode {
    print!("{}", liege_config::help_text());
    ExitCode::SUCCESS
}

fn print_version() -> ExitCode {
    match launch::hosted() {
        Some(hosted) => println!(
            "liege {} (Python {}, {}; extension module)",
            env!("CARGO_PKG_VERSION"),
            hosted.version,
            hosted.executable.display()
        ),
        None => {
            println!("liege {} (Python {})", env!("CARGO_PKG_VERSION"), crate::python::interpreter::EMBEDDED_VERSION)
        }
    }
    ExitCode::SUCCESS
}
