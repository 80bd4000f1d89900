//! liege: a uWSGI-compatible Python application server.
//!
//! Three kinds of process, separated by `exec` (see `DESIGN.md`): the emperor ([`emperor`]: tokio, watches
//! vassal files, serves the HTTP API), a vassal master per app ([`master`]: no threads, forks and supervises),
//! and its workers ([`worker`]: a tokio `current_thread` loop serving HTTP/1.1 and the uwsgi protocol, calling
//! the app inline through [`python`]). Configuration parsing and wire-protocol parsing are I/O-free crates of
//! their own (`liege-config`, `liege-protocol`).
//!
//! # Dependencies run one way
//!
//! The three process kinds sit on top and never import each other; the emperor's HTTP API
//! ([`emperor::api`]) sits under the emperor and reads only its model of the vassals ([`emperor::registry`],
//! [`emperor::logs`]). Everything two process kinds share has its own home below them:
//!
//! - [`control`]: the emperor ⇄ master channel, and [`control::handover`], what one process passes the next
//!   (inherited sockets, [`control::handover::Inheritance`], the worker's setup, exit codes);
//! - [`python`]: the interpreter, app loading ([`python::loader`]) and the WSGI bridge;
//! - [`stats`] over [`scoreboard`] (the shared-memory slots the master and its workers write) over
//!   [`latency`] (the histogram's buckets);
//! - [`logging`], and at the bottom [`backoff`] (crash-loop delays, for vassals and workers), [`privileges`]
//!   (uid, gid, cap), [`process`] and [`systemd`], which use nothing of the crate.
//!
//! Only [`cli`] (the command line) and [`launch`] (which interpreter runs a vassal) are public: the binary and
//! the extension module (`crates/liege-py`) use nothing else. Every other module is `pub(crate)`, so the
//! compiler reports what nothing uses (helpers only tests need are `#[cfg(test)]`).
//!
//! The binary (`main.rs`) wires the master to the worker program it forks. `docs/modules.md` has the full
//! table, and `tests/check_modules.py` (run by `tests/run` and by pytest) fails on any edge against it.

// The crate docs describe the private modules (the architecture): `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]
pub(crate) mod backoff;
pub(crate) mod cache;
pub mod cli;
pub(crate) mod control;
pub(crate) mod emperor;
pub(crate) mod latency;
pub mod launch;
pub(crate) mod logging;
pub(crate) mod master;
pub(crate) mod privileges;
pub(crate) mod process;
pub(crate) mod python;
pub(crate) mod routing;
pub(crate) mod scoreboard;
pub(crate) mod spool;
pub(crate) mod static_files;
pub(crate) mod stats;
pub(crate) mod systemd;
pub(crate) mod worker;
