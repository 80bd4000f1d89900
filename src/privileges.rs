//! Dropping root: `uid`, `gid` and `cap` for a vassal's master and for the emperor, and the per-vassal drop
//! of `emperor-tyrant`.
//!
//! uWSGI's order (core/utils.c `uwsgi_as_root`): keep the capabilities asked for across the change of user
//! (`PR_SET_KEEPCAPS`), set the groups, the group, the user, then make exactly the asked capabilities
//! effective, permitted and inheritable. liege also raises them as *ambient* capabilities, so they survive the
//! `exec` of a graceful reload (uWSGI applies `cap` on the first start only, and a reloaded master loses
//! them).
//!
//! Names are resolved before anything changes, so a wrong user is an error while we are still root.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("no user '{0}'")]
    NoUser(String),
    #[error("no group '{0}'")]
    NoGroup(String),
    #[error("looking up '{name}': {source}")]
    Lookup { name: String, source: nix::Error },
    #[error(
        "unknown capability '{0}' (names as in capabilities(7), with or without CAP_: setuid, net_bind_service...)"
    )]
    UnknownCapability(String),
    #[error("{call}: {source}")]
    Call { call: &'static str, source: nix::Error },
    #[error("setting the capabilities")]
    Caps(#[from] caps::errors::CapsError),
}

/// A user by name or number (uWSGI takes both).
pub fn user(name: &str) -> Result<Uid, PrivilegeError> {
    if let Ok(number) = name.parse::<u32>() {
        return Ok(Uid::from_raw(number));
    }
    User::from_name(name)
        .map_err(|source| PrivilegeError::Lookup { name: name.to_owned(), source })?
        .map(|user| user.uid)
        .ok_or_else(|| PrivilegeError::NoUser(name.to_owned()))
}

/// A group by name or number.
pub fn group(name: &str) -> Result<Gid, PrivilegeError> {
    if let Ok(number) = name.parse::<u32>() {
        return Ok(Gid::from_raw(number));
    }
    Group::from_name(name)
        .map_err(|source| PrivilegeError::Lookup { name: name.to_owned(), source })?
        .map(|group| group.gid)
        .ok_or_else(|| PrivilegeError::NoGroup(name.to_owned()))
}

/// `cap = setgid,setuid,net_bind_service` (uWSGI's spelling: capabilities(7) names without `CAP_`, any
/// case, or numbers). An unknown name is an error, where uWSGI logs it and goes on without it.
pub fn capabilities(list: &[String]) -> Result<CapsHashSet, PrivilegeError> {
    let mut set = CapsHashSet::new();
    for item in list.iter().flat_map(|value| value.split(',')).map(str::trim).filter(|item| !item.is_empty()) {
        let capability = match item.parse::<u8>() {
            Ok(number) => caps::all().into_iter().find(|cap| cap.index() == number),
            Err(_) => {
                let upper = item.to_ascii_uppercase();
                let name = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
                name.parse::<Capability>().ok()
            }
        };
        set.insert(capability.ok_or_else(|| PrivilegeError::UnknownCapability(item.to_owned()))?);
    }
    Ok(set)
}

/// Who to become.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub uid: Option<Uid>,
    pub gid: Option<Gid>,
    /// Capabilities kept after the change of user (`cap`).
    pub caps: CapsHashSet,
}

impl Target {
    /// Resolves `uid`, `gid` and `cap` values.
    pub fn resolve(uid: Option<&str>, gid: Option<&str>, caps: &[String]) -> Result<Self, PrivilegeError> {
        Ok(Target { uid: uid.map(user).transpose()?, gid: gid.map(group).transpose()?, caps: capabilities(caps)? })
    }

    pub fn is_empty(&self) -> bool {
        self.uid.is_none() && self.gid.is_none() && self.caps.is_empty()
    }

    /// Becomes the target, as root. The supplementary groups become the group alone (uWSGI's default
    /// without `initgroups`). Threads: glibc applies set*id to every thread of the process.
    pub fn apply(&self) -> Result<(), PrivilegeError> {
        let keep = !self.caps.is_empty();
        if keep {
            // SAFETY: prctl(PR_SET_KEEPCAPS) only sets a flag of this process.
            if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
                return Err(PrivilegeError::Call { call: "prctl(PR_SET_KEEPCAPS)", source: nix::Error::last() });
            }
        }
        if let Some(gid) = self.gid {
            nix::unistd::setgroups(&[gid]).map_err(|source| PrivilegeError::Call { call: "setgroups", source })?;
            nix::unistd::setgid(gid).map_err(|source| PrivilegeError::Call { call: "setgid", source })?;
        }
        if let Some(uid) = self.uid {
            nix::unistd::setuid(uid).map_err(|source| PrivilegeError::Call { call: "setuid", source })?;
        }
        if keep {
            // After setuid the kept capabilities are permitted but no longer effective: make the asked ones
            // (and only those) effective, permitted, inheritable and ambient. In this order: effective must
            // stay within permitted at each step, ambient needs permitted and inheritable.
            caps::set(None, CapSet::Effective, &self.caps)?;
            caps::set(None, CapSet::Permitted, &self.caps)?;
            caps::set(None, CapSet::Inheritable, &self.caps)?;
            caps::set(None, CapSet::Ambient, &self.caps)?;
        }
        Ok(())
    }
}

/// `emperor-tyrant`: a vassal runs as the owner of its file; a file owned by root (user or group) is refused,
/// as uWSGI refuses it ("invalid permissions for vassal").
pub fn tyrant_owner(uid: u32, gid: u32) -> Result<(Uid, Gid), String> {
    if uid == 0 || gid == 0 {
        return Err(format!(
            "emperor-tyrant: the file is owned by uid {uid} gid {gid}; a tyrant emperor runs each vassal as its \
             file's owner and never as root: chown it to the user the app should run as"
        ));
    }
    Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
}

/// The supplementary groups of `emperor-tyrant-initgroups`: the user's groups from the group database (what
/// initgroups(3) would set), resolved in the parent since the child between fork and exec may not read files.
pub fn groups_of(uid: Uid, gid: Gid) -> Vec<Gid> {
    let Ok(Some(user)) = User::from_uid(uid) else { return vec![gid] };
    let Ok(name) = std::ffi::CString::new(user.name) else { return vec![gid] };
    nix::unistd::getgrouplist(&name, gid).unwrap_or_else(|_| vec![gid])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_as_uwsgi_spells_them() {
        let set = capabilities(&["setgid,setuid".to_owned(), "CAP_NET_BIND_SERVICE, 0".to_owned()]).expect("caps");
        assert!(set.contains(&Capability::CAP_SETGID));
        assert!(set.contains(&Capability::CAP_SETUID));
        assert!(set.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(set.contains(&Capability::CAP_CHOWN), "0 is CAP_CHOWN");
        assert!(matches!(capabilities(&["sys_nonsense".to_owned()]), Err(PrivilegeError::UnknownCapability(_))));
    }

    #[test]
    fn users_and_groups_by_name_or_number() {
        assert_eq!(user("0").expect("uid"), Uid::from_raw(0));
        assert_eq!(user("root").expect("root"), Uid::from_raw(0));
        assert_eq!(group("root").expect("root"), Gid::from_raw(0));
        assert!(matches!(user("no-such-user-here"), Err(PrivilegeError::NoUser(_))));
        assert!(matches!(group("no-such-group-here"), Err(PrivilegeError::NoGroup(_))));
    }

    #[test]
    fn a_tyrant_never_runs_a_root_owned_file() {
        assert!(tyrant_owner(0, 1000).is_err());
        assert!(tyrant_owner(1000, 0).is_err());
        assert_eq!(tyrant_owner(1000, 1001).expect("owner"), (Uid::from_raw(1000), Gid::from_raw(1001)));
    }
}
