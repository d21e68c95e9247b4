//! The command: `tarsfork --config=<file> [start|stop|restart|reload|status|table]`.
//!
//! With no command word it starts, as tarsnode calls it. Without `--config` it runs the
//! embedded default (foreground, HTTP on loopback). Every command finds the running
//! master through the locked pid file, never through `ps`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::master::{self, shm_dir};
use crate::pidfile::{self, PidState};
use crate::scoreboard::Scoreboard;
use crate::service::Service;
use crate::settings::Settings;
use crate::status::ServerStatus;
use crate::sys::{self, ident::ProcessId};
use crate::{daemon, log, process, signals};

/// Exit code of `status` when the server is not running (LSB init-script convention).
pub const EXIT_NOT_RUNNING: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "tarsfork",
    version,
    about = "A prefork server for the Tars platform: master, manager, event workers, task workers",
    after_help = "With no command word the server starts (that is how tarsnode runs it).\n\
                  Without --config it runs the embedded demo settings in the foreground."
)]
struct Cli {
    /// The Tars config file (as tarsnode writes it). Without it: the embedded default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With the embedded default only: the HTTP address to listen on (default 127.0.0.1:8080).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (refused while one runs); returns when it is ready if daemonize=1.
    Start,
    /// Graceful stop; waits for the master to exit, then KILLs the tree after the timeout.
    Stop {
        /// Milliseconds to wait before KILL (default: deactivating-timeout).
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
    },
    /// Stop (waiting for the exit), then start.
    Restart {
        /// Milliseconds to wait for the stop before KILL (default: deactivating-timeout).
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
    },
    /// Rolling reload of workers and task workers (USR1), or task workers only (USR2).
    Reload {
        /// Reload task workers only.
        #[arg(long)]
        tasks: bool,
    },
    /// One line per process, read from shared memory (no signal is sent).
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the running server's shared-memory tables.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// List the tables.
    List,
    /// Print one table's rows.
    Dump {
        /// Table name, as `table list` shows it.
        name: String,
        /// JSON instead of a text table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs the command for `service`.
pub fn main(service: Service) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let settings = match load_settings(&cli) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("tarsfork: {msg}");
            return ExitCode::from(1);
        }
    };
    log::set_level(settings.loglevel);
    let result = match cli.command.unwrap_or(Command::Start) {
        Command::Start => start(settings, &service),
        Command::Stop { timeout } => stop(&settings, timeout).map(|_| 0),
        Command::Restart { timeout } => match stop(&settings, timeout) {
            Ok(_) => start(settings, &service),
            Err(e) => Err(e),
        },
        Command::Reload { tasks } => reload(&settings, tasks),
        Command::Status { json } => status(&settings, json),
        Command::Table { command } => table(&settings, command),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tarsfork: {e}");
            ExitCode::from(1)
        }
    }
}

fn load_settings(cli: &Cli) -> Result<Settings, String> {
    let mut settings = match &cli.config {
        Some(path) => Settings::from_file(path).map_err(|e| e.to_string())?,
        None => Settings::embedded_default(),
    };
    if let Some(listen) = &cli.listen {
        if cli.config.is_some() {
            return Err("--listen applies to the embedded default only; set the adapter's endpoint in the config file".into());
        }
        let (host, port) = listen
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse::<u16>().ok()?,
                ))
            })
            .ok_or_else(|| {
                format!("--listen {listen:?}: expected HOST:PORT, e.g. --listen 127.0.0.1:8080")
            })?;
        for a in settings.adapters.iter_mut() {
            a.endpoint.host = host.clone();
            a.endpoint.port = port;
        }
    }
    settings.validate().map_err(|e| e.to_string())?;
    for k in settings.unknown_keys() {
        log::debug(&format!("ignored config key: {k}"));
    }
    Ok(settings)
}

fn start(settings: Settings, service: &Service) -> Result<u8, Error> {
    if let PidState::Running(pid) = pidfile::probe(&settings.pid_file)? {
        return Err(Error::AlreadyRunning {
            pid,
            pid_file: settings.pid_file.clone(),
        });
    }
    if !settings.daemonize {
        return master::run(settings, service, None).map(|c| c as u8);
    }
    daemon::start(settings, |settings, launcher| {
        match master::run(settings, service, Some(launcher)) {
            Ok(code) => code,
            Err(e) => {
                log::error(&e.to_string());
                1
            }
        }
    })
}

fn running_pid(settings: &Settings) -> Result<Option<i32>, Error> {
    match pidfile::probe(&settings.pid_file)? {
        PidState::Running(Some(pid)) => Ok(Some(pid)),
        PidState::Running(None) => Err(Error::Config(format!(
            "pid file {} is locked but holds no pid; is another program using it?",
            settings.pid_file.display()
        ))),
        _ => Ok(None),
    }
}

fn not_running(settings: &Settings) -> String {
    match pidfile::probe(&settings.pid_file) {
        Ok(PidState::Stale(pid)) => format!(
            "{} is not running (stale pid file {} names pid {}, but no master holds its lock)",
            settings.full_name(),
            settings.pid_file.display(),
            pid.map_or("?".into(), |p| p.to_string())
        ),
        _ => format!(
            "{} is not running (no pid file {})",
            settings.full_name(),
            settings.pid_file.display()
        ),
    }
}

fn stop(settings: &Settings, timeout: Option<u64>) -> Result<(), Error> {
    let Some(pid) = running_pid(settings)? else {
        println!("tarsfork: {}", not_running(settings));
        return Ok(());
    };
    // Remember the tree (the master included) before the master removes the scoreboard.
    let mut tree = Scoreboard::open_readonly(&shm_dir(settings, pid))
        .map(|sb| sb.tree())
        .unwrap_or_default();
    let master = ProcessId::of(pid);
    if let Some(m) = master.filter(|m| !tree.contains(m)) {
        tree.push(m);
    }
    sys::send_signal(pid, signals::signal_for(signals::Action::Stop))
        .map_err(|e| Error::io(format!("send TERM to master pid {pid}"), e))?;
    let wait = timeout.map_or(settings.deactivating_timeout, Duration::from_millis);
    let deadline = sys::monotonic_ms() + wait.as_millis() as i64;
    while sys::monotonic_ms() < deadline {
        if !matches!(pidfile::probe(&settings.pid_file)?, PidState::Running(_)) {
            println!(
                "tarsfork: {} stopped (master pid {pid})",
                settings.full_name()
            );
            return Ok(());
        }
        sys::sleep(Duration::from_millis(5));
    }
    process::kill_tree(&tree);
    if master.is_none() {
        // No /proc to tell who has the pid: the locked pid file is the only evidence.
        let _ = sys::send_signal(pid, libc::SIGKILL);
    }
    // The lock goes with the master's death.
    let deadline = sys::monotonic_ms() + 2000;
    while sys::monotonic_ms() < deadline
        && matches!(pidfile::probe(&settings.pid_file)?, PidState::Running(_))
    {
        sys::sleep(Duration::from_millis(5));
    }
    println!(
        "tarsfork: {} did not stop within {} ms; killed the process tree (master pid {pid})",
        settings.full_name(),
        wait.as_millis()
    );
    Ok(())
}

fn reload(settings: &Settings, tasks: bool) -> Result<u8, Error> {
    let Some(pid) = running_pid(settings)? else {
        eprintln!("tarsfork: {}", not_running(settings));
        return Ok(1);
    };
    let action = if tasks {
        signals::Action::ReloadTasks
    } else {
        signals::Action::Reload
    };
    let sig = signals::signal_for(action);
    sys::send_signal(pid, sig).map_err(|e| Error::io(format!("signal master pid {pid}"), e))?;
    println!(
        "tarsfork: sent {} to master pid {pid} ({})",
        sys::signal_name(sig),
        if tasks {
            "reload task workers"
        } else {
            "rolling reload"
        }
    );
    Ok(0)
}

fn status(settings: &Settings, json: bool) -> Result<u8, Error> {
    let Some(pid) = running_pid(settings)? else {
        println!("tarsfork: {}", not_running(settings));
        return Ok(EXIT_NOT_RUNNING);
    };
    let sb = Scoreboard::open_readonly(&shm_dir(settings, pid))?;
    let report = ServerStatus::read(&settings.full_name(), pid, &sb);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(0)
}

fn table(settings: &Settings, command: TableCommand) -> Result<u8, Error> {
    let Some(pid) = running_pid(settings)? else {
        println!("tarsfork: {}", not_running(settings));
        return Ok(EXIT_NOT_RUNNING);
    };
    let dir = shm_dir(settings, pid);
    let shm = |e: tarsfork_shm::ShmError| Error::Shm(e.to_string());
    match command {
        TableCommand::List => {
            println!(
                "{:<16} {:>6} {:>9} {:>12}",
                "TABLE", "ROWS", "CAPACITY", "BYTES"
            );
            for t in tarsfork_shm::inspect::list_tables(&dir).map_err(shm)? {
                println!(
                    "{:<16} {:>6} {:>9} {:>12}",
                    t.name, t.len, t.capacity, t.memory_size
                );
            }
        }
        TableCommand::Dump { name, json } => {
            if name.contains('/') || name.starts_with('.') {
                return Err(Error::Config(format!(
                    "{name:?} is not a table name; see `table list`"
                )));
            }
            let path = dir.join(&name);
            if !path.exists() {
                return Err(Error::Config(format!(
                    "no table {name:?} in {}; see `table list`",
                    dir.display()
                )));
            }
            let text = if json {
                tarsfork_shm::inspect::render_json(&path)
            } else {
                tarsfork_shm::inspect::render_text(&path)
            }
            .map_err(shm)?;
            println!("{}", text.trim_end());
        }
    }
    Ok(0)
}
