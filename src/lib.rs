//! tarsfork: a multi-process prefork server in the swoole style for the Tars platform.
//!
//! A **master** binds the listeners, owns the pid file and the shared memory, and forks a
//! **manager**; the manager forks N **event workers** (HTTP/1.1 and Tars RPC on the
//! inherited listeners) and M **task workers**. An application registers its callbacks on a [`Service`] and calls
//! [`run`], which gives it the whole `tarsfork --config=… [start|stop|…]` command.
//!
//! ```no_run
//! use tarsfork::{http::Response, Service};
//! fn main() -> std::process::ExitCode {
//!     tarsfork::run(Service::new(|_req, _ctx| Response::text(200, "hello")))
//! }
//! ```

mod backoff;
mod calendar;
pub mod cli;
pub mod config;
mod daemon;
pub mod error;
pub mod http;
pub mod log;
mod manager;
pub mod master;
pub mod pidfile;
pub mod platform;
mod pool;
mod process;
pub mod runas;
pub mod rundir;
pub mod scoreboard;
pub mod service;
pub mod settings;
pub mod signals;
mod status;
pub mod sys;
mod task;
pub mod taskq;
mod worker;

pub use error::{Error, EXIT_BOOT_ERROR};
pub use platform::props::{Policy, Property};
pub use service::{Ctx, Service, TaskCtx};
pub use settings::Settings;
/// The TARS protocol crate (codec, packets, framing, proxies, generated framework
/// interfaces), so services need only depend on `tarsfork`.
pub use tarsfork_tars as tars;

/// Runs the command line (`start` by default) for `service`.
pub fn run(service: Service) -> std::process::ExitCode {
    cli::main(service)
}
