//! End-to-end tests: real files in temporary directories, through the public entry points.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn parse(args: &[&str]) -> Result<VassalConfig, ConfigError> {
    parse_vassal_args(&os(args), &no_env)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// Writes `text` as `app.ini` in a fresh directory and parses `--ini` of it.
fn parse_ini(text: &str) -> (Result<VassalConfig, ConfigError>, TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "app.ini", text);
    let result = parse(&["--ini", path.to_str().unwrap()]);
    (result, dir, path)
}

fn ini_config(text: &str) -> VassalConfig {
    let (result, _dir, _path) = parse_ini(text);
    result.unwrap()
}

/// The error message for an ini, with the temporary path replaced by `app.ini`.
fn ini_error(text: &str) -> String {
    let (result, _dir, path) = parse_ini(text);
    let error = result.expect_err("expected an error");
    error.to_string().replace(path.to_str().unwrap(), "app.ini")
}

fn tcp(host: &str, port: u16) -> SocketAddress {
    SocketAddress::Tcp { host: host.to_owned(), port }
}

fn http(address: SocketAddress) -> SocketSpec {
    SocketSpec { protocol: Protocol::Http, address }
}

fn uwsgi(address: SocketAddress) -> SocketSpec {
    SocketSpec { protocol: Protocol::Uwsgi, address }
}

#[test]
fn seed_case() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "simple_app.ini", "[uwsgi]\nsocket = /tmp/%n.sock\nprocesses = 4\nmaster = 1\n");
    let config =
        parse(&["--http-socket", ":9099", "--wsgi-file", "simple_app.py", "--ini", ini.to_str().unwrap()]).unwrap();
    assert_eq!(
        config.sockets,
        vec![http(tcp("0.0.0.0", 9099)), uwsgi(SocketAddress::Unix(PathBuf::from("/tmp/simple_app.sock")))]
    );
    assert_eq!(config.processes, 4);
    assert!(config.master);
    assert_eq!(config.name, "simple_app");
    assert_eq!(
        config.app,
        Some(AppSpec { source: AppSource::File(PathBuf::from("simple_app.py")), callable: "application".to_owned() })
    );
    let keys: Vec<&str> = config.raw.iter().map(|option| option.key.as_str()).collect();
    assert_eq!(keys, ["http-socket", "wsgi-file", "ini", "socket", "processes", "master"]);
    assert_eq!(config.raw[3].origin, Origin::File { path: ini.clone(), line: 2 });
    assert_eq!(config.raw[3].value, "/tmp/simple_app.sock");
    assert_eq!(config.raw[0].origin, Origin::CommandLine { index: 0 });
}

#[test]
fn defaults() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.name, "liege");
    assert!(config.sockets.is_empty());
    assert_eq!(config.app, None);
    assert_eq!(config.processes, 1);
    assert!(config.master);
    assert!(!config.lazy_apps);
    assert_eq!(config.threads, 1);
    assert_eq!(config.listen, 1024);
    assert_eq!(config.buffer_size, 65536);
    assert!(config.need_app);
    assert_eq!(config.post_buffering, 1024 * 1024);
    assert_eq!(config.limit_post, 0);
    assert_eq!(config.socket_timeout, Duration::from_secs(60));
    assert_eq!(config.keepalive_timeout, Duration::from_secs(15));
    assert_eq!(config.reload_mercy, Duration::from_secs(60));
    assert_eq!(config.worker_reload_mercy, Duration::from_secs(60));
    assert_eq!(config.max_requests, 0);
    assert_eq!(config.harakiri, None);
    assert_eq!(config.cheaper, None);
    assert_eq!(config.chmod_socket, None);
    assert_eq!(config.log_format, LogFormat::Default);
    assert!(config.raw.is_empty());
}

#[test]
fn bare_master_line_then_processes() {
    let config = ini_config("[uwsgi]\nmaster\nprocesses = 4\n");
    assert!(config.master);
    assert_eq!(config.processes, 4);
}

#[test]
fn semicolon_and_hash_inside_values_are_kept() {
    let config = ini_config("[uwsgi]\n; comment\n# comment\nenv = A=x;y\nenv = COLOR=#fff\n");
    assert_eq!(config.env, vec![("A".to_owned(), "x;y".to_owned()), ("COLOR".to_owned(), "#fff".to_owned())]);
}

#[test]
fn crlf_and_bom_files() {
    let config = ini_config("\u{feff}[uwsgi]\r\nmaster\r\nprocesses = 3\r\nchdir = /srv/app\r\n");
    assert_eq!(config.processes, 3);
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/app")));
}

#[test]
fn lists_keep_order_and_scalars_take_the_last_across_command_line_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "a.ini", "[uwsgi]\nprocesses = 3\nsocket = :2\nsocket = :3\nprocesses = 5\n");
    let ini = ini.to_str().unwrap();
    let config = parse(&["--processes", "2", "--socket", ":1", "--ini", ini, "--socket", ":4"]).unwrap();
    assert_eq!(config.processes, 5, "the file comes after the command line option");
    let ports: Vec<SocketAddress> = config.sockets.iter().map(|socket| socket.address.clone()).collect();
    assert_eq!(ports, [1, 2, 3, 4].map(|port| tcp("0.0.0.0", port)));
    let config = parse(&["--ini", ini, "--processes", "7", "--pythonpath", "a", "--pp", "b"]).unwrap();
    assert_eq!(config.processes, 7, "the command line option comes after the file");
    assert_eq!(config.pythonpath, [PathBuf::from("a"), PathBuf::from("b")]);
}

#[test]
fn http_timeout_and_socket_timeout_are_one_setting() {
    let config = parse(&["--http-timeout", "10", "--socket-timeout", "20"]).unwrap();
    assert_eq!(config.socket_timeout, Duration::from_secs(20));
    let config = parse(&["-z", "20", "--http-timeout", "10"]).unwrap();
    assert_eq!(config.socket_timeout, Duration::from_secs(10));
}

#[test]
fn unknown_key_names_file_line_and_suggestion() {
    assert_eq!(
        ini_error("[uwsgi]\nmaster\nproceses = 4\n"),
        "app.ini:3: unknown option 'proceses' (did you mean 'processes'?)"
    );
    assert_eq!(ini_error("[uwsgi]\nproject = shop\n"), "app.ini:2: unknown option 'project'");
    assert_eq!(ini_error("[uwsgi]\nmastr\n"), "app.ini:2: unknown option 'mastr' (did you mean 'master'?)");
}

#[test]
fn placeholders_referenced_later_are_allowed() {
    let config = ini_config("[uwsgi]\nproject = shop\nbase = /srv/%(project)\nchdir = %(base)/current\n");
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/shop/current")));
    let placeholders: Vec<&str> = config
        .raw
        .iter()
        .filter(|option| option.key == "set-placeholder")
        .map(|option| option.value.as_str())
        .collect();
    assert_eq!(placeholders, ["project=shop", "base=/srv/shop"]);
}

#[test]
fn explicit_placeholders_need_no_reference() {
    let config = ini_config("[uwsgi]\nset-placeholder = unused=1\nset-ph = port=9000\nhttp-socket = :%(port)\n");
    assert_eq!(config.sockets, vec![http(tcp("0.0.0.0", 9000))]);
    let config = parse(&["--set-ph", "name=shop", "--chdir", "/srv/%(name)"]).unwrap();
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/shop")));
    assert_eq!(
        ini_error("[uwsgi]\nset-ph = processes=4\n"),
        "app.ini:2: invalid value 'processes=4' for 'set-placeholder': this name is an option; a placeholder needs \
         a name of its own"
    );
    assert_eq!(
        ini_error("[uwsgi]\nset-ph = novalue\n"),
        "app.ini:2: invalid value 'novalue' for 'set-placeholder': expected NAME=VALUE"
    );
}

#[test]
fn references_to_options_use_their_last_value_in_any_spelling() {
    let config = ini_config("[uwsgi]\nprocesses = 2\nworkers = 4\nsocket = /tmp/w%(processes)-%(workers).sock\n");
    assert_eq!(config.sockets, vec![uwsgi(SocketAddress::Unix(PathBuf::from("/tmp/w4-4.sock")))]);
}

#[test]
fn unknown_reference_is_an_error() {
    assert_eq!(
        ini_error("[uwsgi]\nchdir = /srv/%(project)\nproject = shop\n"),
        "app.ini:2: %(project) refers to no option or placeholder set before this point (define it earlier, \
         e.g. `set-placeholder = project=VALUE`)"
    );
}

#[test]
fn environment_variables_come_from_the_given_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "app.ini", "[uwsgi]\nchdir = $(APP_HOME)/src\nvirtualenv = $(UNSET)/venv\n");
    let env = |name: &str| (name == "APP_HOME").then(|| "/home/app".to_owned());
    let config =
        parse_vassal_args(&os(&["--ini", ini.to_str().unwrap(), "--pidfile", "$(APP_HOME)/pid"]), &env).unwrap();
    assert_eq!(config.chdir, Some(PathBuf::from("/home/app/src")));
    assert_eq!(config.virtualenv, Some(PathBuf::from("/venv")));
    assert_eq!(config.pidfile, Some(PathBuf::from("/home/app/pid")));
}

#[test]
fn command_line_keeps_magic_letters() {
    let config = parse(&["--socket", "/tmp/%n.sock"]).unwrap();
    assert_eq!(config.sockets, vec![uwsgi(SocketAddress::Unix(PathBuf::from("/tmp/%n.sock")))]);
}

#[test]
fn includes_are_read_in_place_relative_to_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.d");
    fs::create_dir(&conf).unwrap();
    write(&conf, "common.ini", "[uwsgi]\nsocket = :2\nprocesses = 8\n");
    write(&conf, "magic.ini", "[uwsgi]\nsocket = /run/%n.sock\n");
    let main = write(
        &conf,
        "main.ini",
        "[uwsgi]\nsocket = :1\nini = common.ini\nsocket = :3\nprocesses = 2\nini = %d/magic.ini\n",
    );
    let config = parse(&[main.to_str().unwrap()]).unwrap();
    assert_eq!(
        config.sockets,
        vec![
            uwsgi(tcp("0.0.0.0", 1)),
            uwsgi(tcp("0.0.0.0", 2)),
            uwsgi(tcp("0.0.0.0", 3)),
            uwsgi(SocketAddress::Unix(PathBuf::from("/run/magic.sock"))),
        ]
    );
    assert_eq!(config.processes, 2);
    assert_eq!(config.name, "main", "the first file names the app");
    let socket_two = config.raw.iter().find(|option| option.value == ":2").unwrap();
    assert_eq!(socket_two.origin, Origin::File { path: conf.join("common.ini"), line: 2 });
}

#[test]
fn include_cycles_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.ini", "[uwsgi]\nini = a.ini\n");
    let a = write(dir.path(), "a.ini", "[uwsgi]\nprocesses = 2\nini = b.ini\n");
    let error = parse(&[a.to_str().unwrap()]).unwrap_err();
    assert!(matches!(error, ConfigError::IncludeCycle { .. }), "{error}");
    let message = error.to_string();
    let b = dir.path().join("b.ini");
    assert!(message.starts_with(&format!("{}:2: including", b.display())), "{message}");
    assert!(message.contains("a.ini -> "), "{message}");
    let own_section = write(dir.path(), "self.ini", "[uwsgi]\nini = :uwsgi\n");
    assert!(matches!(parse(&[own_section.to_str().unwrap()]), Err(ConfigError::IncludeCycle { .. })));
}

#[test]
fn sections() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(
        dir.path(),
        "multi.ini",
        "[uwsgi]\nprocesses = 1\n[prod]\nprocesses = 8\nini = :common\n[common]\nthreads = 2\nchdir = %x\n",
    );
    let spec = format!("{}:prod", ini.display());
    let config = parse(&[&spec]).unwrap();
    assert_eq!(config.processes, 8);
    assert_eq!(config.threads, 2);
    assert_eq!(config.chdir, Some(PathBuf::from(format!("{}:common", ini.display()))));
    let config = parse(&["--ini", &spec, "--ini", ":uwsgi"]).unwrap();
    assert_eq!(config.processes, 1, "`:section` on the command line reads the previous file");

    let error = parse(&["--ini", &format!("{}:staging", ini.display())]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}: no [staging] section in this file (referenced at command line)", ini.display())
    );
}

#[test]
fn missing_file_error_names_the_file_and_reference() {
    let error = parse(&["--ini", "/nonexistent/app.ini"]).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("/nonexistent/app.ini: cannot read config file: "), "{message}");
    assert!(message.ends_with(" (referenced at command line)"), "{message}");
    assert!(ini_error("[uwsgi]\nini = missing.ini\n").ends_with("(referenced at app.ini:2)"));
}

#[test]
fn syntax_errors_name_the_line() {
    assert_eq!(ini_error("[uwsgi]\nmaster\n[oops\n"), "app.ini:3: section header '[oops' has no closing ']'");
    let (result, _dir, path) = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.ini");
        fs::write(&path, b"[uwsgi]\nchdir = /srv/\xff\n").unwrap();
        (parse(&[path.to_str().unwrap()]), dir, path)
    };
    assert_eq!(result.unwrap_err().to_string(), format!("{}:2: the file is not valid UTF-8", path.display()));
}

#[test]
fn load_ini_gives_raw_options_with_origins() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "vassal.ini", "[uwsgi]\nworkers = 2\n\n-- = x\n");
    // `--` is not a key uWSGI knows either: it is an unreferenced placeholder, hence an error.
    assert!(load_ini(ini.to_str().unwrap(), &no_env).is_err());
    let ini = write(dir.path(), "vassal.ini", "[uwsgi]\nworkers = 2\n\nmaster\n");
    let raw = load_ini(ini.to_str().unwrap(), &no_env).unwrap();
    assert_eq!(
        raw,
        vec![
            RawOption {
                key: "processes".to_owned(),
                value: "2".to_owned(),
                origin: Origin::File { path: ini.clone(), line: 2 }
            },
            RawOption {
                key: "master".to_owned(),
                value: "true".to_owned(),
                origin: Origin::File { path: ini.clone(), line: 4 }
            },
        ]
    );
    let config = VassalConfig::from_raw(raw, Some(&app_name_of(ini.to_str().unwrap()))).unwrap();
    assert_eq!(config.name, "vassal");
    assert_eq!(config.processes, 2);
}

#[test]
fn positional_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "site.ini", "[uwsgi]\nprocesses = 3\n");
    let config = parse(&[ini.to_str().unwrap(), "app.wsgi"]).unwrap();
    assert_eq!(config.processes, 3);
    assert_eq!(config.app.unwrap().source, AppSource::File(PathBuf::from("app.wsgi")));
    assert_eq!(
        parse(&["whatever"]).unwrap_err().to_string(),
        "command line: unexpected argument 'whatever' (options start with - or --, config files end in .ini, \
         app files in .py or .wsgi)"
    );
}

#[test]
fn app_specs() {
    let app = |args: &[&str]| parse(args).unwrap().app.unwrap();
    assert_eq!(
        app(&["--module", "pkg.wsgi:create"]),
        AppSpec { source: AppSource::Module("pkg.wsgi".to_owned()), callable: "create".to_owned() }
    );
    assert_eq!(
        app(&["-w", "pkg.wsgi", "--callable", "app"]),
        AppSpec { source: AppSource::Module("pkg.wsgi".to_owned()), callable: "app".to_owned() }
    );
    assert_eq!(app(&["--callable", "app", "--module", "m:make"]).callable, "make", "module's :callable wins");
    assert_eq!(app(&["--module", "a:x", "--module", "b"]).callable, "application", "the last module counts");
    assert_eq!(app(&["--file", "a.py", "--wsgi-file", "b.py"]).source, AppSource::File(PathBuf::from("b.py")));
    // uWSGI loads the module first and the file only if the module fails.
    let config = parse(&["--module", "m", "--wsgi-file", "app.py"]).unwrap();
    assert_eq!(config.app.unwrap().source, AppSource::Module("m".to_owned()));
    assert_eq!(config.fallback_apps[0].source, AppSource::File(PathBuf::from("app.py")));
    let config = parse(&["--wsgi-file", "app.py", "--callable", "app", "--module", "m:make()"]).unwrap();
    assert_eq!(config.app.unwrap(), AppSpec { source: AppSource::Module("m".to_owned()), callable: "make()".into() });
    assert_eq!(config.fallback_apps[0].callable, "app");
    // ...then paste (python_plugin.c `uwsgi_python_init_apps`), whatever the order given.
    let config = parse(&["--paste", "config:/a.ini", "--wsgi-file", "app.py", "--module", "m"]).unwrap();
    assert_eq!(config.app.unwrap().source, AppSource::Module("m".to_owned()));
    let fallbacks: Vec<AppSource> = config.fallback_apps.into_iter().map(|spec| spec.source).collect();
    assert_eq!(fallbacks, [AppSource::File("app.py".into()), AppSource::Paste("config:/a.ini".into())]);
    assert_eq!(app(&["--paste", "config:/a.ini"]).source, AppSource::Paste("config:/a.ini".to_owned()));
    assert!(matches!(parse(&["--module", "m:"]), Err(ConfigError::InvalidValue { .. })));
    assert!(matches!(parse(&["--module", ":app"]), Err(ConfigError::InvalidValue { .. })));
}

#[test]
fn every_field_from_an_ini() {
    let config = ini_config(
        "[uwsgi]\n\
         http-socket = 127.0.0.1:8000\n\
         http11-socket = [::1]:8001\n\
         http = localhost:8002\n\
         uwsgi-socket = fd://3\n\
         chdir = /srv/app\n\
         python-path = /srv/lib\n\
         venv = /srv/venv\n\
         env = DJANGO_SETTINGS_MODULE=site.settings\n\
         need-app = false\n\
         plugins = python3, http\n\
         plugin = /usr/lib/uwsgi/plugins/python311_plugin.so\n\
         module = site.wsgi:application\n\
         workers = 6\n\
         master = false\n\
         lazy-apps = yes\n\
         threads = 4\n\
         listen = 4096\n\
         buffer-size = 32768\n\
         post-buffering = 8192\n\
         limit-post = 1000000\n\
         http-keepalive = 5\n\
         chmod-socket\n\
         uid = www-data\n\
         gid = 33\n\
         pidfile = /run/app.pid\n\
         logto = /var/log/app.log\n\
         max-requests = 1000\n\
         max-requests-delta = 10\n\
         max-worker-lifetime = 3600\n\
         reload-on-rss = 512\n\
         evil-reload-on-rss = 1024\n\
         limit-as = 2048\n\
         harakiri = 30\n\
         harakiri-verbose\n\
         reload-mercy = 10\n\
         worker-reload-mercy = 20\n\
         touch-reload = /srv/app/reload\n\
         touch-chain-reload = /srv/app/chain\n\
         master-fifo = /run/app.fifo\n\
         cheaper = 2\n\
         cheaper-initial = 3\n\
         cheaper-step = 2\n\
         cheaper-algo = spare\n\
         idle = 30\n\
         disable-logging = on\n\
         stats-server = /run/stats.sock\n\
         stats-http\n\
         log-format = json\n\
         log-4xx\n\
         log-5xx = true\n\
         log-slow = 500\n",
    );
    assert_eq!(
        config.sockets,
        vec![
            http(tcp("127.0.0.1", 8000)),
            http(tcp("[::1]", 8001)),
            http(tcp("localhost", 8002)),
            uwsgi(SocketAddress::Fd(3)),
        ]
    );
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/app")));
    assert_eq!(config.pythonpath, [PathBuf::from("/srv/lib")]);
    assert_eq!(config.virtualenv, Some(PathBuf::from("/srv/venv")));
    assert_eq!(config.env, [("DJANGO_SETTINGS_MODULE".to_owned(), "site.settings".to_owned())]);
    assert!(!config.need_app);
    assert_eq!(
        config.app,
        Some(AppSpec { source: AppSource::Module("site.wsgi".to_owned()), callable: "application".to_owned() })
    );
    assert_eq!(config.processes, 6);
    assert!(!config.master, "kept as given; the runtime warns and runs a master anyway");
    assert!(config.lazy_apps);
    assert_eq!(config.threads, 4);
    assert_eq!(config.listen, 4096);
    assert_eq!(config.buffer_size, 32768);
    assert_eq!(config.post_buffering, 8192);
    assert_eq!(config.limit_post, 1_000_000);
    assert_eq!(config.keepalive_timeout, Duration::from_secs(5));
    assert_eq!(config.chmod_socket, Some(0o666));
    assert_eq!(config.uid.as_deref(), Some("www-data"));
    assert_eq!(config.gid.as_deref(), Some("33"));
    assert_eq!(config.pidfile, Some(PathBuf::from("/run/app.pid")));
    assert_eq!(config.logto, Some(PathBuf::from("/var/log/app.log")));
    assert_eq!(config.max_requests, 1000);
    assert_eq!(config.max_requests_delta, 10);
    assert_eq!(config.max_worker_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(config.reload_on_rss, Some(512));
    assert_eq!(config.evil_reload_on_rss, Some(1024));
    assert_eq!(config.limit_as, Some(2048));
    assert_eq!(config.harakiri, Some(Duration::from_secs(30)));
    assert!(config.harakiri_verbose);
    assert_eq!(config.reload_mercy, Duration::from_secs(10));
    assert_eq!(config.worker_reload_mercy, Duration::from_secs(20));
    assert_eq!(config.touch_reload, [PathBuf::from("/srv/app/reload")]);
    assert_eq!(config.touch_chain_reload, [PathBuf::from("/srv/app/chain")]);
    assert_eq!(config.master_fifo, [PathBuf::from("/run/app.fifo")]);
    let cheaper = config.cheaper.as_ref().expect("cheaper");
    assert_eq!((cheaper.min_workers, cheaper.initial, cheaper.step, cheaper.algo), (2, 3, 2, CheaperAlgo::Spare));
    assert_eq!(config.tuning.idle, Some(Duration::from_secs(30)));
    assert!(config.disable_logging);
    assert_eq!(config.stats, Some(SocketAddress::Unix(PathBuf::from("/run/stats.sock"))));
    assert!(config.stats_http);
    assert_eq!(config.log_format, LogFormat::Json);
    assert!(config.log_4xx);
    assert!(config.log_5xx);
    assert_eq!(config.log_slow, Some(Duration::from_millis(500)));
}

#[test]
fn cheaper_defaults() {
    let config = parse(&["--processes", "4", "--cheaper", "1"]).unwrap();
    assert_eq!(
        config.cheaper,
        Some(Cheaper {
            min_workers: 1,
            initial: 1,
            step: 1,
            algo: CheaperAlgo::Spare,
            overload: 3,
            idle_cycles: 10,
            rss_limit_soft: None,
            rss_limit_hard: None,
            busyness: cheaper::Busyness::default(),
        })
    );
    assert_eq!(parse(&["--processes", "4", "--cheaper", "0"]).unwrap().cheaper, None);
    assert_eq!(config.tuning, cheaper::Tuning::default());
}

/// The busyness plugin's options with their defaults (0 means the default, as in the plugin), the other
/// algorithms by name, and `cheaper-step = 0` read as 1 as uWSGI's loops do.
#[test]
fn cheaper_algorithms_and_busyness_options() {
    let config = ini_config(
        "[uwsgi]\nprocesses = 128\ncheaper = 8\ncheaper-initial = 16\ncheaper-overload = 1\ncheaper-step = 16\n\
         cheaper-algo = busyness\ncheaper-busyness-multiplier = 30\ncheaper-busyness-min = 20\n\
         cheaper-busyness-max = 70\ncheaper-busyness-backlog-alert = 16\ncheaper-busyness-backlog-step = 2\n\
         cheaper-busyness-penalty = 0\ncheaper-busyness-backlog-multiplier = 4\n\
         cheaper-busyness-backlog-nonzero = 5\ncheaper-busyness-verbose = true\n",
    );
    let cheaper = config.cheaper.expect("cheaper");
    assert_eq!((cheaper.min_workers, cheaper.initial, cheaper.step, cheaper.overload), (8, 16, 16, 1));
    assert_eq!(cheaper.algo, CheaperAlgo::Busyness);
    assert_eq!(
        cheaper.busyness,
        cheaper::Busyness {
            max: 70,
            min: 20,
            multiplier: 30,
            penalty: 2,
            backlog_alert: 16,
            backlog_multiplier: 4,
            backlog_step: 2,
            backlog_nonzero: Duration::from_secs(5),
            verbose: true,
        }
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    for (name, algo) in [
        ("spare", CheaperAlgo::Spare),
        ("spare2", CheaperAlgo::Spare2),
        ("backlog", CheaperAlgo::Backlog),
        ("manual", CheaperAlgo::Manual),
    ] {
        let config = parse(&["--processes", "4", "--cheaper", "1", "--cheaper-algo", name, "--cheaper-step", "0"]);
        let cheaper = config.unwrap().cheaper.expect("cheaper");
        assert_eq!((cheaper.algo, cheaper.step), (algo, 1), "{name}");
    }
    let spare = ini_config("[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-busyness-max = 80\ncheaper-idle = 0\n");
    assert_eq!(spare.cheaper.as_ref().map(|c| c.idle_cycles), Some(0));
    assert!(spare.warnings[0].to_string().contains("only has an effect with cheaper-algo = busyness"));
}

/// uWSGI's startup checks: cheaper-initial out of range is corrected with a warning; the RSS limits must be
/// soft first, hard above it; cheaper-* without cheaper do nothing, with a warning.
#[test]
fn cheaper_limits_and_corrections() {
    let config = ini_config("[uwsgi]\nprocesses = 4\ncheaper = 2\ncheaper-initial = 9\n");
    assert_eq!(config.cheaper.as_ref().map(|c| c.initial), Some(4));
    assert!(config.warnings[0].to_string().contains("starting 4 workers, as uWSGI does"), "{:?}", config.warnings);
    let config = ini_config("[uwsgi]\nprocesses = 4\ncheaper = 2\ncheaper-initial = 1\n");
    assert_eq!(config.cheaper.as_ref().map(|c| c.initial), Some(2));
    let config = ini_config(
        "[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-rss-limit-soft = %(2 * 1024 * 1024 * 1024)\n\
         cheaper-rss-limit-hard = 3000000000\n",
    );
    let cheaper = config.cheaper.expect("cheaper");
    assert_eq!((cheaper.rss_limit_soft, cheaper.rss_limit_hard), (Some(2 << 30), Some(3_000_000_000)));
    assert_eq!(
        ini_error("[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-rss-limit-hard = 10\n"),
        "app.ini:4: invalid value '10' for 'cheaper-rss-limit-hard': cheaper-rss-limit-hard needs \
         cheaper-rss-limit-soft too (uWSGI refuses it alone)"
    );
    assert!(ini_error(
        "[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-rss-limit-soft = 10\ncheaper-rss-limit-hard = 10\n"
    )
    .contains("must be higher than cheaper-rss-limit-soft (10)"));
    assert!(ini_error("[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-overload = 0\n").contains("must be at least 1"));
    // As the kobotoolbox files have it: the soft limit set, cheaper only when an environment variable is.
    let config = ini_config("[uwsgi]\nprocesses = 2\ncheaper-rss-limit-soft = 2147483648\ncheaper-step = 1\n");
    assert_eq!(config.cheaper, None);
    assert_eq!(config.warnings.len(), 2);
    assert!(config.warnings[0].to_string().contains("'cheaper-rss-limit-soft' has no effect without 'cheaper'"));
}

/// idle, harakiri-queue-threshold, cpu-affinity, never-swap and ksm (bare `ksm` is 1, as uWSGI's optional
/// argument).
#[test]
fn process_tuning_options() {
    let config = ini_config("[uwsgi]\nidle = 30\nharakiri-queue-threshold = 80\ncpu-affinity = 2\nnever-swap\nksm\n");
    assert_eq!(
        config.tuning,
        cheaper::Tuning {
            idle: Some(Duration::from_secs(30)),
            harakiri_queue_threshold: 80,
            cpu_affinity: 2,
            never_swap: true,
            ksm: 1,
        }
    );
    assert_eq!(ini_config("[uwsgi]\nksm = 100\n").tuning.ksm, 100);
    assert_eq!(ini_config("[uwsgi]\nidle = 0\n").tuning.idle, None);
    // `backlog-status` is no uWSGI option (a management flag's name): accepted with no effect, as uWSGI reads it.
    assert!(ini_config("[uwsgi]\nbacklog-status = true\n").warnings.is_empty());
}

#[test]
fn request_log_templates_keep_their_variables() {
    let config = ini_config(
        "[uwsgi]\nset-ph = app=shop\nlogformat = [%(app)] %(addr) \"%(method) %(uri)\" %(status) %(msecs)ms 100%%\n",
    );
    assert_eq!(
        config.log_format,
        LogFormat::Template("[shop] %(addr) \"%(method) %(uri)\" %(status) %(msecs)ms 100%".to_owned())
    );
}

#[test]
fn compatibility_options_are_accepted() {
    let config = ini_config(
        "[uwsgi]\nvacuum = true\nenable-threads\ndie-on-term\nthunder-lock\nsingle-interpreter\nstrict\n\
         no-orphans\npy-call-osafterfork\nauto-procname\nprocname-prefix = app-\nprocname-prefix-spaced = app\n\
         procname = app\nprocname-master = app-master\nmemory-report\nprocesses = 2\n",
    );
    assert_eq!(config.processes, 2);
    let config = parse(&["-T", "-i", "-m", "--vacuum"]).unwrap();
    assert_eq!(config.raw.len(), 4);
    // uWSGI's flag rule: anything but false/off/no/0 is true; liege warns about the unusual spelling.
    let config = ini_config("[uwsgi]\nvacuum = sometimes\nenable-threads = 4\n");
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert!(config.warnings[1].to_string().contains("app.ini:3: warning: '4' for flag 'enable-threads'"));
}

#[test]
fn unsupported_options_say_what_to_do() {
    for (line, needle) in [
        ("gevent = 100", "prefork workers and threads"),
        ("async = 10", "prefork workers and threads"),
        ("ugreen = true", "prefork workers and threads"),
        ("vhost = true", "route by Host"),
    ] {
        let message = ini_error(&format!("[uwsgi]\n{line}\n"));
        assert!(message.contains("is not supported by liege") && message.contains(needle), "{message}");
    }
}

#[test]
fn emperor_options_in_a_vassal_are_errors() {
    assert_eq!(
        ini_error("[uwsgi]\nemperor = /etc/vassals\n"),
        "app.ini:2: option 'emperor' configures the emperor, not an app; give it to `liege emperor DIR`"
    );
    assert!(matches!(parse(&["--api", ":9191"]), Err(ConfigError::EmperorOnly { .. })));
}

#[test]
fn validation_errors_name_option_value_and_origin() {
    let cases = [
        ("processes = 0", "app.ini:2: invalid value '0' for 'processes': must be at least 1"),
        ("processes = -1", "app.ini:2: invalid value '-1' for 'processes': must not be negative"),
        ("workers = four", "app.ini:2: invalid value 'four' for 'processes': must be at least 1"),
        ("threads = 0", "app.ini:2: invalid value '0' for 'threads': must be at least 1"),
        ("listen = 0", "app.ini:2: invalid value '0' for 'listen': must be at least 1"),
        ("max-requests = -5", "app.ini:2: invalid value '-5' for 'max-requests': must not be negative"),
        ("chmod-socket = 999", "app.ini:2: invalid value '999' for 'chmod-socket': expected an octal file mode such as 666 or 0660"),
        ("socket = :99999", "app.ini:2: invalid value ':99999' for 'socket': the port must be a number from 0 to 65535"),
        ("http-socket = ::1:80", "app.ini:2: invalid value '::1:80' for 'http-socket': an IPv6 address needs brackets: [::1]:9000"),
        ("stats = host:port", "app.ini:2: invalid value 'host:port' for 'stats': the port must be a number from 0 to 65535"),
        ("env = NOEQUALS", "app.ini:2: invalid value 'NOEQUALS' for 'env': expected KEY=VALUE"),
        ("socket-timeout = 0", "app.ini:2: invalid value '0' for 'socket-timeout': must be at least 1"),
        ("processes =", "app.ini:2: option 'processes' needs a value"),
        ("chdir", "app.ini:2: option 'chdir' needs a value"),
        ("cheaper-algo = backlog2", "app.ini:2: invalid value 'backlog2' for 'cheaper-algo': liege has uWSGI's cheaper algorithms spare, spare2, backlog, manual and busyness (uWSGI falls back to spare for an unknown name; its example plugin backlog2 is not available)"),
        ("processes = -2", "app.ini:2: invalid value '-2' for 'processes': must not be negative"),
        ("chdir = $(UNSET)", "app.ini:2: invalid value '' for 'chdir': empty value (after expanding variables)"),
    ];
    for (line, expected) in cases {
        assert_eq!(ini_error(&format!("[uwsgi]\n{line}\n")), expected, "for `{line}`");
    }
}

#[test]
fn cheaper_is_checked_against_processes() {
    assert_eq!(
        ini_error("[uwsgi]\nprocesses = 4\ncheaper = 4\n"),
        "app.ini:3: invalid value '4' for 'cheaper': cheaper must be lower than processes (4), which is the maximum \
         number of workers"
    );
    assert_eq!(
        ini_error("[uwsgi]\ncheaper = 2\n"),
        "app.ini:2: invalid value '2' for 'cheaper': cheaper must be lower than processes (1), which is the maximum \
         number of workers"
    );
}

#[test]
fn accepted_plugin_spellings() {
    for plugins in
        ["python", "python3", "python311", "python3.11", "python3_11", "0:python", "python3,http", " python3 , "]
    {
        assert!(parse(&["--plugins", plugins]).is_ok(), "{plugins} should be accepted");
    }
}

#[test]
fn origin_display() {
    assert_eq!(Origin::CommandLine { index: 4 }.to_string(), "command line");
    assert_eq!(Origin::File { path: PathBuf::from("simple_app.ini"), line: 3 }.to_string(), "simple_app.ini:3");
}

#[test]
fn app_name_of_spec() {
    assert_eq!(app_name_of("/etc/vassals/shop.ini"), "shop");
    assert_eq!(app_name_of("shop.ini:prod"), "shop");
    assert_eq!(VassalConfig::from_raw(Vec::new(), Some("/x/shop.ini")).unwrap().name, "shop");
    assert_eq!(VassalConfig::from_raw(Vec::new(), Some("my.app")).unwrap().name, "my.app");
    assert_eq!(VassalConfig::from_raw(Vec::new(), None).unwrap().name, "liege");
}

#[test]
fn emperor_command_lines() {
    let config = parse_emperor_args(
        &os(&[
            "emperor",
            "/etc/vassals",
            "--api",
            "0.0.0.0:9000",
            "--api-token-file",
            "/etc/liege/token",
            "--run-dir",
            "/run/liege",
            "--log-dir",
            "/var/log/liege",
            "--vassal-port-range",
            "9000-9100",
            "--vassals-include",
            "/etc/liege/common.ini",
            "--vassal-set",
            "workers=2",
            "--vassal-set",
            "harakiri=30",
            "--emperor-throttle",
            "500",
            "--emperor-max-throttle",
            "30000",
            "--master",
            "--vacuum",
        ]),
        &no_env,
    )
    .unwrap();
    assert_eq!(config.dir, PathBuf::from("/etc/vassals"));
    assert_eq!(config.api, "0.0.0.0:9000");
    assert_eq!(config.api_token_file, Some(PathBuf::from("/etc/liege/token")));
    assert_eq!(config.run_dir, Some(PathBuf::from("/run/liege")));
    assert_eq!(config.log_dir, Some(PathBuf::from("/var/log/liege")));
    assert_eq!(config.vassal_port_range, (9000, 9100));
    assert_eq!(config.vassals_include, [PathBuf::from("/etc/liege/common.ini")]);
    assert_eq!(config.vassal_set, [("processes".to_owned(), "2".to_owned()), ("harakiri".to_owned(), "30".to_owned())]);
    assert_eq!(config.throttle_base, Duration::from_millis(500));
    assert_eq!(config.throttle_max, Duration::from_secs(30));

    let config = parse_emperor_args(&os(&["--emperor", "vassals"]), &no_env).unwrap();
    assert_eq!(config.dir, PathBuf::from("vassals"));
    assert_eq!(config.api, "127.0.0.1:9191");
    assert_eq!(config.vassal_port_range, (8001, 8999));
    assert_eq!(config.throttle_base, Duration::from_secs(1));
    assert_eq!(config.throttle_max, Duration::from_secs(60));
    assert!(config.vassals_include.is_empty() && config.vassal_set.is_empty());
    assert_eq!(config.stats, None);
    assert_eq!(config.required_heartbeat, Duration::from_secs(30));

    let config = parse_emperor_args(
        &os(&[
            "emperor",
            "vassals",
            "--emperor-stats-server",
            "/run/emperor.sock",
            "--emperor-required-heartbeat",
            "5",
        ]),
        &no_env,
    )
    .unwrap();
    assert_eq!(config.stats, Some(SocketAddress::Unix(PathBuf::from("/run/emperor.sock"))));
    assert_eq!(config.required_heartbeat, Duration::from_secs(5));
    assert!(parse_emperor_args(&os(&["emperor", "vassals", "--emperor-required-heartbeat", "0"]), &no_env).is_err());
}

#[test]
fn emperor_from_an_ini_file() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "emperor.ini", "[uwsgi]\nemperor = %d/vassals\napi = 127.0.0.1:9999\n");
    let config = parse_emperor_args(&os(&[ini.to_str().unwrap()]), &no_env).unwrap();
    let dir = fs::canonicalize(dir.path()).unwrap();
    assert_eq!(config.dir, PathBuf::from(format!("{}/vassals", dir.display())));
    assert_eq!(config.api, "127.0.0.1:9999");
}

#[test]
fn app_tuning_in_an_emperor_ini_is_a_warning_but_an_app_of_its_own_is_an_error() {
    // muccg/yabi's docker.ini: uWSGI's emperor-only instance ignores buffer-size, and so does liege, saying so.
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "docker.ini", "[uwsgi]\nemperor = /app/vassals\nvacuum = True\nbuffer-size = 8192\n");
    let config = parse_emperor_args(&os(&["--ini", ini.to_str().unwrap()]), &no_env).unwrap();
    let warning = config.warnings.iter().map(ToString::to_string).find(|w| w.contains("buffer-size"));
    let warning = warning.expect("a warning for buffer-size");
    assert!(warning.contains("docker.ini:4") && warning.contains("vassal-set = buffer-size=VALUE"), "{warning}");
    // An emperor file that also names an app to serve: liege's emperor would not serve it, so it is an error.
    for line in ["wsgi-file = app.py", "http-socket = :8080", "module = app:application", "processes = 4"] {
        let ini = write(dir.path(), "both.ini", &format!("[uwsgi]\nemperor = /app/vassals\n{line}\n"));
        let error = parse_emperor_args(&os(&["--ini", ini.to_str().unwrap()]), &no_env).unwrap_err().to_string();
        assert!(error.contains("configures an app, not the emperor"), "{line}: {error}");
    }
    // On liege's own command line app options stay errors.
    assert!(parse_emperor_args(&os(&["dir", "--buffer-size", "8192"]), &no_env).is_err());
}

#[test]
fn packaged_emperor_configs_set_the_emperors_own_user_tyranny_and_binary() {
    // theatlantic's RPM and PLD's package, as they ship.
    let dir = tempfile::tempdir().unwrap();
    let ini = write(
        dir.path(),
        "uwsgi.ini",
        "[uwsgi]\nuid = uwsgi\ngid = uwsgi\nemperor = /etc/uwsgi.d\nstats = /run/uwsgi/stats.sock\n\
         chmod-socket = 660\nemperor-tyrant = true\ncap = setgid,setuid\nbinary-path = /usr/bin/uwsgi\n",
    );
    let config = parse_emperor_args(&os(&["--ini", ini.to_str().unwrap()]), &no_env).unwrap();
    assert_eq!((config.uid.as_deref(), config.gid.as_deref()), (Some("uwsgi"), Some("uwsgi")));
    assert_eq!(config.caps, ["setgid,setuid"]);
    assert_eq!(config.chmod_socket, Some(0o660));
    assert_eq!(config.tyrant, Some(crate::Tyrant { nofollow: false, initgroups: false }));
    assert_eq!(config.binary_path, Some(PathBuf::from("/usr/bin/uwsgi")));
    assert_eq!(config.stats, Some(crate::SocketAddress::Unix(PathBuf::from("/run/uwsgi/stats.sock"))));
    // emperor-stats wins over the instance's `stats`; the tyrant's switches; tyrant = false is off.
    let config = parse_emperor_args(
        &os(&[
            "dir",
            "--stats",
            "/a.sock",
            "--emperor-stats",
            "127.0.0.1:1717",
            "--emperor-tyrant",
            "--emperor-tyrant-nofollow",
            "--emperor-tyrant-initgroups",
        ]),
        &no_env,
    )
    .unwrap();
    assert_eq!(config.stats, Some(crate::SocketAddress::Tcp { host: "127.0.0.1".into(), port: 1717 }));
    assert_eq!(config.tyrant, Some(crate::Tyrant { nofollow: true, initgroups: true }));
    let off = write(dir.path(), "off.ini", "[uwsgi]\nemperor = /etc/uwsgi.d\nemperor-tyrant = false\n");
    assert_eq!(parse_emperor_args(&os(&["--ini", off.to_str().unwrap()]), &no_env).unwrap().tyrant, None);
    // In a vassal, `cap` is the master's; emperor-tyrant is the emperor's.
    assert_eq!(parse(&["--cap", "net_bind_service", "--wsgi-file", "a.py"]).unwrap().caps, ["net_bind_service"]);
    assert!(parse(&["--emperor-tyrant", "--wsgi-file", "a.py"]).unwrap_err().to_string().contains("emperor"));
}

#[test]
fn emperor_subreaper_is_an_emperor_flag() {
    let on = parse_emperor_args(&os(&["dir", "--emperor-subreaper"]), &no_env).unwrap();
    assert!(on.subreaper);
    assert!(!parse_emperor_args(&os(&["dir"]), &no_env).unwrap().subreaper);
    let dir = tempfile::tempdir().unwrap();
    let off = write(dir.path(), "e.ini", "[uwsgi]\nemperor = /etc/uwsgi.d\nemperor-subreaper = false\n");
    assert!(!parse_emperor_args(&os(&["--ini", off.to_str().unwrap()]), &no_env).unwrap().subreaper);
    assert!(parse(&["--emperor-subreaper", "--wsgi-file", "a.py"]).unwrap_err().to_string().contains("emperor"));
}

#[test]
fn emperor_globs_and_single_files_as_uwsgi_glob_monitor() {
    let source = |value: &str| {
        let config = parse_emperor_args(&os(&["--emperor", value]), &no_env).unwrap();
        (config.dir, config.pattern)
    };
    assert_eq!(source("/etc/vassals"), (PathBuf::from("/etc/vassals"), None));
    assert_eq!(
        source("/etc/uwsgi/apps/*/*.ini"),
        (PathBuf::from("/etc/uwsgi/apps"), Some("/etc/uwsgi/apps/*/*.ini".to_owned()))
    );
    assert_eq!(source("/srv/app/foo.ini"), (PathBuf::from("/srv/app"), Some("/srv/app/foo.ini".to_owned())));
    assert_eq!(source("vassals/*.ini"), (PathBuf::from("vassals"), Some("vassals/*.ini".to_owned())));
    assert_eq!(source("*.ini"), (PathBuf::from("."), Some("*.ini".to_owned())));
}

#[test]
fn emperor_errors() {
    let emperor = |args: &[&str]| parse_emperor_args(&os(args), &no_env).unwrap_err().to_string();
    assert_eq!(
        emperor(&["emperor"]),
        "command line: no vassal directory given; use `liege emperor DIR` or `liege --emperor DIR`"
    );
    assert_eq!(
        emperor(&["dir", "--processes", "4"]),
        "command line: option 'processes' configures an app, not the emperor; put it in the vassal files, or give it \
         to every vassal with --vassal-set processes=VALUE"
    );
    assert_eq!(
        emperor(&["dir", "--vassal-port-range", "9000"]),
        "command line: invalid value '9000' for 'vassal-port-range': expected LOW-HIGH with ports from 1 to 65535, \
         LOW <= HIGH (e.g. 8001-8999)"
    );
    assert!(emperor(&["dir", "--vassal-port-range", "9100-9000"]).contains("LOW <= HIGH"));
    assert!(emperor(&["dir", "--vassal-port-range", "0-10"]).contains("LOW-HIGH"));
    assert_eq!(
        emperor(&["dir", "--vassal-set", "proceses=2"]),
        "command line: invalid value 'proceses=2' for 'vassal-set': 'proceses' is not an option (did you mean \
         'processes'?)"
    );
    assert!(emperor(&["dir", "--vassal-set", "api=x"]).contains("configures the emperor"));
    assert!(emperor(&["dir", "--emperor-throttle", "0"]).contains("must be at least 1"));
    assert!(emperor(&["--emperor", "zmq://tcp://127.0.0.1:5250"]).contains("monitor URLs"));
    assert!(emperor(&["--emperor", "/etc/vassals/*.xml"]).contains("ini vassal files only"));
    assert!(emperor(&["--emperor", "/etc/vassals/[a.ini"]).contains("not a valid glob pattern"));
    assert!(emperor(&["dir", "--apii", "x"]).contains("unknown option '--apii' (did you mean '--api'?)"));
}

#[test]
fn http_keepalive_takes_seconds_or_a_switch() {
    let keepalive = |args: &[&str]| parse(args).unwrap().keepalive_timeout;
    assert_eq!(keepalive(&["--http-keepalive", "5"]), Duration::from_secs(5));
    // http-raw-body sessions never keep alive in uWSGI's router, in either order.
    assert_eq!(keepalive(&["--http-raw-body", "--http-keepalive", "5"]), Duration::ZERO);
    assert_eq!(keepalive(&["--http-keepalive", "5", "--http-raw-body"]), Duration::ZERO);
    assert_eq!(keepalive(&["--http-keepalive"]), Duration::from_secs(15));
    assert_eq!(keepalive(&["--http-keepalive=true"]), Duration::from_secs(15));
    assert_eq!(keepalive(&["--http-keepalive=off"]), Duration::ZERO);
    assert_eq!(keepalive(&["--http-keepalive=0"]), Duration::ZERO);
    assert_eq!(ini_config("[uwsgi]\nhttp-keepalive = on\n").keepalive_timeout, Duration::from_secs(15));
    assert_eq!(ini_config("[uwsgi]\nhttp-keepalive\n").keepalive_timeout, Duration::from_secs(15));
    // uWSGI: 1 means on (with the default timeout), not one second.
    assert_eq!(keepalive(&["--http-keepalive=1"]), Duration::from_secs(15));
    assert_eq!(ini_config("[uwsgi]\nhttp-keepalive = 60\n").keepalive_timeout, Duration::from_secs(60));
}

#[test]
fn empty_values_on_the_command_line() {
    assert!(parse(&["--master=false", "--master="]).unwrap().master, "an empty flag value means true");
    assert_eq!(parse(&["--chmod-socket="]).unwrap().chmod_socket, Some(0o666));
    assert_eq!(parse(&["--chdir="]).unwrap_err().to_string(), "command line: option '--chdir' needs a value");
    assert!(ini_config("[uwsgi]\nmaster = false\nmaster =\n").master);
}

#[test]
fn mounts_and_caches() {
    let config = parse(&[
        "--module",
        "main:app",
        "--mount",
        "/blog=blog.py",
        "--mount",
        "/api=api",
        "--callable",
        "wsgi",
        "--manage-script-name",
        "--no-default-app",
        "--cache2",
        "name=a,items=10,blocksize=100",
        "--cache",
        "5",
        "--cache-blocksize",
        "64",
    ])
    .unwrap();
    assert!(config.manage_script_name && config.no_default_app);
    let mounts: Vec<_> = config.mounts.iter().map(|m| (m.mountpoint.as_str(), m.app.callable.as_str())).collect();
    assert_eq!(mounts, [("/blog", "wsgi"), ("/api", "wsgi")]);
    assert_eq!(config.app.unwrap().callable, "app");
    let caches: Vec<_> = config.caches.iter().map(|c| (c.name.as_str(), c.items, c.blocksize)).collect();
    assert_eq!(caches, [("a", 10, 100), ("default", 5, 64)]);
    assert!(matches!(parse(&["--cache-blocksize", "64"]), Err(ConfigError::Requires { .. })));
    assert!(matches!(parse(&["--mount", "nothing"]), Err(ConfigError::InvalidValue { .. })));
}

/// Found by the `config_ini` fuzz target: each line doubling the last made the reader (and so the emperor, which
/// reads vassal files itself) allocate gigabytes and abort. Now a clear error names the line where the
/// budget ran out, and nothing large is allocated.
#[test]
fn placeholders_that_double_on_every_line_are_refused_not_allocated() {
    let mut text = String::from("[uwsgi]\nhttp-socket = :8000\nwsgi-file = app.py\na0 = xxxxxxxxxxxxxxxx\n");
    for i in 1..40 {
        text.push_str(&format!("a{i} = %(a{prev})%(a{prev})\n", prev = i - 1));
    }
    text.push_str("set-ph = last=%(a39)\n");
    let message = ini_error(&text);
    assert!(message.contains("expands to more than 16 MiB"), "{message}");
    // a0 (line 4) is 16 bytes and a_k is 16 << k, so the values up to a19 (line 23) add up to just over 16 MiB.
    assert!(message.starts_with("app.ini:23: "), "{message}");
}

#[test]
fn ordinary_placeholder_reuse_stays_well_within_the_expansion_budget() {
    let config = ini_config(
        "[uwsgi]\nbase = /srv/shop\nchdir = %(base)\nhttp-socket = :8000\nwsgi-file = %(base)/app.py\n\
         env = A=%(base)%(base)%(base)\n",
    );
    assert_eq!(config.chdir.as_deref(), Some(Path::new("/srv/shop")));
}

/// Parses `--ini app.ini` with the given environment.
fn ini_with_env(text: &str, env: &[(&str, &str)]) -> Result<VassalConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "app.ini", text);
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |name: &str| env.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    parse_vassal_args(&os(&["--ini", path.to_str().unwrap()]), &lookup)
}

#[test]
fn if_env_blocks_keep_or_drop_their_options_and_substitute_the_value() {
    let text = "[uwsgi]\nif-env = WORKERS\nprocesses = %(_)\nendif =\nif-not-env = WORKERS\nprocesses = 3\nendif =\n\
                if-env = MODE=prod\nharakiri = 30\nend-if\nif-env = MODE=dev\nharakiri = 99\nendif\n";
    let config = ini_with_env(text, &[("WORKERS", "7"), ("MODE", "prod")]).unwrap();
    assert_eq!(config.processes, 7);
    assert_eq!(config.harakiri, Some(Duration::from_secs(30)));
    let config = ini_with_env(text, &[]).unwrap();
    assert_eq!(config.processes, 3);
    assert_eq!(config.harakiri, None);
    // if-not-env with a value: kept when the variable differs.
    let config = ini_with_env("[uwsgi]\nif-not-env = MODE=prod\nprocesses = 2\nendif\n", &[("MODE", "dev")]).unwrap();
    assert_eq!(config.processes, 2);
}

#[test]
fn dropped_options_are_not_checked_but_kept_ones_are() {
    // An unknown key or a real-but-unimplemented option in a false branch is never looked at (as in uWSGI).
    let config = ini_with_env("[uwsgi]\nif-env = NOPE\nlua = /srv/app.lua\nfrobnicate = 1\nendif\n", &[]).unwrap();
    assert!(config.raw.iter().all(|option| option.key == "ini"), "{:?}", config.raw);
    let error = ini_with_env("[uwsgi]\nif-env = YES\nlua = /srv/app.lua\nendif\n", &[("YES", "1")]).unwrap_err();
    assert!(error.to_string().contains("'lua' is a uWSGI option that liege does not implement"), "{error}");
}

#[test]
fn else_applies_when_the_if_failed() {
    let text = "[uwsgi]\nif-exists = /nonexistent/x\nprocesses = 9\nelse\nprocesses = 4\nendif\n";
    assert_eq!(ini_config(text).processes, 4);
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[uwsgi]\nif-dir = {}\nchdir = %(_)\nelse\nprocesses = 4\nendif\n", dir.path().display());
    let config = ini_config(&text);
    assert_eq!(config.chdir.as_deref(), Some(dir.path()));
    assert_eq!(config.processes, 1);
}

#[test]
fn file_and_dir_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "flag", "x");
    let (file, dir_path) = (file.display().to_string(), dir.path().display().to_string());
    let check = |condition: &str, argument: &str| -> bool {
        let text = format!("[uwsgi]\n{condition} = {argument}\nprocesses = 2\nendif\n");
        ini_config(&text).processes == 2
    };
    assert!(check("if-file", &file) && !check("if-file", &dir_path) && !check("if-not-file", &file));
    assert!(check("if-dir", &dir_path) && check("if-directory", &dir_path) && !check("if-dir", &file));
    assert!(check("if-not-dir", &file) && check("if-exists", &file) && check("if-exists", &dir_path));
    assert!(check("if-not-exists", "/nonexistent/y") && !check("if-not-exists", &file));
}

#[test]
fn if_opt_tests_options_and_placeholders_set_before() {
    let text = "[uwsgi]\nproject = shop\nif-opt = project=shop\nchdir = /srv/%(_)\nendif\n\
                if-not-opt = socket\nhttp-socket = :8000\nendif\nif-opt = processes\nthreads = 9\nendif\n";
    let config = ini_config(text);
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/shop")));
    assert_eq!(config.sockets, vec![http(tcp("0.0.0.0", 8000))]);
    assert_eq!(config.threads, 1);
}

#[test]
fn for_loops_repeat_options_with_each_item() {
    let config = ini_config("[uwsgi]\nfor = 8001  8002 8003\nhttp-socket = 127.0.0.1:%(_)\nendfor\n");
    let ports: Vec<u16> = config
        .sockets
        .iter()
        .map(|socket| match socket.address {
            SocketAddress::Tcp { port, .. } => port,
            _ => 0,
        })
        .collect();
    assert_eq!(ports, vec![8001, 8002, 8003]);
    let config = ini_config("[uwsgi]\nfor-times = 3\nenv = N%(_)=%(_)\nend-for\n");
    assert_eq!(config.env, vec![("N1".into(), "1".into()), ("N2".into(), "2".into()), ("N3".into(), "3".into())]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "vars.env", "A=1\nB=two words\n");
    fs::create_dir(dir.path().join("sub")).unwrap();
    write(dir.path(), "x.py", "");
    let config = ini_config(&format!(
        "[uwsgi]\nfor-readline = {0}/vars.env\nenv = %(_)\nendfor\nfor-glob = {0}/*\npythonpath = %(_)\nendfor\n\
         for-glob = {0}/*.none\ntouch-reload = %(_)\nendfor\n",
        dir.path().display()
    ));
    assert_eq!(config.env, vec![("A".into(), "1".into()), ("B".into(), "two words".into())]);
    let root = dir.path().display();
    let globbed: Vec<String> = config.pythonpath.iter().map(|path| path.display().to_string()).collect();
    assert_eq!(globbed, vec![format!("{root}/sub/"), format!("{root}/vars.env"), format!("{root}/x.py")]);
    // No match: the pattern itself, as glob(3) with GLOB_NOCHECK.
    assert_eq!(config.touch_reload, vec![PathBuf::from(format!("{root}/*.none"))]);
}

#[test]
fn blocks_do_not_nest_and_end_with_their_file() {
    let error = ini_error("[uwsgi]\nif-env = A\nfor = a b\nendfor\nendif\n");
    assert!(error.starts_with("app.ini:3: 'for' inside the block opened at app.ini:2: config logic blocks do not nest"));
    let dir = tempfile::tempdir().unwrap();
    let inner = write(dir.path(), "inner.ini", "[uwsgi]\nif-env = NOPE\nprocesses = 9\n");
    let outer = write(dir.path(), "outer.ini", &format!("[uwsgi]\nini = {}\nprocesses = 2\n", inner.display()));
    assert_eq!(parse(&["--ini", outer.to_str().unwrap()]).unwrap().processes, 2);
    // A block around an include decides whether it is read.
    let guarded =
        write(dir.path(), "guarded.ini", &format!("[uwsgi]\nif-env = NOPE\nini = {}\nendif\n", outer.display()));
    assert_eq!(parse(&["--ini", guarded.to_str().unwrap()]).unwrap().processes, 1);
    assert!(parse(&["--if-env", "NOPE", "--processes", "3", "--endif"]).unwrap().processes == 1);
}

#[test]
fn underscore_outside_a_block_is_an_unknown_reference() {
    let error = ini_error("[uwsgi]\nprocesses = %(_)\n");
    assert!(error.contains("%(_) refers to no option"), "{error}");
}

#[test]
fn include_reads_ini_files_in_place() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.ini", "[uwsgi]\nprocesses = 5\n");
    let main = write(dir.path(), "main.ini", "[uwsgi]\nprocesses = 2\ninclude = base.ini\nthreads = 3\n");
    let config = parse(&["--ini", main.to_str().unwrap()]).unwrap();
    assert_eq!((config.processes, config.threads), (5, 3));
    let error = ini_error("[uwsgi]\ninclude = base.yaml\n");
    assert!(error.contains("liege reads ini files only, not .yaml"), "{error}");
}

#[test]
fn at_reads_files_and_command_output() {
    let dir = tempfile::tempdir().unwrap();
    let somaxconn = write(dir.path(), "somaxconn", "4096\n");
    let config =
        ini_config(&format!("[uwsgi]\nlisten = @({})\nchdir = @(exec://echo /srv/app)\n", somaxconn.display()));
    assert_eq!(config.listen, 4096);
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/app")));
    let error = ini_error("[uwsgi]\nlisten = @(/nonexistent/file)\n");
    assert!(error.contains("cannot read the file"), "{error}");
    // A lone @ is just a character.
    assert_eq!(ini_config("[uwsgi]\nenv = MAIL=a@b\n").env, vec![("MAIL".into(), "a@b".into())]);
}

#[test]
fn placeholder_arithmetic_is_uwsgis_pipeline() {
    let config = ini_config(
        "[uwsgi]\nbase = 2\nprocesses = %(base * 3)\nthreads = %(2 + 3 * 4)\nlisten = %(base 5)\n\
         max-requests = %(10 / 0)\nharakiri = %(processes ++)\nlimit-post = %(2 * 1024 * 1024 * 1024)\n",
    );
    assert_eq!(config.processes, 6);
    assert_eq!(config.threads, 20, "no precedence, as uWSGI");
    assert_eq!(config.listen, 25, "values side by side concatenate");
    assert_eq!(config.max_requests, 0, "division by zero is 0");
    assert_eq!(config.harakiri, Some(Duration::from_secs(7)));
    assert_eq!(config.limit_post, 2 * 1024 * 1024 * 1024);
    // %k (cpu count) inside the expression, as label-studio's `processes = %(%k * 2)`.
    let cores = crate::host::cpu_count() as u32;
    assert_eq!(ini_config("[uwsgi]\nprocesses = %(%k * 2)\n").processes, cores * 2);
    assert!(ini_error("[uwsgi]\nprocesses = %(nothing * 2)\n").contains("%(nothing) refers to no option"));
}

#[test]
fn environment_defaults() {
    let text = "[uwsgi]\nchdir = $(APP_DIR:-/srv/default)\nenv = A=$(EMPTY-unset)\nenv = B=$(EMPTY:-empty)\n";
    let config = ini_with_env(text, &[("EMPTY", "")]).unwrap();
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/default")));
    assert_eq!(config.env, vec![("A".into(), "".into()), ("B".into(), "empty".into())]);
}

#[test]
fn inline_comments_are_kept_as_uwsgi_does_with_a_warning() {
    let config = ini_config(
        "[uwsgi]\nharakiri = 60 # kill after a minute\nprocesses = 5;\nvacuum = true ; remove sockets\n\
         chdir = /srv/app ; the app\nenv = COLOR=#fff\nlogformat = %(method) ; %(uri)\n",
    );
    assert_eq!(config.harakiri, Some(Duration::from_secs(60)));
    assert_eq!(config.processes, 5);
    assert_eq!(config.chdir, Some(PathBuf::from("/srv/app ; the app")), "uWSGI keeps the comment in the value");
    let lines: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    let on_line =
        |line: usize| lines.iter().filter(|warning| warning.contains(&format!("app.ini:{line}: warning"))).count();
    assert!(on_line(2) >= 1 && on_line(3) >= 1 && on_line(4) >= 1 && on_line(5) >= 1, "{lines:#?}");
    assert_eq!(on_line(6) + on_line(7), 0, "no warning for # or ; inside a value: {lines:#?}");
    assert!(lines.iter().any(|warning| warning.contains("looks like an inline comment ('; the app')")), "{lines:#?}");
}

#[test]
fn strict_false_turns_unknown_keys_into_warnings() {
    let config = ini_config("[uwsgi]\nstrict = false\nproceses = 4\n");
    assert_eq!(config.processes, 1);
    assert_eq!(config.warnings.len(), 1);
    let warning = config.warnings[0].to_string();
    assert!(
        warning.contains(":3: warning: unknown option 'proceses' (did you mean 'processes'?) ignored"),
        "{warning}"
    );
    assert!(ini_error("[uwsgi]\nstrict = true\nproceses = 4\n").contains("unknown option 'proceses'"));
    // Real uWSGI options liege lacks stay errors: liege cannot do what they ask.
    assert!(ini_error("[uwsgi]\nstrict = false\nlua = /tmp/x\n").contains("does not implement"));
}

#[test]
fn every_uwsgi_option_is_recognised_as_real() {
    for name in ["spooler", "route-if", "cron", "log-encoder", "static-map", "mule"] {
        if options::lookup_long(name).is_some() {
            continue;
        }
        let error = ini_error(&format!("[uwsgi]\n{name} = x\n"));
        assert!(error.starts_with(&format!("app.ini:2: '{name}' is a uWSGI option that liege does not")), "{error}");
        let error = parse(&[&format!("--{name}"), "x"]).unwrap_err();
        assert!(matches!(error, ConfigError::UnknownOption { .. } | ConfigError::NotImplemented { .. }), "{error}");
    }
    assert!(uwsgi_names::is_uwsgi_option("http-socket"));
    assert!(!uwsgi_names::is_uwsgi_option("proceses"));
    assert!(uwsgi_names::UWSGI_OPTION_NAMES.windows(2).all(|pair| pair[0] < pair[1]), "sorted for binary search");
}

#[test]
fn liege_only_options_are_few_and_known() {
    let liege_only: Vec<&str> =
        OPTIONS.iter().flat_map(OptionDef::long_names).filter(|name| !uwsgi_names::is_uwsgi_option(name)).collect();
    assert_eq!(
        liege_only,
        vec!["backlog-status", "api", "api-token-file", "run-dir", "log-dir", "vassal-port-range"],
        "every other option is spelled as in uWSGI (backlog-status is a uWSGI management flag's name, which real \
         configs set as if it were an option)"
    );
}

#[test]
fn protocol_switches_plain_sockets() {
    let config = ini_config("[uwsgi]\nsocket = :3031\nhttp-socket = :8000\nprotocol = http\nsocket = /tmp/a.sock\n");
    assert_eq!(
        config.sockets,
        vec![http(tcp("0.0.0.0", 3031)), http(tcp("0.0.0.0", 8000)), http(SocketAddress::Unix("/tmp/a.sock".into()))]
    );
    let config = ini_config("[uwsgi]\nsocket-protocol = uwsgi\nsocket = :3031\n");
    assert_eq!(config.sockets, vec![uwsgi(tcp("0.0.0.0", 3031))]);
    assert!(ini_error("[uwsgi]\nprotocol = fastcgi\n").contains("'fastcgi' protocol"));
}

#[test]
fn process_options() {
    let config = ini_config(
        "[uwsgi]\nchown-socket = www-data:www-data\numask = 022\ndaemonize = /var/log/app.log\n\
         pyargv = --config-file /etc/a.conf  -v\n",
    );
    assert_eq!(config.chown_socket.as_deref(), Some("www-data:www-data"));
    assert_eq!(config.umask, Some(0o022));
    assert_eq!(config.daemonize, Some(PathBuf::from("/var/log/app.log")));
    assert_eq!(config.pyargv, vec!["--config-file", "/etc/a.conf", "-v"]);
    assert_eq!(ini_config("[uwsgi]\ndaemonize2 = /x.log\n").daemonize, Some(PathBuf::from("/x.log")));
    // uWSGI's logto(): an address sends the log over UDP (a socket logger), a path is a file.
    let config = ini_config("[uwsgi]\ndaemonize = 127.0.0.1:8224\n");
    assert!(config.detach && config.daemonize.is_none());
    assert_eq!(config.logs.loggers[0].target, crate::logs::LoggerTarget::Socket("127.0.0.1:8224".into()));
    let config = ini_config("[uwsgi]\nlogto = localhost:514\ndaemonize = /var/log/a:b\n");
    assert_eq!(config.logto, None);
    assert_eq!(config.daemonize, Some(PathBuf::from("/var/log/a:b")));
    assert_eq!(config.logs.loggers[0].target, crate::logs::LoggerTarget::Socket("localhost:514".into()));
    assert!(ini_error("[uwsgi]\nlogto = :8224\n").contains("invalid UDP address"));
    assert!(ini_error("[uwsgi]\nchown-socket = :web\n").contains("expected USER or USER:GROUP"));
    assert!(ini_error("[uwsgi]\numask = 9\n").contains("octal"));
}

#[test]
fn cheaper_true_is_zero_as_uwsgi_reads_it() {
    let config = ini_config("[uwsgi]\nprocesses = 4\ncheaper = true\n");
    assert_eq!(config.cheaper, None);
    assert!(config.warnings[0].to_string().contains("read as 0"), "{:?}", config.warnings);
}

#[test]
fn an_ini_with_emperor_runs_the_emperor() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(
        dir.path(),
        "uwsgi.ini",
        "[uwsgi]\nmaster = true\nemperor = /etc/uwsgi/vassals\nlogto = /var/log/uwsgi.log\npidfile = /run/e.pid\n\
         umask = 027\nvacuum = true\n",
    );
    match parse_args(&os(&["--ini", ini.to_str().unwrap()]), &no_env).unwrap() {
        Mode::Emperor(config) => {
            assert_eq!(config.dir, PathBuf::from("/etc/uwsgi/vassals"));
            assert_eq!(config.logto, Some(PathBuf::from("/var/log/uwsgi.log")));
            assert_eq!(config.pidfile, Some(PathBuf::from("/run/e.pid")));
            assert_eq!(config.umask, Some(0o027));
        }
        Mode::Vassal(config) => panic!("read as a vassal: {config:?}"),
    }
    let app = write(dir.path(), "app.ini", "[uwsgi]\nhttp-socket = :8000\n");
    assert!(matches!(parse_args(&os(&["--ini", app.to_str().unwrap()]), &no_env).unwrap(), Mode::Vassal(_)));
}

#[test]
fn loop_engines_and_other_plugins_are_clear_errors() {
    assert!(ini_error("[uwsgi]\ngevent = 100\n").contains("prefork workers and threads"));
    for (plugins, needle) in [
        ("php", "runs PHP"),
        ("python3,rack", "runs Ruby"),
        ("sentry", "sentry-sdk"),
        ("gevent", "prefork workers and threads"),
        ("frobnicator", "no plugins"),
    ] {
        let error = ini_error(&format!("[uwsgi]\nplugins = {plugins}\n"));
        assert!(error.contains(needle), "{plugins}: {error}");
    }
    for accepted in ["python3", "python311", "corerouter,http", "/opt/env/bin/python", "0:python"] {
        ini_config(&format!("[uwsgi]\nplugins = {accepted}\n"));
    }
}

#[test]
fn log_date_logto2_and_safe_pidfile() {
    assert_eq!(ini_config("[uwsgi]\nlog-date\n").log_date.as_deref(), Some(""));
    assert_eq!(ini_config("[uwsgi]\nlogdate = true\n").log_date.as_deref(), Some(""));
    assert_eq!(ini_config("[uwsgi]\nlog-date = %%Y-%%m-%%d\n").log_date.as_deref(), Some("%Y-%m-%d"));
    assert_eq!(ini_config("[uwsgi]\nlog-date = false\n").log_date, None);
    assert_eq!(ini_config("[uwsgi]\nlogto2 = /var/log/a.log\n").logto, Some(PathBuf::from("/var/log/a.log")));
    assert_eq!(ini_config("[uwsgi]\nsafe-pidfile = /run/a.pid\n").pidfile, Some(PathBuf::from("/run/a.pid")));
}

// --- the vassal's interpreter (issue 13) ---
#[test]
fn python_names_the_vassals_interpreter_and_refuses_a_pyrun_script() {
    assert_eq!(
        ini_config("[uwsgi]\npython = /usr/bin/python3.13\n").python,
        Some(PathBuf::from("/usr/bin/python3.13"))
    );
    assert_eq!(parse(&["--python", "/venv/bin/python"]).unwrap().python, Some(PathBuf::from("/venv/bin/python")));
    assert_eq!(ini_config("[uwsgi]\nhttp-socket = :80\n").python, None);
    let error = ini_error("[uwsgi]\npython = setup.py\n");
    assert!(error.contains("pyrun") && error.contains("interpreter"), "{error}");
}
// --- end the vassal's interpreter ---

// --- Python plugin options (py) ---
#[test]
fn py_autoreload_and_its_spellings() {
    for key in ["py-autoreload", "py-auto-reload", "python-autoreload", "python-auto-reload"] {
        let config = ini_config(&format!("[uwsgi]\n{key} = 2\n"));
        assert_eq!(config.python_features.autoreload, Some(Duration::from_secs(2)), "{key}");
    }
    assert_eq!(ini_config("[uwsgi]\npy-autoreload = 0\n").python_features.autoreload, None, "0 is off");
    let config =
        ini_config("[uwsgi]\npy-autoreload = 1\npy-auto-reload-ignore = settings\npy-auto-reload-ignore = a.b\n");
    assert_eq!(config.python_features.autoreload_ignore, ["settings", "a.b"]);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let config = ini_config("[uwsgi]\npy-auto-reload-ignore = settings\n");
    assert!(config.warnings[0].message.contains("no effect without py-autoreload"), "{:?}", config.warnings);
}

#[test]
fn paste_paste_name_and_paste_logger() {
    let config = ini_config("[uwsgi]\npaste = config:/etc/app/paste.ini\npaste-name = api\npaste-logger\n");
    assert_eq!(config.app.unwrap().source, AppSource::Paste("config:/etc/app/paste.ini".to_owned()));
    assert_eq!(config.python_features.paste_name.as_deref(), Some("api"));
    assert!(config.python_features.paste_logger);
    // uWSGI's paste-logger is a flag: a path as its value (as in mozilla-services/shavar) means on.
    let config = ini_config("[uwsgi]\npaste = config:/a.ini\npaste-logger = %p\n");
    assert!(config.python_features.paste_logger);
    assert!(config.warnings[0].message.contains("is read as true"), "{:?}", config.warnings);
    assert!(!ini_config("[uwsgi]\npaste = config:/a.ini\npaste-logger = false\n").python_features.paste_logger);
    let error = ini_error("[uwsgi]\npaste = egg:shavar\npaste-logger = true\n");
    assert!(error.starts_with("app.ini:3:") && error.contains("config:PATH"), "{error}");
    // A mounted .ini is a paste app too.
    let config = ini_config("[uwsgi]\nmodule = m\nmount = /api=config:/etc/api.ini\npaste-logger = 1\n");
    assert_eq!(config.mounts[0].app.source, AppSource::Paste("config:/etc/api.ini".to_owned()));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn ini_paste_reads_the_uwsgi_section_and_loads_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let paste = write(dir.path(), "app.ini", "[app:main]\nuse = call:m:f\n\n[uwsgi]\nprocesses = 3\n");
    for (key, logger) in [("ini-paste", false), ("ini-paste-logged", true)] {
        let config = parse(&[&format!("--{key}"), paste.to_str().unwrap()]).unwrap();
        assert_eq!(config.processes, 3, "{key}: the [uwsgi] section is read");
        let expected = format!("config:{}", paste.display());
        assert_eq!(config.app.unwrap().source, AppSource::Paste(expected), "{key}");
        assert_eq!(config.python_features.paste_logger, logger, "{key}");
    }
    // A relative name is made absolute from the current directory (uWSGI's `uwsgi.cwd`).
    let cwd = std::env::current_dir().unwrap();
    let relative = pathdiff(&paste, &cwd);
    let config = parse(&["--ini-paste", relative.to_str().unwrap()]).unwrap();
    assert_eq!(config.app.unwrap().source, AppSource::Paste(format!("config:{}", cwd.join(&relative).display())));
}

/// `path` relative to `base` (both absolute), with `..` as needed.
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    let common = path.components().zip(base.components()).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in base.components().skip(common) {
        relative.push("..");
    }
    relative.extend(path.components().skip(common));
    relative
}

#[test]
fn reload_on_exception_family_and_py_tracebacker() {
    let config = ini_config(
        "[uwsgi]\nreload-on-exception\nreload-on-exception-type = MemoryError\nreload-on-exception-value = gone\n\
         reload-on-exception-repr = builtins.OSError: gone\npy-tracebacker = /run/app/tb.\n",
    );
    let features = &config.python_features;
    assert!(features.reload_on_exception.any);
    assert_eq!(features.reload_on_exception.types, ["MemoryError"]);
    assert_eq!(features.reload_on_exception.values, ["gone"]);
    assert_eq!(features.reload_on_exception.reprs, ["builtins.OSError: gone"]);
    assert_eq!(features.tracebacker.as_deref(), Some("/run/app/tb."));
    assert!(!ini_config("[uwsgi]\nreload-on-exception = false\n").python_features.reload_on_exception.is_set());
    let error = ini_error("[uwsgi]\nreload-on-exception-type = Memory Error\n");
    assert!(error.contains("expected a Python name"), "{error}");
    let error = ini_error("[uwsgi]\nconnect-and-read = /tmp/tb1\n");
    assert!(error.contains("liege --connect-and-read"), "{error}");
}
// --- end Python plugin options ---
// --- cron family, write timeouts, post-buffering-bufsize (cron) ---
#[test]
fn cron_family_from_an_ini_file() {
    let config = ini_config(
        "[uwsgi]\nmodule = app\nunique-cron = 15 0 -1 -1 -1 { touch /run/uwsgi-logrotate  }\n\
         cron = -15 -1 -1 -1 -1 ./manage.py runjobs quarter_hourly\ncron2 = minute=30,harakiri=0 backup\n\
         cron-harakiri = 600\n",
    );
    let crons = &config.master_features.crons;
    assert_eq!(crons.len(), 3);
    assert!(crons[0].unique && !crons[1].unique && !crons[2].unique);
    assert_eq!(crons[0].command, "{ touch /run/uwsgi-logrotate  }");
    assert_eq!((crons[1].schedule.minute, crons[2].schedule.minute), (-15, 30));
    assert_eq!(crons[2].harakiri, cron::CronHarakiri::Never);
    assert_eq!(config.master_features.cron_harakiri, Some(600));
    assert!(ini_error("[uwsgi]\nmodule = app\ncron = * * * * * ls\n").contains("app.ini:3"));
    let error = ini_error("[uwsgi]\nmodule = app\nlegion-cron = mylegion 0 0 -1 -1 -1 ls\n");
    assert!(error.contains("legion"), "{error}");
}

#[test]
fn write_timeouts_are_one_setting_with_four_names() {
    for name in ["so-send-timeout", "socket-send-timeout", "so-write-timeout", "socket-write-timeout"] {
        let config = ini_config(&format!("[uwsgi]\nmodule = app\n{name} = 60\n"));
        assert_eq!(config.so_send_timeout, Some(Duration::from_secs(60)), "{name}");
    }
    // uWSGI declares them without an argument: bare, they mean 1.
    assert_eq!(parse(&["--module", "app", "--so-send-timeout"]).unwrap().so_send_timeout, Some(Duration::from_secs(1)));
    assert_eq!(ini_config("[uwsgi]\nmodule = app\nso-send-timeout = 0\n").so_send_timeout, None);
    assert_eq!(ini_config("[uwsgi]\nmodule = app\n").so_send_timeout, None);
}

#[test]
fn post_buffering_bufsize_defaults_and_is_raised_to_post_buffering() {
    let config = ini_config("[uwsgi]\nmodule = app\npost-buffering = 1\npost-buffering-bufsize = 32768\n");
    assert_eq!((config.post_buffering, config.post_buffering_bufsize), (1, 32768));
    let config = ini_config("[uwsgi]\nmodule = app\npost-buffering = 4096\n");
    assert_eq!(config.post_buffering_bufsize, 8192);
    let config = ini_config("[uwsgi]\nmodule = app\npost-buffering = 65536\npost-buffering-bufsize = 4096\n");
    assert_eq!(config.post_buffering_bufsize, 65536);
    assert!(config.warnings.iter().any(|w| w.message.contains("raised")), "{:?}", config.warnings);
}

#[test]
fn cache_use_last_modified_applies_to_the_old_style_cache() {
    let config = ini_config("[uwsgi]\nmodule = app\ncache = 10\ncache-use-last-modified = true\n");
    assert!(config.caches[0].lastmod);
    assert!(!ini_config("[uwsgi]\nmodule = app\ncache = 10\n").caches[0].lastmod);
}
// --- end cron family ---
// --- mule family (mule) ---
#[test]
fn mule_family_from_an_ini_file() {
    let config = ini_config(
        "[uwsgi]\nmodule = app\nfarm = crunch:2,3\nmule = worker.py\nmule\nmules = 2\nmule = pkg.tasks:run\n\
         mule-reload-mercy = 45\nmule-msg-size = 131072\nmule-msg-recv-size = 1024\ntouch-mules-reload = /tmp/m\n",
    );
    let m = &config.mules;
    assert_eq!(m.mules.len(), 5);
    assert_eq!(m.mules.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(m.mules[0].program, mules::MuleProgram::Script("worker.py".into()));
    assert_eq!(m.mules[0].value, "worker.py");
    assert_eq!(m.mules[1].program, mules::MuleProgram::Messages);
    assert_eq!(m.mules[3].program, mules::MuleProgram::Messages);
    assert_eq!(m.mules[4].program, mules::MuleProgram::Callable { module: "pkg.tasks".into(), function: "run".into() });
    assert_eq!(m.farms.len(), 1);
    assert_eq!((m.farms[0].name.as_str(), m.farms[0].mules.as_slice()), ("crunch", &[2, 3][..]));
    assert_eq!(m.farms_of(2), [0]);
    assert!(m.farms_of(1).is_empty());
    assert_eq!(m.reload_mercy, Duration::from_secs(45));
    assert_eq!((m.msg_size, m.msg_recv_size), (Some(131072), 1024));
    assert_eq!(m.touch_reload, [PathBuf::from("/tmp/m")]);
}

#[test]
fn mule_defaults_and_the_command_line() {
    let m = ini_config("[uwsgi]\nmodule = app\n").mules;
    assert!(m.mules.is_empty() && m.farms.is_empty());
    assert_eq!((m.reload_mercy, m.msg_size, m.msg_recv_size), (Duration::from_secs(60), None, 65536));
    // A bare --mule is a message-only mule; as with uWSGI's optional_argument, a value is attached with `=`.
    let config = parse(&["--module", "app", "--mule", "--mule=x.py", "--mules", "1"]).unwrap();
    let programs: Vec<_> = config.mules.mules.iter().map(|m| m.program.clone()).collect();
    assert_eq!(
        programs,
        [mules::MuleProgram::Messages, mules::MuleProgram::Script("x.py".into()), mules::MuleProgram::Messages]
    );
    assert_eq!(ini_config("[uwsgi]\nmodule = app\nmule-msg-size = 0\n").mules.msg_size, None);
}

#[test]
fn mule_mistakes_are_errors_with_the_line() {
    let error = ini_error("[uwsgi]\nmodule = app\nmules = 1\nfarm = f:1,2\n");
    assert!(error.starts_with("app.ini:4:") && error.contains("there is no mule 2"), "{error}");
    let error = ini_error("[uwsgi]\nmodule = app\nmules = 2\nfarm = nocolon\n");
    assert!(error.contains("app.ini:4") && error.contains("NAME:MULE"), "{error}");
    let error = ini_error("[uwsgi]\nmodule = app\nmules = 2\nfarm = f:1,x\n");
    assert!(error.contains("'x' is not a mule id"), "{error}");
    let error = ini_error("[uwsgi]\nmodule = app\nmules = 2\nfarm = f:\n");
    assert!(error.contains("names no mule"), "{error}");
    let error = ini_error("[uwsgi]\nmodule = app\nmules = 2\nfarm = f:1\nfarm = f:2\n");
    assert!(error.contains("already defined"), "{error}");
    let error = ini_error("[uwsgi]\nmodule = app\nmule = run_forever\n");
    assert!(error.contains("app.ini:3") && error.contains(".py"), "{error}");
    let error = ini_error("[uwsgi]\nmodule = app\nmule = :f\n");
    assert!(error.contains("package.module:function"), "{error}");
    // uWSGI's atoi: read as 0, with the project's usual warning.
    let config = ini_config("[uwsgi]\nmodule = app\nmules = many\n");
    assert!(config.mules.mules.is_empty() && config.warnings.iter().any(|w| w.message.contains("read as 0")));
    let error = ini_error("[uwsgi]\nmodule = app\nmule-msg-recv-size = 0\n");
    assert!(error.contains("app.ini:3"), "{error}");
    let error = ini_error("[uwsgi]\nmodule = app\nmule = a.py\nmule-harakiri = 30\n");
    assert!(error.contains("app.ini:4") && error.contains("signal"), "{error}");
}
// --- end mule family ---

// --- spooler family (spooler) ---
#[test]
fn spooler_options_are_typed() {
    use crate::spooler::{SpoolerDir, DEFAULT_FREQUENCY};
    let config = ini_config(
        "[uwsgi]\nspooler = /srv/a\nspooler = /srv/b\nspooler-external = /srv/ext\nspooler-processes = 2\n\
         spooler-freq = 3\nspooler-max-tasks = 10\nspooler-harakiri = 7\nspooler-ordered = true\nspooler-quiet = 1\n\
         spooler-chdir = /tmp\nspooler-import = tasks\nspooler-python-import = more.py\nspooler-cheap = true\n\
         touch-spoolers-reload = /tmp/t\nmodule = app\n",
    );
    let spooler = &config.spooler;
    assert_eq!(
        spooler.dirs,
        vec![
            SpoolerDir { path: "/srv/a".into(), external: false },
            SpoolerDir { path: "/srv/b".into(), external: false },
            SpoolerDir { path: "/srv/ext".into(), external: true },
        ]
    );
    assert_eq!(spooler.processes, 2);
    assert_eq!(spooler.processes_per_dir(), vec![0, 0, 1, 1, 2, 2]);
    assert_eq!(spooler.frequency, 3);
    assert_eq!(spooler.max_tasks, 10);
    assert_eq!(spooler.harakiri, Some(std::time::Duration::from_secs(7)));
    assert!(spooler.ordered && spooler.quiet && spooler.cheap);
    assert_eq!(spooler.chdir.as_deref(), Some(std::path::Path::new("/tmp")));
    assert_eq!(spooler.imports, vec!["tasks".to_owned(), "more.py".to_owned()]);
    assert_eq!(spooler.touch_reload, vec![std::path::PathBuf::from("/tmp/t")]);
    let plain = ini_config("[uwsgi]\nspooler = /srv/a\nmodule = app\n");
    assert_eq!(plain.spooler.frequency, DEFAULT_FREQUENCY);
    assert_eq!(plain.spooler.processes_per_dir(), vec![0]);
    assert_eq!(plain.spooler.harakiri, None);
    // -Q is uWSGI's short spelling.
    assert_eq!(parse(&["-Q", "/srv/q", "--module", "app"]).unwrap().spooler.dirs.len(), 1);
}

#[test]
fn spooler_option_errors() {
    assert!(ini_error("[uwsgi]\nspooler-frequency = 0\n").contains("spooler-frequency"));
    let error = ini_error("[uwsgi]\nspooler = /srv/a\nspooler-signal-as-task = true\n");
    assert!(error.contains("no uWSGI signal framework"), "{error}");
}
// --- end spooler family ---
