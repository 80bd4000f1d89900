//! liege: a uWSGI-compatible Python application server.
//!
//! Three kinds of process, separated by `exec` (see `DESIGN.md`): the emperor (tokio, watches vassal files),
//! a vassal master per app ([`master`]: no threads, forks and supervises), and its workers ([`worker`]: a tokio
//! `current_thread` loop serving HTTP/1.1 and the uwsgi protocol, calling the app inline through [`python`]).
//! Configuration parsing and wire-protocol parsing are I/O-free crates of their own (`liege-config`,
//! `liege-protocol`).

pub mod api;
pub mod cache;
pub mod control;
pub mod emperor;
pub mod logging;
pub mod master;
pub mod process;
pub mod python;
pub mod routing;
pub mod static_files;
pub mod stats;
pub mod systemd;
pub mod worker;
