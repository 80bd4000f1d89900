//! The `liege` binary: embeds the CPython it was built against (see `docs/python.md`); everything else is
//! the command line shared with the extension module, `liege::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(liege::cli::run(std::env::args_os().skip(1).collect()))
}
