//! Running as a daemon (`daemonize=1`), and the readiness report that tells the command
//! that launched the server how its start went.
//!
//! The launcher forks; the child detaches (new session, standard streams on the log
//! file) and becomes the master, which sends one [`Readiness`] down a pipe once every
//! worker is up or the start has failed. The launcher prints it and exits 0 or 1, so
//! tarsnode and scripts see the outcome of the start, not merely of the fork. In the
//! foreground the same report goes to stdout.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::error::Error;
use crate::log;
use crate::runas::RunAs;
use crate::rundir::{RunDir, ServerDirs, Trust};
use crate::settings::Settings;
use crate::sys::fs::OpenMode;
use crate::sys::{self, Fork};

/// How a start went, as the master tells the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Every listener is bound and every worker is up; the lines to print (one per
    /// listener, then the master's).
    Ready {
        /// The lines, without their line ends.
        lines: Vec<String>,
    },
    /// The start failed; nothing is left running.
    Failed {
        /// Why (may span lines).
        reason: String,
    },
}

const READY: &str = "READY";
const FAILED: &str = "FAILED";
/// A report longer than this is not one the master wrote.
const MAX_BODY: usize = 1 << 20;

/// What [`Readiness::decode`] made of the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// A whole report.
    Complete(Readiness),
    /// Not all of it yet.
    Partial,
    /// Not a report.
    Malformed,
}

impl Readiness {
    /// The report on the pipe: a header line `READY <n>` or `FAILED <n>`, then `n`
    /// bytes of body (the lines, each ended by `\n`; or the reason as it is). The
    /// length lets the reader stop without waiting for EOF, which an inherited copy of
    /// the pipe could hold off.
    fn encode(&self) -> Vec<u8> {
        let (tag, body) = match self {
            Readiness::Ready { lines } => (READY, lines.iter().map(|l| format!("{l}\n")).collect()),
            Readiness::Failed { reason } => (FAILED, reason.clone()),
        };
        let mut out = format!("{tag} {}\n", body.len()).into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Decoded {
        let Some(eol) = bytes.iter().position(|&b| b == b'\n') else {
            return if bytes.len() > 32 {
                Decoded::Malformed
            } else {
                Decoded::Partial
            };
        };
        let header = String::from_utf8_lossy(&bytes[..eol]);
        let Some((tag, len)) = header.split_once(' ') else {
            return Decoded::Malformed;
        };
        let Some(len) = len.parse::<usize>().ok().filter(|&n| n <= MAX_BODY) else {
            return Decoded::Malformed;
        };
        let body = &bytes[eol + 1..];
        if body.len() < len {
            return Decoded::Partial;
        }
        let body = String::from_utf8_lossy(&body[..len]).into_owned();
        match tag {
            READY => Decoded::Complete(Readiness::Ready {
                lines: body.lines().map(str::to_string).collect(),
            }),
            FAILED => Decoded::Complete(Readiness::Failed { reason: body }),
            _ => Decoded::Malformed,
        }
    }
}

/// The write end of the readiness pipe: the master holds it until it has reported.
pub(crate) struct Launcher(OwnedFd);

impl Launcher {
    /// Sends the report and closes the pipe. A launcher that has gone away (killed)
    /// does not stop the server: the error is ignored.
    pub(crate) fn send(self, report: &Readiness) {
        let _ = sys::write_all_fd(self.0.as_raw_fd(), &report.encode());
    }
}

/// Tells whoever started the server how the start went: the launcher when there is one
/// (daemon), else stdout for a ready server (a failure in the foreground is the
/// command's error, printed by the caller).
pub(crate) fn report(launcher: Option<Launcher>, report: Readiness) {
    match (launcher, report) {
        (Some(l), report) => l.send(&report),
        (None, Readiness::Ready { lines }) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
        }
        (None, Readiness::Failed { .. }) => {}
    }
}

/// Opens the daemon's log file for appending, never through a symlink: in the verified
/// data dir when no `logpath` is set, else in `<logpath>/<App>/<Server>/` (made if
/// missing and verified: owned by us or by the children's user, writable by nobody
/// else). With `user=`, the file and its directory are handed to that user, whose
/// processes write and rotate it.
fn open_log(settings: &Settings, path: &Path) -> Result<OwnedFd, Error> {
    let run_as = RunAs::from_settings(settings)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Config(format!("{}: not a log file name", path.display())))?;
    let dir = match settings.log_file() {
        None => ServerDirs::create(settings)?.data,
        Some(_) => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            RunDir::ensure(
                parent,
                Trust::Logs {
                    children: run_as.map(|r| r.uid),
                },
            )?
        }
    };
    let fd = dir.open(name, OpenMode::AppendCreate(0o640)).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            Error::Insecure {
                path: path.to_path_buf(),
                why: "it is a symlink".into(),
                fix: "remove it; the server creates its log file itself".into(),
            }
        } else {
            Error::io(format!("cannot open log file {}", path.display()), e)
        }
    })?;
    if let Some(r) = run_as {
        let chown = |fd: BorrowedFd<'_>, what: &Path| {
            sys::fs::fchown(fd, r.uid, r.gid).map_err(|e| {
                Error::io(
                    format!("chown {} to the children's user", what.display()),
                    e,
                )
            })
        };
        chown(fd.as_fd(), path)?;
        if settings.log_file().is_some() {
            chown(dir.fd(), dir.path())?;
        }
        log::set_owner(Some((r.uid, r.gid)));
    }
    Ok(fd)
}

/// Starts the server as a daemon: forks, and in the child detaches and runs `master`
/// (which reports readiness on the [`Launcher`] it is given and returns the exit code).
/// The calling process waits for the report and returns the command's exit code.
pub(crate) fn start(
    settings: Settings,
    master: impl FnOnce(Settings, Launcher) -> i32,
) -> Result<u8, Error> {
    let (r, w) = sys::pipe().map_err(|e| Error::io("create the readiness pipe", e))?;
    match sys::fork().map_err(|e| Error::io("fork() failed while daemonizing", e))? {
        Fork::Parent(_) => {
            drop(w);
            wait_for_readiness(r, &settings)
        }
        Fork::Child => {
            drop(r);
            sys::reset_signal_dispositions();
            let _ = sys::unblock_all_signals();
            let code = detach(settings, Launcher(w), master);
            log::flush();
            sys::exit_now(code)
        }
    }
}

/// In the daemon: leaves the launcher's session and terminal, points the standard
/// streams at the log file, then runs the master.
fn detach(
    settings: Settings,
    launcher: Launcher,
    master: impl FnOnce(Settings, Launcher) -> i32,
) -> i32 {
    let fail = |launcher: Launcher, reason: String| {
        launcher.send(&Readiness::Failed { reason });
        1
    };
    if let Err(e) = sys::setsid() {
        return fail(launcher, format!("setsid() failed: {e}"));
    }
    let log_file = settings.daemon_log_file();
    let log = match open_log(&settings, &log_file) {
        Ok(fd) => fd,
        Err(e) => return fail(launcher, e.to_string()),
    };
    let redirected = sys::redirect_fd(0, None)
        .and_then(|_| sys::dup_onto(log.as_fd(), 1))
        .and_then(|_| sys::dup_onto(log.as_fd(), 2));
    if let Err(e) = redirected {
        return fail(
            launcher,
            format!("cannot point stdout/stderr at {}: {e}", log_file.display()),
        );
    }
    drop(log);
    log::set_file(Some(log_file));
    master(settings, launcher)
}

/// In the launcher: reads the report, prints a ready server's lines, and turns a
/// failure (or a daemon that died without a word) into the command's error.
fn wait_for_readiness(r: OwnedFd, settings: &Settings) -> Result<u8, Error> {
    let _ = sys::set_nonblocking(r.as_raw_fd(), false);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let report = loop {
        match Readiness::decode(&bytes) {
            Decoded::Complete(report) => break Some(report),
            Decoded::Malformed => break None,
            Decoded::Partial => {}
        }
        let n = sys::read_fd(r.as_raw_fd(), &mut buf)
            .map_err(|e| Error::io("read the readiness pipe", e))?;
        if n == 0 {
            break None;
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    match report {
        Some(Readiness::Ready { lines }) => {
            for line in lines {
                println!("{line}");
            }
            Ok(0)
        }
        Some(Readiness::Failed { reason }) => Err(Error::Config(reason)),
        None => Err(Error::Config(format!(
            "the server exited while starting; see {}",
            settings.daemon_log_file().display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: &Readiness) -> Readiness {
        match Readiness::decode(&r.encode()) {
            Decoded::Complete(back) => back,
            other => panic!("{r:?} came back as {other:?}"),
        }
    }

    #[test]
    fn reports_round_trip_with_newlines_in_a_failure_reason() {
        let ready = Readiness::Ready {
            lines: vec![
                "tarsfork: A.S.HttpAdapter listening on http://127.0.0.1:8080".into(),
                "tarsfork: A.S started, master pid 7".into(),
            ],
        };
        assert_eq!(round_trip(&ready), ready);
        let failed = Readiness::Failed {
            reason: "bad config:\n  /etc/a.conf:3: worker_num=0\nEND\nREADY 0\n".into(),
        };
        assert_eq!(round_trip(&failed), failed);
        let empty = Readiness::Failed {
            reason: String::new(),
        };
        assert_eq!(round_trip(&empty), empty);
    }

    #[test]
    fn a_report_cut_short_is_partial_and_garbage_is_malformed() {
        let bytes = Readiness::Failed {
            reason: "port in use".into(),
        }
        .encode();
        for cut in 0..bytes.len() {
            assert_eq!(Readiness::decode(&bytes[..cut]), Decoded::Partial, "{cut}");
        }
        for junk in [
            &b"ERR port in use\nEND\n"[..],
            b"READY x\n",
            b"READY 99999999999\n",
            b"HELLO 1\nx",
            &[b'x'; 40],
        ] {
            assert_eq!(Readiness::decode(junk), Decoded::Malformed, "{junk:?}");
        }
    }

    #[test]
    fn the_launcher_reads_what_the_daemon_sent_over_a_pipe() {
        let settings = Settings::embedded_default();
        let (r, w) = sys::pipe().expect("pipe");
        Launcher(w).send(&Readiness::Failed {
            reason: "two\nlines".into(),
        });
        match wait_for_readiness(r, &settings) {
            Err(Error::Config(reason)) => assert_eq!(reason, "two\nlines"),
            other => panic!("{other:?}"),
        }
        let (r, w) = sys::pipe().expect("pipe");
        drop(w);
        match wait_for_readiness(r, &settings) {
            Err(Error::Config(reason)) => {
                assert!(
                    reason.starts_with("the server exited while starting"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
