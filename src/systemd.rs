//! Telling systemd how we are doing (`Type=notify` units, see `packaging/`): READY once the emperor is watching
//! and its API answers (or, for a single app, once every worker serves), RELOADING while a reload runs,
//! STOPPING at a stop, and a one-line STATUS that `systemctl status` shows.
//!
//! Only the process systemd started talks to it: the emperor removes `NOTIFY_SOCKET` from its vassals'
//! environment, so a vassal never claims to be the service. Without `NOTIFY_SOCKET` every call is a no-op.

use sd_notify::NotifyState;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

fn send(states: &[NotifyState]) {
    if std::env::var_os(NOTIFY_SOCKET_ENV).is_none() {
        return;
    }
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::debug!("cannot notify systemd: {err}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    send(&[NotifyState::Reloading, NotifyState::Status("reloading")]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}
