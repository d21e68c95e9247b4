//! Users, groups and the privilege drop of a child (`user=` / `group=`).
//!
//! The order is the one that leaves no way back: supplementary groups first (only
//! root may change them), then the gid (only root may set an arbitrary one), then the
//! uid, which gives up root. Afterwards every id is checked, and an attempt to become
//! root again must fail.

use std::io;

use nix::unistd::{Gid, Group, Uid, User};

fn nix_err(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A user's uid and primary gid, by name or number.
pub fn user(name: &str) -> io::Result<Option<(u32, u32)>> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).map_err(nix_err)?,
        Err(_) => User::from_name(name).map_err(nix_err)?,
    };
    Ok(found.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
}

/// A group's gid, by name or number.
pub fn group(name: &str) -> io::Result<Option<u32>> {
    let found = match name.parse::<u32>() {
        Ok(gid) => Group::from_gid(Gid::from_raw(gid)).map_err(nix_err)?,
        Err(_) => Group::from_name(name).map_err(nix_err)?,
    };
    Ok(found.map(|g| g.gid.as_raw()))
}

/// Whether every uid and gid of the process is `u` / `g` and it has no other group.
fn only(u: Uid, g: Gid) -> io::Result<bool> {
    let ru = nix::unistd::getresuid().map_err(nix_err)?;
    let rg = nix::unistd::getresgid().map_err(nix_err)?;
    let groups = nix::unistd::getgroups().map_err(nix_err)?;
    Ok([ru.real, ru.effective, ru.saved].iter().all(|x| *x == u)
        && [rg.real, rg.effective, rg.saved].iter().all(|x| *x == g)
        && groups.iter().all(|x| *x == g))
}

/// Becomes `uid`:`gid` with no supplementary groups, for good. Needs root, unless the
/// process is that identity already (a worker forked by a manager that dropped).
pub fn drop_to(uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    if only(u, g)? {
        return Ok(());
    }
    nix::unistd::setgroups(&[]).map_err(|e| with("setgroups([])", e))?;
    nix::unistd::setgid(g).map_err(|e| with("setgid", e))?;
    nix::unistd::setuid(u).map_err(|e| with("setuid", e))?;
    if !only(u, g)? {
        let ru = nix::unistd::getresuid().map_err(nix_err)?;
        let rg = nix::unistd::getresgid().map_err(nix_err)?;
        let groups = nix::unistd::getgroups().map_err(nix_err)?;
        return Err(io::Error::other(format!(
            "after the drop: uids {ru:?}, gids {rg:?}, groups {groups:?}"
        )));
    }
    if uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(io::Error::other("setuid(0) still succeeds after the drop"));
    }
    Ok(())
}

fn with(call: &str, e: nix::errno::Errno) -> io::Error {
    io::Error::new(nix_err(e).kind(), format!("{call} failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve_by_name_and_number() {
        assert_eq!(user("root").unwrap(), Some((0, 0)));
        assert_eq!(user("0").unwrap(), Some((0, 0)));
        assert_eq!(group("0").unwrap(), Some(0));
        assert_eq!(user("no-such-user-tarsfork").unwrap(), None);
        assert_eq!(group("no-such-group-tarsfork").unwrap(), None);
    }
}
