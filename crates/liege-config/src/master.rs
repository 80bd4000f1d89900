//! Master-side option families: side processes (`attach-daemon*`), hooks (`hook-*`, `exec-*`).
//!
//! These are read here, with uWSGI's syntax, so that a mistake is an error naming the file and line at
//! startup; what they do at run time is the master's business (`liege::master::daemons`, `…::hooks`).

use std::path::PathBuf;

use crate::{values, ConfigError, Origin, RawOption};

/// The master-side families as given, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterFeatures {
    /// `attach-daemon`, `attach-daemon2`, `attach-control-daemon`, `smart-attach-daemon(2)`, in order.
    pub daemons: Vec<DaemonSpec>,
    /// `hook-*` and `exec-*` lines, in order (each knows its phase).
    pub hooks: Vec<Hook>,
    /// `exit-on-reload`: a reload request stops the vassal instead (uWSGI's "GAME OVER (insert coin)").
    pub exit_on_reload: bool,
    /// `harakiri-graceful-timeout`: after harakiri's stack dump, the graceful signal, then SIGKILL this much
    /// later (uWSGI: the next harakiri check `harakiri + timeout` seconds on).
    pub harakiri_graceful_timeout: Option<std::time::Duration>,
    /// `harakiri-graceful-signal` (default SIGTERM).
    pub harakiri_graceful_signal: i32,
    /// `reload-on-as`: megabytes of address space after which a worker is recycled.
    pub reload_on_as: Option<u64>,
    /// `max-fd`: RLIMIT_NOFILE, soft and hard.
    pub max_fd: Option<u64>,
    // --- cron family (cron) ---
    /// `cron`, `unique-cron`, `cron2`, in order (see [`crate::cron`]).
    pub crons: Vec<crate::cron::CronSpec>,
    /// `cron-harakiri`: seconds a cron command may run before its process group is killed.
    pub cron_harakiri: Option<u64>,
    // --- end cron family ---
}

impl Default for MasterFeatures {
    fn default() -> Self {
        MasterFeatures {
            daemons: Vec::new(),
            hooks: Vec::new(),
            exit_on_reload: false,
            harakiri_graceful_timeout: None,
            harakiri_graceful_signal: SIGTERM,
            reload_on_as: None,
            max_fd: None,
            crons: Vec::new(),
            cron_harakiri: None,
        }
    }
}

/// A whole option whose value is a signal (`harakiri-graceful-signal = 15` or `= SIGTERM`).
pub fn signal_option(option: &RawOption) -> Result<i32, ConfigError> {
    signal(option, &option.key, &values::non_empty(option)?)
}

/// One side process the master runs next to the workers (uWSGI's `struct uwsgi_daemon`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    /// The command line, run by `/bin/sh -c` as uWSGI's `uwsgi_exec_command_with_args` does.
    pub command: String,
    /// Smart daemons: the pidfile the daemon writes (or liege writes, with `daemonize`). A smart daemon is
    /// watched through it instead of `waitpid`, and survives a reload of the vassal.
    pub pidfile: Option<PathBuf>,
    /// With a pidfile: liege forks once more and writes the pidfile itself (`smart-attach-daemon2`,
    /// `daemonize=1`), for programs that cannot daemonize on their own.
    pub daemonize: bool,
    /// Smart daemons: seconds (master checks) to wait for the pidfile to appear before respawning.
    pub freq: u32,
    /// `attach-control-daemon` / `control=1`: the vassal stops when this daemon dies.
    pub control: bool,
    /// Files whose modification restarts the daemon (`touch=a;b`).
    pub touch: Vec<PathBuf>,
    /// Signal sent (to its process group) to stop it; default SIGTERM (15).
    pub stop_signal: i32,
    /// Signal sent on a reload of the vassal instead of stopping it (0: none, stop and start again).
    pub reload_signal: i32,
    /// Keep the master's stdin (`stdin=1`) instead of `/dev/null`.
    pub honour_stdin: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub chdir: Option<PathBuf>,
    /// Cap of the respawn throttle in seconds (`max_throttle`); 0 = liege's default cap.
    pub max_throttle: u32,
    /// Smart daemons: signal them on reload and stop too (`notifypid=1`).
    pub notify_pid: bool,
    /// The option as written (for logs and errors).
    pub origin: Origin,
    /// The option's name (`attach-daemon`...).
    pub option: String,
}

/// Which `attach-daemon` spelling, as uWSGI's `uwsgi_opt_add_daemon` distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaemonKind {
    /// `attach-daemon CMD`: a dumb daemon, supervised with waitpid.
    Dumb,
    /// `attach-control-daemon CMD`: dumb, and the vassal stops when it dies.
    Control,
    /// `smart-attach-daemon PIDFILE[,FREQ] CMD`: the daemon daemonizes and writes PIDFILE.
    Smart,
    /// `smart-attach-daemon2 PIDFILE[,FREQ] CMD`: liege daemonizes it and writes PIDFILE.
    Smart2,
    /// `attach-daemon2 key=value,...`.
    KeyValue,
}

/// `SIGTERM`, the default stop signal.
const SIGTERM: i32 = 15;

/// Parses one `attach-daemon*` option.
pub fn daemon(kind: DaemonKind, option: &RawOption) -> Result<DaemonSpec, ConfigError> {
    let value = values::non_empty(option)?;
    let mut spec = DaemonSpec {
        command: String::new(),
        pidfile: None,
        daemonize: false,
        freq: 10,
        control: kind == DaemonKind::Control,
        touch: Vec::new(),
        stop_signal: SIGTERM,
        reload_signal: 0,
        honour_stdin: false,
        uid: None,
        gid: None,
        chdir: None,
        max_throttle: 0,
        notify_pid: false,
        origin: option.origin.clone(),
        option: option.key.clone(),
    };
    match kind {
        DaemonKind::Dumb | DaemonKind::Control => spec.command = value,
        DaemonKind::Smart | DaemonKind::Smart2 => {
            let (pidfile, command) =
                value.split_once(' ').ok_or_else(|| values::invalid(option, "expected 'PIDFILE[,FREQ] COMMAND'"))?;
            let (pidfile, freq) = match pidfile.split_once(',') {
                Some((pidfile, freq)) => (pidfile, Some(freq)),
                None => (pidfile, None),
            };
            if let Some(freq) = freq {
                spec.freq = number(option, "freq", freq)?;
            }
            spec.pidfile = Some(PathBuf::from(pidfile));
            spec.command = command.trim().to_owned();
            spec.daemonize = kind == DaemonKind::Smart2;
        }
        DaemonKind::KeyValue => key_values(&mut spec, option, &value)?,
    }
    if spec.command.trim().is_empty() {
        return Err(values::invalid(option, "the daemon has no command"));
    }
    Ok(spec)
}

/// `attach-daemon2 cmd=...,pidfile=...,control=1,...` (uWSGI's kvlist: `,` between items, `=` inside; a
/// value may be quoted with `"` or `'` to contain commas, and `\` escapes one character).
fn key_values(spec: &mut DaemonSpec, option: &RawOption, value: &str) -> Result<(), ConfigError> {
    let mut command = None;
    for item in kvlist(value) {
        let (key, raw) = item
            .split_once('=')
            .ok_or_else(|| values::invalid(option, format!("'{item}' is not key=value (attach-daemon2 syntax)")))?;
        let raw = raw.to_owned();
        // uWSGI sets a flag for any value it is given (`control=0` is on there too); liege reads false words
        // as off, which is what a user writing them means.
        let flag = !matches!(raw.to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off" | "");
        match key {
            "command" | "cmd" | "exec" => command = Some(raw),
            "freq" => spec.freq = number(option, key, &raw)?,
            "pidfile" => spec.pidfile = Some(PathBuf::from(raw)),
            "control" => spec.control = flag,
            "daemonize" | "daemon" => spec.daemonize = flag,
            "touch" => spec.touch.extend(raw.split(';').filter(|p| !p.is_empty()).map(PathBuf::from)),
            "stopsignal" | "stop_signal" => spec.stop_signal = signal(option, key, &raw)?,
            "reloadsignal" | "reload_signal" => spec.reload_signal = signal(option, key, &raw)?,
            "stdin" => spec.honour_stdin = flag,
            "uid" => spec.uid = Some(number(option, key, &raw)?),
            "gid" => spec.gid = Some(number(option, key, &raw)?),
            "chdir" => spec.chdir = Some(PathBuf::from(raw)),
            "max_throttle" => spec.max_throttle = number(option, key, &raw)?,
            "notifypid" => spec.notify_pid = flag,
            "legion" => {
                return Err(values::invalid(
                    option,
                    "liege has no legion subsystem (uWSGI's clustering): run the daemon in one vassal only",
                ))
            }
            "ns_pid" => {
                return Err(values::invalid(
                    option,
                    "liege does not create PID namespaces (ns_pid): run the daemon in a container if it needs one",
                ))
            }
            other => {
                return Err(values::invalid(
                    option,
                    format!(
                        "unknown attach-daemon2 key '{other}' (known: cmd, freq, pidfile, control, daemonize, touch, \
                         stopsignal, reloadsignal, stdin, uid, gid, chdir, max_throttle, notifypid)"
                    ),
                ))
            }
        }
    }
    spec.command = command.ok_or_else(|| values::invalid(option, "attach-daemon2 needs a 'cmd' key"))?;
    if spec.daemonize && spec.pidfile.is_none() {
        return Err(values::invalid(option, "daemonize needs a pidfile (liege writes the daemon's pid there)"));
    }
    Ok(())
}

/// Splits uWSGI's kvlist at unquoted commas, dropping the quotes and escapes.
fn kvlist(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => current.extend(chars.next()),
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (',', None) => items.push(std::mem::take(&mut current)),
            (c, _) => current.push(c),
        }
    }
    items.push(current);
    items.into_iter().map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect()
}

fn number<T: std::str::FromStr>(option: &RawOption, key: &str, text: &str) -> Result<T, ConfigError> {
    text.trim().parse().map_err(|_| values::invalid(option, format!("'{key}' needs a number, not '{text}'")))
}

/// A signal by number (as uWSGI: `atoi`) or by name (`TERM`, `SIGTERM`: liege is kinder).
fn signal(option: &RawOption, key: &str, text: &str) -> Result<i32, ConfigError> {
    signal_number(text).ok_or_else(|| values::invalid(option, format!("'{key}' needs a signal, not '{text}'")))
}

/// `15`, `TERM` or `SIGTERM` → 15 (Linux numbering).
pub fn signal_number(text: &str) -> Option<i32> {
    let text = text.trim();
    if let Ok(number) = text.parse::<i32>() {
        return (1..=64).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => return None,
    };
    Some(number)
}

/// When a hook runs (uWSGI's hook lists; the jail phases run in a row, liege has no jail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPhase {
    /// First thing the master does, before logs, sockets or the app (`hook-asap`, `exec-asap`).
    Asap,
    /// Before the (absent) jail, first start only.
    PreJail,
    /// After the (absent) jail, first start only.
    PostJail,
    /// Inside the (absent) jail.
    InJail,
    /// Just before privileges drop, only when started as root.
    AsRoot,
    /// Just after privileges drop (or the same point when not root).
    AsUser,
    /// When the master is about to exit.
    AsUserAtexit,
    /// Before the app is imported (in the master; with lazy-apps, in each worker).
    PreApp,
    /// After the app is imported in the master (not with lazy-apps).
    PostApp,
    /// When the master starts supervising, before the first workers.
    MasterStart,
    /// In each worker, right after fork.
    PostFork,
    /// In each worker, before it starts accepting.
    Accepting,
    /// In each worker, before it starts accepting, the first time its id runs.
    AcceptingOnce,
    /// In worker 1, before it starts accepting.
    Accepting1,
    /// In worker 1, before it starts accepting, the first time.
    Accepting1Once,
}

impl HookPhase {
    /// uWSGI's name of the phase in `hook-NAME` (and `exec-NAME` where it exists).
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::Asap => "asap",
            HookPhase::PreJail => "pre-jail",
            HookPhase::PostJail => "post-jail",
            HookPhase::InJail => "in-jail",
            HookPhase::AsRoot => "as-root",
            HookPhase::AsUser => "as-user",
            HookPhase::AsUserAtexit => "as-user-atexit",
            HookPhase::PreApp => "pre-app",
            HookPhase::PostApp => "post-app",
            HookPhase::MasterStart => "master-start",
            HookPhase::PostFork => "post-fork",
            HookPhase::Accepting => "accepting",
            HookPhase::AcceptingOnce => "accepting-once",
            HookPhase::Accepting1 => "accepting1",
            HookPhase::Accepting1Once => "accepting1-once",
        }
    }

    /// Failures abort the instance, except at exit (uWSGI's `fatal` argument).
    pub fn fatal(self) -> bool {
        self != HookPhase::AsUserAtexit
    }
}

/// What a hook does: the actions of uWSGI's core/hooks.c that a WSGI server without plugins can perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// `exec:CMD`: run with `/bin/sh -c` and wait; a non-zero exit is a failure.
    Exec(String),
    /// `safeexec:CMD`: the same, but the exit code is only logged.
    SafeExec(String),
    /// `mkdir:PATH` (mode 0777 minus umask).
    Mkdir(PathBuf),
    /// `cd:` / `chdir:PATH`.
    Chdir(PathBuf),
    /// `putenv:KEY=VALUE`.
    Putenv(String, String),
    /// `create:` / `creat:PATH`: create or truncate.
    Create(PathBuf),
    /// `write:PATH TEXT`, `writen:` (with a newline), `append:`, `appendn:`.
    Write { path: PathBuf, text: String, append: bool, newline: bool },
    /// `writefifo:PATH TEXT`: non-blocking; no reader is not a failure (uWSGI's ENXIO rule).
    WriteFifo { path: PathBuf, text: String },
    /// `unlink:PATH`.
    Unlink(PathBuf),
    /// `chmod:PATH MODE` (octal).
    Chmod { path: PathBuf, mode: u32 },
    /// `sticky:PATH`: add the sticky bit.
    Sticky(PathBuf),
    /// `chown:PATH USER GROUP` (names or numbers).
    Chown { path: PathBuf, user: String, group: String },
    /// `print:` / `log:TEXT`: a line in the log.
    Print(String),
    /// `exit[:CODE]`.
    Exit(i32),
    /// `unix_signal:N FUNCTION`: what signal N does in the master.
    UnixSignal { signal: i32, action: SignalAction },
}

/// The uWSGI C functions a `unix_signal` hook may name that have a meaning in liege's master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalAction {
    /// `gracefully_kill_them_all`: finish requests, then exit (liege's SIGTERM).
    GracefulStop,
    /// `kill_them_all`: exit now (liege's SIGINT).
    QuickStop,
    /// `grace_them_all`: graceful reload (liege's SIGHUP).
    GracefulReload,
    /// `reap_them_all`: brutal reload (workers killed, then a reload).
    BrutalReload,
}

/// Checks across options, once everything is read.
pub fn check(features: &MasterFeatures, lazy_apps: bool) -> Result<(), ConfigError> {
    if let Some(hook) = features.hooks.iter().find(|h| h.phase == HookPhase::PostApp).filter(|_| lazy_apps) {
        return Err(ConfigError::InvalidValue {
            origin: hook.origin.clone(),
            name: format!("hook-{}", hook.phase.name()),
            value: hook.text.clone(),
            reason: "with lazy-apps the app is imported in each worker, after the master's last hook point: \
                     use hook-accepting (runs in each worker before it serves) instead"
                .to_owned(),
        });
    }
    Ok(())
}

/// One `hook-PHASE = action:args` or `exec-PHASE = CMD` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub phase: HookPhase,
    pub action: HookAction,
    /// The line as written, for the log.
    pub text: String,
    pub origin: Origin,
}

/// Parses `hook-PHASE = ACTION:ARGS` (`exec` is false) or `exec-PHASE = CMD` (`exec` is true).
pub fn hook(phase: HookPhase, exec: bool, option: &RawOption) -> Result<Hook, ConfigError> {
    let text = values::non_empty(option)?;
    let action = if exec { HookAction::Exec(text.clone()) } else { hook_action(option, &text)? };
    Ok(Hook { phase, action, text, origin: option.origin.clone() })
}

fn hook_action(option: &RawOption, text: &str) -> Result<HookAction, ConfigError> {
    let (name, arg) = text.split_once(':').unwrap_or((text, ""));
    let name = name.trim();
    let need = |what: &str| -> Result<(), ConfigError> {
        if arg.trim().is_empty() {
            Err(values::invalid(option, format!("the '{name}' hook needs {what}")))
        } else {
            Ok(())
        }
    };
    let path_text = || -> Result<(PathBuf, String), ConfigError> {
        let (path, text) =
            arg.split_once(' ').ok_or_else(|| values::invalid(option, format!("expected '{name}:FILE TEXT'")))?;
        Ok((PathBuf::from(path), text.to_owned()))
    };
    let action = match name {
        "exec" => {
            need("a command")?;
            HookAction::Exec(arg.to_owned())
        }
        "safeexec" => {
            need("a command")?;
            HookAction::SafeExec(arg.to_owned())
        }
        "mkdir" => {
            need("a directory")?;
            HookAction::Mkdir(arg.into())
        }
        "cd" | "chdir" => {
            need("a directory")?;
            HookAction::Chdir(arg.into())
        }
        "putenv" => {
            let (key, value) =
                arg.split_once('=').ok_or_else(|| values::invalid(option, "expected 'putenv:KEY=VALUE'"))?;
            if key.is_empty() {
                return Err(values::invalid(option, "expected 'putenv:KEY=VALUE'"));
            }
            HookAction::Putenv(key.to_owned(), value.to_owned())
        }
        "create" | "creat" => {
            need("a file")?;
            HookAction::Create(arg.into())
        }
        "write" | "writen" | "append" => {
            let (path, text) = path_text()?;
            HookAction::Write { path, text, append: name == "append", newline: name == "writen" }
        }
        "appendn" => {
            need("a file")?;
            // `appendn:FILE` alone appends just a newline.
            let (path, text) = arg.split_once(' ').map_or((arg, ""), |(p, t)| (p, t));
            HookAction::Write { path: path.into(), text: text.to_owned(), append: true, newline: true }
        }
        "writefifo" => {
            let (path, text) = path_text()?;
            HookAction::WriteFifo { path, text }
        }
        "unlink" => {
            need("a file")?;
            HookAction::Unlink(arg.into())
        }
        "chmod" => {
            let (path, mode) =
                arg.split_once(' ').ok_or_else(|| values::invalid(option, "expected 'chmod:FILE MODE'"))?;
            let mode = u32::from_str_radix(mode.trim(), 8)
                .map_err(|_| values::invalid(option, format!("'{mode}' is not an octal mode")))?;
            HookAction::Chmod { path: path.into(), mode }
        }
        "sticky" => {
            need("a file")?;
            HookAction::Sticky(arg.into())
        }
        "chown" | "chown2" => {
            let words: Vec<&str> = arg.split(' ').filter(|w| !w.is_empty()).collect();
            let [path, user, group] = words[..] else {
                return Err(values::invalid(option, format!("expected '{name}:FILE USER GROUP'")));
            };
            HookAction::Chown { path: path.into(), user: user.to_owned(), group: group.to_owned() }
        }
        "print" | "log" => HookAction::Print(arg.to_owned()),
        "exit" => {
            let code = if arg.trim().is_empty() {
                0
            } else {
                arg.trim().parse().map_err(|_| values::invalid(option, "expected 'exit' or 'exit:CODE'"))?
            };
            HookAction::Exit(code)
        }
        "unix_signal" => unix_signal(option, arg)?,
        "call" | "callret" | "callint" | "callintret" => {
            return Err(values::invalid(
                option,
                format!(
                    "the '{name}' hook calls a C symbol of the uWSGI process; liege cannot: run a program with \
                     'exec:' instead"
                ),
            ))
        }
        "mount" | "umount" | "hostname" => {
            return Err(values::invalid(
                option,
                format!(
                    "the '{name}' hook changes the system (namespaces, mounts, host name); liege does not jail \
                     vassals: do it in the container or unit that starts liege, or with 'exec:'"
                ),
            ))
        }
        "rpc" | "retryrpc" | "alarm" | "wait_for_fs" | "wait_for_file" | "wait_for_dir" | "wait_for_socket"
        | "wait-for-fs" | "wait-for-file" | "wait-for-dir" | "wait-for-socket" => {
            return Err(values::invalid(
                option,
                format!(
                    "liege does not implement uWSGI's '{name}' hook: run a command with 'exec:' instead (e.g. \
                     'exec:until test -e FILE; do sleep 1; done')"
                ),
            ))
        }
        other => {
            return Err(values::invalid(
                option,
                format!(
                    "unknown hook action '{other}' (liege has exec, safeexec, mkdir, chdir, putenv, create, write, \
                     writen, append, appendn, writefifo, unlink, chmod, sticky, chown, print, log, exit, unix_signal)"
                ),
            ))
        }
    };
    Ok(action)
}

/// `unix_signal:15 gracefully_kill_them_all`.
fn unix_signal(option: &RawOption, arg: &str) -> Result<HookAction, ConfigError> {
    // As uWSGI: split at the first space, the number read by its leading digits (`atoi`), so
    // `unix_signal:15\t# gracefully_kill_them_all` (a tab and a comment mark, seen in real configs) still
    // means signal 15 bound to gracefully_kill_them_all.
    let (number, function) =
        arg.trim().split_once(' ').ok_or_else(|| values::invalid(option, "expected 'unix_signal:N FUNCTION'"))?;
    let digits: String = number.trim_start().chars().take_while(char::is_ascii_digit).collect();
    let signal = signal_number(if digits.is_empty() { number } else { &digits })
        .ok_or_else(|| values::invalid(option, format!("'{number}' is not a signal number")))?;
    if ![1, 2, 3, 15].contains(&signal) {
        return Err(values::invalid(
            option,
            format!("liege's master handles SIGHUP (1), SIGINT (2), SIGQUIT (3) and SIGTERM (15); not signal {signal}"),
        ));
    }
    let action = match function.trim() {
        "gracefully_kill_them_all" => SignalAction::GracefulStop,
        "kill_them_all" => SignalAction::QuickStop,
        "grace_them_all" => SignalAction::GracefulReload,
        "reap_them_all" => SignalAction::BrutalReload,
        other => {
            return Err(values::invalid(
                option,
                format!(
                    "liege cannot bind a signal to the C function '{other}'; it knows gracefully_kill_them_all, \
                     kill_them_all, grace_them_all and reap_them_all"
                ),
            ))
        }
    };
    Ok(HookAction::UnixSignal { signal, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(key: &str, value: &str) -> RawOption {
        RawOption {
            key: key.to_owned(),
            value: value.to_owned(),
            origin: Origin::File { path: "app.ini".into(), line: 3 },
        }
    }

    #[test]
    fn attach_daemon_forms() {
        let dumb = daemon(DaemonKind::Dumb, &raw("attach-daemon", "celery -A proj worker")).unwrap();
        assert_eq!(dumb.command, "celery -A proj worker");
        assert!(dumb.pidfile.is_none() && !dumb.control);
        let control = daemon(DaemonKind::Control, &raw("attach-control-daemon", "x")).unwrap();
        assert!(control.control);
        let smart = daemon(DaemonKind::Smart, &raw("smart-attach-daemon", "/tmp/x.pid,3 memcached -d")).unwrap();
        assert_eq!(smart.pidfile, Some("/tmp/x.pid".into()));
        assert_eq!((smart.freq, smart.daemonize, smart.command.as_str()), (3, false, "memcached -d"));
        let smart2 = daemon(DaemonKind::Smart2, &raw("smart-attach-daemon2", "/tmp/x.pid redis")).unwrap();
        assert!(smart2.daemonize);
        assert_eq!(smart2.freq, 10);
        assert!(daemon(DaemonKind::Smart, &raw("smart-attach-daemon", "/tmp/x.pid")).is_err());
    }

    #[test]
    fn attach_daemon2_key_values() {
        let spec = daemon(
            DaemonKind::KeyValue,
            &raw(
                "attach-daemon2",
                "cmd='celery worker -Q a,b',pidfile=/tmp/c.pid,daemonize=1,control=1,touch=/a;/b,stopsignal=INT,\
                 reloadsignal=1,freq=5,chdir=/srv,max_throttle=7",
            ),
        )
        .unwrap();
        assert_eq!(spec.command, "celery worker -Q a,b");
        assert_eq!(spec.pidfile, Some("/tmp/c.pid".into()));
        assert!(spec.daemonize && spec.control);
        assert_eq!(spec.touch, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!((spec.stop_signal, spec.reload_signal, spec.freq, spec.max_throttle), (2, 1, 5, 7));
        assert_eq!(spec.chdir, Some("/srv".into()));
        for bad in ["pidfile=/x", "cmd=x,legion=l", "cmd=x,ns_pid=1", "cmd=x,color=red", "cmd=x,daemonize=1"] {
            assert!(daemon(DaemonKind::KeyValue, &raw("attach-daemon2", bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn hook_actions() {
        let action =
            |text: &str| hook(HookPhase::MasterStart, false, &raw("hook-master-start", text)).map(|h| h.action);
        assert_eq!(
            action("unix_signal:15 gracefully_kill_them_all").unwrap(),
            HookAction::UnixSignal { signal: 15, action: SignalAction::GracefulStop }
        );
        assert_eq!(
            action("unix_signal:15\t# gracefully_kill_them_all").unwrap(),
            HookAction::UnixSignal { signal: 15, action: SignalAction::GracefulStop }
        );
        assert_eq!(action("exec:echo hi").unwrap(), HookAction::Exec("echo hi".into()));
        assert_eq!(action("mkdir:/tmp/x").unwrap(), HookAction::Mkdir("/tmp/x".into()));
        assert_eq!(
            action("writen:/tmp/f hello world").unwrap(),
            HookAction::Write { path: "/tmp/f".into(), text: "hello world".into(), append: false, newline: true }
        );
        assert_eq!(action("putenv:A=b=c").unwrap(), HookAction::Putenv("A".into(), "b=c".into()));
        assert_eq!(action("chmod:/x 755").unwrap(), HookAction::Chmod { path: "/x".into(), mode: 0o755 });
        assert_eq!(action("exit").unwrap(), HookAction::Exit(0));
        assert_eq!(action("print:hello").unwrap(), HookAction::Print("hello".into()));
        for bad in
            ["call:foo", "mount:proc none /proc", "unix_signal:10 x", "unix_signal:15 foo", "bogus:1", "write:/x"]
        {
            let error = action(bad).unwrap_err().to_string();
            assert!(error.starts_with("app.ini:3:"), "{error}");
        }
        let exec = hook(HookPhase::Asap, true, &raw("exec-asap", "touch /tmp/y")).unwrap();
        assert_eq!(exec.action, HookAction::Exec("touch /tmp/y".into()));
    }
}
