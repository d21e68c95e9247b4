//! Who the children run as: `user=` and `group=` in `<server>`, as nginx's `user`.
//!
//! The master keeps the identity it was started with (root, typically): it binds the
//! listeners (ports below 1024 included), takes the pid file, creates the shared memory
//! and opens the log file. Every process it forks — the manager, the event workers,
//! the task workers — gives that up before running any code of the application: it
//! drops its supplementary groups, takes the group, then the user, and checks that it
//! cannot become root again ([`crate::sys::creds::drop_to`]). What the children write
//! is theirs: the log file and its directory are handed to that user; the shared memory
//! they write through mappings inherited from the master and never open by path.

use crate::error::Error;
use crate::settings::Settings;
use crate::sys::{creds, fs::geteuid};

/// The uid and gid the children switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

fn unknown(key: &str, name: &str) -> Error {
    Error::Config(format!(
        "{key}={name}: no such {key} on this machine; use an existing one, e.g. {key}=nobody"
    ))
}

impl RunAs {
    /// The identity `user=` / `group=` ask for; None when neither is set, or when they
    /// name the identity we run as already. Refused when switching needs root and we
    /// are not root.
    pub fn from_settings(settings: &Settings) -> Result<Option<RunAs>, Error> {
        if settings.user.is_none() && settings.group.is_none() {
            return Ok(None);
        }
        let lookup = |e: std::io::Error| Error::io("look up user= / group=", e);
        let (uid, primary) = match &settings.user {
            Some(name) => creds::user(name)
                .map_err(lookup)?
                .ok_or_else(|| unknown("user", name))?,
            None => (geteuid(), nix::unistd::getegid().as_raw()),
        };
        let gid = match &settings.group {
            Some(name) => creds::group(name)
                .map_err(lookup)?
                .ok_or_else(|| unknown("group", name))?,
            None => primary,
        };
        let me = geteuid();
        if uid == me && gid == nix::unistd::getegid().as_raw() && me != 0 {
            return Ok(None);
        }
        if me != 0 {
            return Err(Error::Config(format!(
                "user={} / group={}: switching the children to uid {uid} gid {gid} needs root, \
                 but tarsfork runs as uid {me}; start it as root (the master keeps root to bind \
                 and open files; the children drop it), or remove user= and group=",
                settings.user.as_deref().unwrap_or("(unset)"),
                settings.group.as_deref().unwrap_or("(unset)"),
            )));
        }
        Ok(Some(RunAs { uid, gid }))
    }

    /// In a fresh child: becomes this user and group for good.
    pub fn enter(&self) -> std::io::Result<()> {
        creds::drop_to(self.uid, self.gid)
    }
}
