//! Facts about this machine and process that magic variables expose (`%h`, `%u`, `%U`, `%k`...).
//!
//! Read from `/proc` and the account databases directly rather than through libc: this crate stays free of
//! unsafe code and C bindings, and the few facts needed are plain text on Linux. The parsing is separate
//! from the reading so it can be tested on fixed input.

use std::fs;

/// The host name (`%h`), as the kernel knows it (what gethostname(2) returns).
pub fn hostname() -> Result<String, String> {
    for source in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(text) = fs::read_to_string(source) {
            let name = text.trim();
            if !name.is_empty() {
                return Ok(name.to_owned());
            }
        }
    }
    Err("neither /proc/sys/kernel/hostname nor /etc/hostname gives a host name".to_owned())
}

/// The real user and group ids of this process (`%u`, `%g`), like getuid(2)/getgid(2), which uWSGI uses.
pub fn real_ids() -> Result<(u32, u32), String> {
    let status = fs::read_to_string("/proc/self/status").map_err(|error| format!("/proc/self/status: {error}"))?;
    parse_status_ids(&status).ok_or_else(|| "/proc/self/status has no Uid/Gid lines".to_owned())
}

/// Extracts the real uid and gid from the text of `/proc/self/status` (`Uid:\treal\teffective\t...`).
pub fn parse_status_ids(status: &str) -> Option<(u32, u32)> {
    let first_id = |label: &str| -> Option<u32> {
        let line = status.lines().find(|line| line.starts_with(label))?;
        line[label.len()..].split_whitespace().next()?.parse().ok()
    };
    Some((first_id("Uid:")?, first_id("Gid:")?))
}

/// The user name for a uid from `/etc/passwd` (`%U`), if there is one.
pub fn user_name(uid: u32) -> Option<String> {
    name_for_id(&fs::read_to_string("/etc/passwd").ok()?, uid)
}

/// The group name for a gid from `/etc/group` (`%G`), if there is one.
pub fn group_name(gid: u32) -> Option<String> {
    name_for_id(&fs::read_to_string("/etc/group").ok()?, gid)
}

/// Finds the name whose id (third `:`-separated field) is `id` in passwd- or group-format text.
pub fn name_for_id(database: &str, id: u32) -> Option<String> {
    database.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let line_id: u32 = fields.next()?.parse().ok()?;
        (line_id == id && !name.is_empty()).then(|| name.to_owned())
    })
}

/// CPUs this process may run on (`%k`), which is what sizing workers by core count should use.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ids_are_the_real_ones() {
        let status = "Name:\tliege\nUid:\t1000\t0\t0\t0\nGid:\t100\t0\t0\t0\n";
        assert_eq!(parse_status_ids(status), Some((1000, 100)));
        assert_eq!(parse_status_ids("Name:\tx\n"), None);
    }

    #[test]
    fn names_from_account_databases() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n# comment\nweb:x:33:33::/var/www:/bin/false\n";
        assert_eq!(name_for_id(passwd, 33), Some("web".to_owned()));
        assert_eq!(name_for_id(passwd, 0), Some("root".to_owned()));
        assert_eq!(name_for_id(passwd, 7), None);
        assert_eq!(name_for_id("staff:x:50:alice,bob\n", 50), Some("staff".to_owned()));
    }

    #[test]
    fn this_process_has_facts() {
        assert!(hostname().is_ok_and(|name| !name.is_empty()));
        assert!(real_ids().is_ok());
        assert!(cpu_count() >= 1);
    }
}
