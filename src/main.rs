//! The `liege` command line: `liege [uWSGI options]` runs one app (a vassal); `liege --help` lists them all.

use std::ffi::OsString;
use std::process::ExitCode;

/// The worker program the master forks: wired here, above both, so `master` never imports `worker`.
const WORKER: liege::control::handover::WorkerProgram =
    liege::control::handover::WorkerProgram { check_config: liege::worker::check_config, run: liege::worker::run };

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("--help" | "-h" | "help") => return print_help(),
        Some("--version" | "-V" | "version") => return print_version(),
        Some("emperor" | "--emperor") => return liege::emperor::run(&args),
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
    liege::logging::init();
    let config = match liege_config::parse_vassal_args(&args, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        // `--help` or `--version` after other options.
        Err(liege_config::ConfigError::HelpOrVersion { flag, .. }) if flag.contains("version") => {
            return print_version()
        }
        Err(liege_config::ConfigError::HelpOrVersion { .. }) => return print_help(),
        Err(err) => {
            eprintln!("liege: {err}");
            return ExitCode::from(1);
        }
    };
    match liege::master::run(&config, args, WORKER) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::from(1)
        }
    }
}

fn print_help() -> ExitCode {
    print!("{}", liege_config::help_text());
    ExitCode::SUCCESS
}

fn print_version() -> ExitCode {
    println!("liege {} (Python {})", env!("CARGO_PKG_VERSION"), liege::python::interpreter::EMBEDDED_VERSION);
    ExitCode::SUCCESS
}
