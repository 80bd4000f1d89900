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
//! The binary (`main.rs`) wires the master to the worker program it forks. `docs/modules.md` has the full
//! table, and `tests/check_modules.py` (run by `tests/run` and by pytest) fails on any edge against it.

pub mod backoff;
pub mod cache;
pub mod cli;
pub mod control;
pub mod emperor;
pub mod latency;
pub mod launch;
pub mod logging;
pub mod master;
pub mod privileges;
pub mod process;
pub mod python;
pub mod routing;
pub mod scoreboard;
pub mod spool;
pub mod static_files;
pub mod stats;
pub mod systemd;
pub mod worker;
