//! The admin endpoint: AdminF (`AdminObj`, adapter `AdminAdapter`) on the `local`
//! endpoint, served by the master itself so it answers while every worker is busy.
//!
//! Admin calls are rare and tiny: connections are non-blocking, read in the master's
//! poll loop, and each reply is written at once (a peer that does not read it within
//! a second is dropped).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tarsfork_tars::frame::FrameSplitter;
use tarsfork_tars::framework::tars::{admin_f_dispatch, AdminFServant};
use tarsfork_tars::packet::RequestPacket;
use tarsfork_tars::proxy::{Current, ServantError};

use crate::platform::locator::Locator;
use crate::process::Shared;
use crate::status::ServerStatus;
use crate::{log, sys};

/// Largest admin frame accepted.
const MAX_ADMIN_FRAME: usize = 1024 * 1024;
/// Most admin connections open at once.
const MAX_ADMIN_CONNS: usize = 64;

/// What an admin call asks the master to do after it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// `shutdown()`: a graceful stop.
    Shutdown,
    /// `tars.setloglevel`: the new level for every process.
    SetLogLevel(crate::settings::LogLevel),
}

const HELP: &str = "tars.help: this help\n\
tars.viewstatus: the process table (pid, role, state, requests, heartbeats)\n\
tars.setloglevel <NONE|ERROR|WARN|INFO|DEBUG>: the log level of every process\n\
tars.loadconfig <file>: pull <file> from tarsconfig into the config directory\n\
tars.connection: open connections per adapter\n\
tars.viewversion: the tarsfork version\n";

/// The admin servant: answers from the shared state, records actions for the master.
struct AdminServant<'a> {
    shared: &'a Shared,
    locator: &'a mut Locator,
    actions: Vec<AdminAction>,
}

impl AdminFServant for AdminServant<'_> {
    fn shutdown(&mut self, _current: &Current<'_>) -> Result<(), ServantError> {
        self.actions.push(AdminAction::Shutdown);
        Ok(())
    }

    fn notify(&mut self, _current: &Current<'_>, command: &str) -> Result<String, ServantError> {
        let mut words = command.split_whitespace();
        let verb = words.next().unwrap_or("");
        let arg = words.next();
        Ok(match (verb, arg) {
            ("tars.viewstatus", _) => ServerStatus::read(
                &self.shared.settings.full_name(),
                self.shared.master_pid,
                &self.shared.scoreboard,
            )
            .to_text(),
            ("tars.setloglevel", Some(level)) => match crate::settings::LogLevel::parse(level) {
                Some(l) => {
                    self.actions.push(AdminAction::SetLogLevel(l));
                    format!("log level set to {}\n", level.to_ascii_uppercase())
                }
                None => format!("unknown log level {level:?}\n{HELP}"),
            },
            ("tars.loadconfig", Some(file)) => {
                match crate::platform::config_pull::pull(&self.shared.settings, self.locator, file)
                {
                    Ok(path) => format!("loaded {file} into {}\n", path.display()),
                    Err(e) => {
                        log::error(&format!("tars.loadconfig: {e}"));
                        format!("tars.loadconfig {file} failed: {e}\n")
                    }
                }
            }
            ("tars.connection", _) => {
                let mut out = String::new();
                for (name, n) in self.shared.scoreboard.adapter_connections() {
                    out.push_str(&format!("{name}: {n} connection(s)\n"));
                }
                out
            }
            ("tars.viewversion", _) => {
                format!("tarsfork {}\n", env!("CARGO_PKG_VERSION"))
            }
            _ => HELP.to_string(),
        })
    }

    fn get_pid(&mut self, _current: &Current<'_>) -> Result<i64, ServantError> {
        Ok(i64::from(self.shared.master_pid))
    }
}

struct AdminConn {
    stream: TcpStream,
    frames: FrameSplitter,
}

/// The admin listener and its connections, owned by the master.
pub(crate) struct AdminEndpoint {
    listener: TcpListener,
    conns: Vec<AdminConn>,
    locator: Locator,
}

impl AdminEndpoint {
    /// Wraps a bound listener.
    pub(crate) fn new(listener: TcpListener, locator: Locator) -> std::io::Result<AdminEndpoint> {
        listener.set_nonblocking(true)?;
        Ok(AdminEndpoint {
            listener,
            conns: Vec::new(),
            locator,
        })
    }

    /// Every fd the master should poll for admin work.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.listener.as_raw_fd()];
        v.extend(self.conns.iter().map(|c| c.stream.as_raw_fd()));
        v
    }

    /// Accepts, reads and answers what is ready; returns what the master must do.
    pub(crate) fn serve(&mut self, shared: &Shared) -> Vec<AdminAction> {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.conns.len() >= MAX_ADMIN_CONNS || stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.conns.push(AdminConn {
                stream,
                frames: FrameSplitter::new(MAX_ADMIN_FRAME),
            });
        }
        let mut servant = AdminServant {
            shared,
            locator: &mut self.locator,
            actions: Vec::new(),
        };
        self.conns.retain_mut(|c| serve_conn(c, &mut servant));
        servant.actions
    }
}

/// Reads what is there and answers every complete request; false: drop the connection.
fn serve_conn(c: &mut AdminConn, servant: &mut AdminServant<'_>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => c.frames.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    loop {
        let request = match c.frames.next_frame() {
            Ok(Some(frame)) => match RequestPacket::decode(frame) {
                Ok(r) => r,
                Err(_) => return false,
            },
            Ok(None) => return true,
            Err(_) => return false,
        };
        log::debug(&format!("admin call {}", request.func_name));
        let reply = admin_f_dispatch(servant, &request);
        match reply.encode_frame() {
            Ok(Some(frame)) => {
                if write_reply(&mut c.stream, &frame).is_err() {
                    return false;
                }
            }
            Ok(None) => {}
            Err(e) => log::error(&format!("cannot encode the admin reply: {e}")),
        }
    }
}

/// Writes a whole reply, waiting at most a second for a slow reader.
fn write_reply(stream: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    let mut rest = frame;
    let deadline = sys::monotonic_ms() + 1000;
    while !rest.is_empty() {
        match stream.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if sys::monotonic_ms() > deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
