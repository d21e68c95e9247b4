//! Drives the fake Tars platform (`tests/interop/fake_platform.js`, @tars/rpc): starts it on
//! loopback ports, hands out the object strings and config lines that point a server at
//! it, reads back what it decoded, and kills it (by pid) when dropped.
//!
//! Each record (one JSON line per decoded call) looks like
//! `{"t": ms, "servant": "tars.tarsstat.StatObj", "func": "reportMicMsg", "version": 1,
//! "oneway": false, "requestId": 1, "context": {}, "peer": "127.0.0.1:port",
//! "args": {"msg": [{"key": {..}, "value": {..}}], "bFromClient": false}}`: arguments under
//! the IDL's names, structs as objects, maps with a struct key as `[{key, value}]`, other
//! maps as objects (keys as strings, e.g. `intervalCount: {"100": 3}`), `long` as a number
//! when exact, else a decimal string. A call that did not decode has `"error"` instead of
//! `"args"`.
//!
//! Shared by the tests of several crates (`#[path = ".../platform_support/mod.rs"] mod
//! platform_support;`), so it depends on std and serde_json only. Needs node and
//! `npm ci --prefix tests/interop`.
// Each including test uses only part of this.
#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The script's path below the repository root.
pub const SCRIPT: &str = "tests/interop/fake_platform.js";

/// How long a started fake may take to print its ports (node start-up on a busy machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a control command (`down`, `up`, `delay`) may take to be acknowledged.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// One servant of the fake platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Servant {
    /// `tars.tarsnode.ServerObj` (ServerF): keepAlive, reportVersion.
    Node,
    /// `tars.tarsstat.StatObj` (StatF): reportMicMsg.
    Stat,
    /// `tars.tarsproperty.PropertyObj` (PropertyF): reportPropMsg.
    Property,
    /// `tars.tarsregistry.QueryObj` (QueryF): the locator.
    Registry,
    /// `tars.tarsconfig.ConfigObj` (ConfigF): loadConfig.
    Config,
    /// `tars.tarslog.LogObj` (LogF): logger.
    Log,
}

impl Servant {
    /// Every servant, in the order the fake starts them.
    pub const ALL: [Servant; 6] = [
        Servant::Node,
        Servant::Stat,
        Servant::Property,
        Servant::Registry,
        Servant::Config,
        Servant::Log,
    ];

    /// The short name the script's options and its ports line use.
    pub fn key(self) -> &'static str {
        match self {
            Servant::Node => "node",
            Servant::Stat => "stat",
            Servant::Property => "property",
            Servant::Registry => "registry",
            Servant::Config => "config",
            Servant::Log => "log",
        }
    }

    /// The Tars object name (`sServantName` of its requests).
    pub fn object(self) -> &'static str {
        match self {
            Servant::Node => "tars.tarsnode.ServerObj",
            Servant::Stat => "tars.tarsstat.StatObj",
            Servant::Property => "tars.tarsproperty.PropertyObj",
            Servant::Registry => "tars.tarsregistry.QueryObj",
            Servant::Config => "tars.tarsconfig.ConfigObj",
            Servant::Log => "tars.tarslog.LogObj",
        }
    }
}

/// Why the fake could not be started or driven.
#[derive(Debug)]
pub enum PlatformError {
    /// `tests/interop/fake_platform.js` was not found.
    NoScript {
        /// Where the search started.
        from: PathBuf,
    },
    /// `@tars/rpc` is not installed beside the script.
    NotInstalled {
        /// The interop directory.
        dir: PathBuf,
    },
    /// An I/O step failed (spawning node, the records file, a pipe).
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// The script did not print its ports line in time, or printed a bad one.
    Start {
        /// What went wrong, with the tail of node's stderr.
        detail: String,
    },
    /// A control command was refused or not acknowledged in time.
    Command {
        /// The command.
        command: String,
        /// What went wrong.
        detail: String,
    },
    /// [`FakePlatform::wait_for`] ran out of time.
    Timeout {
        /// How long it waited.
        after: Duration,
        /// How many records there were then.
        records: usize,
    },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::NoScript { from } => {
                write!(f, "{SCRIPT} not found above {}", from.display())
            }
            PlatformError::NotInstalled { dir } => write!(
                f,
                "@tars/rpc is not installed in {}: run `npm ci --prefix tests/interop`",
                dir.display()
            ),
            PlatformError::Io { what, source } => write!(f, "{what}: {source}"),
            PlatformError::Start { detail } => write!(f, "fake platform did not start: {detail}"),
            PlatformError::Command { command, detail } => {
                write!(f, "fake platform command `{command}`: {detail}")
            }
            PlatformError::Timeout { after, records } => write!(
                f,
                "condition not met within {after:?} ({records} records so far)"
            ),
        }
    }
}

impl std::error::Error for PlatformError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlatformError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> PlatformError {
    let what = what.into();
    move |source| PlatformError::Io { what, source }
}

/// How to start the fake.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The script; `None`: search upward from the including crate's manifest dir, then
    /// from the current directory, for [`SCRIPT`].
    pub script: Option<PathBuf>,
    /// Answer every call this many ms late.
    pub delay_ms: Option<u64>,
    /// Per-servant delays (override `delay_ms`).
    pub delays: Vec<(Servant, u64)>,
    /// Servants that do not listen at start (their port refuses connections).
    pub down: Vec<Servant>,
    /// What loadConfig answers, by file name; other names get ret -1.
    pub config_files: Vec<(String, String)>,
    /// Extra locator entries: object id → address.
    pub resolve: Vec<(String, SocketAddr)>,
    /// Fixed ports; servants not listed get any free port.
    pub ports: Vec<(Servant, u16)>,
}

impl Options {
    /// Defaults: every servant up, no delay, no config files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this script instead of searching for it.
    pub fn script(mut self, path: impl Into<PathBuf>) -> Self {
        self.script = Some(path.into());
        self
    }

    /// Every servant answers `ms` late.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    /// `servant` answers `ms` late.
    pub fn delay(mut self, servant: Servant, ms: u64) -> Self {
        self.delays.push((servant, ms));
        self
    }

    /// `servant` does not listen.
    pub fn down(mut self, servant: Servant) -> Self {
        self.down.push(servant);
        self
    }

    /// loadConfig of `name` answers 0 and `content`.
    pub fn config_file(mut self, name: &str, content: &str) -> Self {
        self.config_files
            .push((name.to_owned(), content.to_owned()));
        self
    }

    /// The locator resolves `id` to `addr`.
    pub fn resolve(mut self, id: &str, addr: SocketAddr) -> Self {
        self.resolve.push((id.to_owned(), addr));
        self
    }

    /// `servant` listens on `port`.
    pub fn port(mut self, servant: Servant, port: u16) -> Self {
        self.ports.push((servant, port));
        self
    }

    /// The script's options, except the config files (see [`Options::config_json`]).
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |k: &str, v: String| {
            a.push(k.to_owned());
            a.push(v);
        };
        if let Some(ms) = self.delay_ms {
            push("--delay-ms", ms.to_string());
        }
        for (s, ms) in &self.delays {
            push("--delay-ms", format!("{}={ms}", s.key()));
        }
        for s in &self.down {
            push("--down", s.key().to_owned());
        }
        for (id, addr) in &self.resolve {
            push("--resolve", format!("{id}={}:{}", addr.ip(), addr.port()));
        }
        for (s, port) in &self.ports {
            push("--port", format!("{}={port}", s.key()));
        }
        a
    }
}

impl Options {
    /// The config files as the JSON object `--config-json` reads (a file, not arguments,
    /// so no size limit of the command line applies).
    fn config_json(&self) -> String {
        let files: serde_json::Map<String, Value> = self
            .config_files
            .iter()
            .map(|(name, content)| (name.clone(), Value::String(content.clone())))
            .collect();
        Value::Object(files).to_string()
    }
}

/// Finds [`SCRIPT`] in `start` or a directory above it.
pub fn find_script(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(SCRIPT))
        .find(|p| p.is_file())
}

/// Whether the server's objects name their endpoint or leave it to the locator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// `stat=tars.tarsstat.StatObj`: resolved through `locator`.
    ViaLocator,
    /// `stat=tars.tarsstat.StatObj@tcp -h 127.0.0.1 -p P -t 3000`: used as written.
    Explicit,
}

/// The ports the fake listens on (a servant started down has a port nothing listens on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// ServerF.
    pub node: u16,
    /// StatF.
    pub stat: u16,
    /// PropertyF.
    pub property: u16,
    /// QueryF.
    pub registry: u16,
    /// ConfigF.
    pub config: u16,
    /// LogF.
    pub log: u16,
}

impl Ports {
    /// The port of `servant`.
    pub fn of(&self, servant: Servant) -> u16 {
        match servant {
            Servant::Node => self.node,
            Servant::Stat => self.stat,
            Servant::Property => self.property,
            Servant::Registry => self.registry,
            Servant::Config => self.config,
            Servant::Log => self.log,
        }
    }

    fn parse(line: &str) -> Option<(Ports, u32)> {
        let v: Value = serde_json::from_str(line).ok()?;
        let port = |k: &str| v.get(k)?.as_u64().and_then(|p| u16::try_from(p).ok());
        let ports = Ports {
            node: port("node")?,
            stat: port("stat")?,
            property: port("property")?,
            registry: port("registry")?,
            config: port("config")?,
            log: port("log")?,
        };
        let pid = u32::try_from(v.get("pid")?.as_u64()?).ok()?;
        Some((ports, pid))
    }
}

/// A running fake platform; node is killed by pid and reaped when this is dropped.
#[derive(Debug)]
pub struct FakePlatform {
    child: Child,
    // The script exits when its stdin closes, should we die without dropping this.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    ports: Ports,
    records: PathBuf,
    stderr: PathBuf,
}

static STARTED: AtomicUsize = AtomicUsize::new(0);

impl FakePlatform {
    /// Starts the fake with its records (and node's stderr) in `records_dir`, and waits
    /// (at most [`START_TIMEOUT`]) until every servant listens.
    pub fn start(records_dir: &Path, options: &Options) -> Result<FakePlatform, PlatformError> {
        let script = match &options.script {
            Some(s) => s.clone(),
            None => {
                let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
                let cwd = std::env::current_dir().unwrap_or_else(|_| manifest.clone());
                find_script(&manifest)
                    .or_else(|| find_script(&cwd))
                    .ok_or(PlatformError::NoScript { from: manifest })?
            }
        };
        let dir = script
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if !dir.join("node_modules/@tars/rpc").is_dir() {
            return Err(PlatformError::NotInstalled { dir });
        }
        fs::create_dir_all(records_dir)
            .map_err(io_err(format!("creating {}", records_dir.display())))?;
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let stem = format!("fake_platform-{}-{n}", std::process::id());
        let records = records_dir.join(format!("{stem}.jsonl"));
        let stderr_path = records_dir.join(format!("{stem}.stderr"));
        // Created empty now, so records() before the first call reads an empty file.
        fs::write(&records, b"").map_err(io_err(format!("creating {}", records.display())))?;
        let configs = records_dir.join(format!("{stem}.configs.json"));
        fs::write(&configs, options.config_json())
            .map_err(io_err(format!("writing {}", configs.display())))?;
        let stderr = fs::File::create(&stderr_path)
            .map_err(io_err(format!("creating {}", stderr_path.display())))?;

        let mut child = Command::new("node")
            .arg(&script)
            .arg("--records")
            .arg(&records)
            .arg("--config-json")
            .arg(&configs)
            .args(options.args())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io_err("spawning node (is it installed?)"))?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut platform = FakePlatform {
            child,
            stdin,
            lines,
            ports: Ports {
                node: 0,
                stat: 0,
                property: 0,
                registry: 0,
                config: 0,
                log: 0,
            },
            records,
            stderr: stderr_path,
        };
        let first = platform.lines.recv_timeout(START_TIMEOUT);
        let parsed = first.as_deref().ok().and_then(Ports::parse);
        match parsed {
            Some((ports, pid)) if pid == platform.child.id() => platform.ports = ports,
            _ => {
                let detail = match first {
                    Ok(line) => format!("unexpected first line {line:?}"),
                    Err(RecvTimeoutError::Timeout) => format!("no ports line in {START_TIMEOUT:?}"),
                    Err(RecvTimeoutError::Disconnected) => "node exited".to_owned(),
                };
                return Err(PlatformError::Start {
                    detail: format!("{detail}; stderr: {}", platform.stderr_tail()),
                });
            }
        }
        Ok(platform)
    }

    /// Node's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The address of `servant`.
    pub fn addr(&self, servant: Servant) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.of(servant)))
    }

    /// `tcp -h 127.0.0.1 -p P -t 3000` for `servant`.
    pub fn endpoint(&self, servant: Servant) -> String {
        format!("tcp -h 127.0.0.1 -p {} -t 3000", self.ports.of(servant))
    }

    /// `Object@tcp -h 127.0.0.1 -p P -t 3000` for `servant`.
    pub fn obj(&self, servant: Servant) -> String {
        format!("{}@{}", servant.object(), self.endpoint(servant))
    }

    /// `tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p P -t 3000`, the `node` key.
    pub fn node_obj(&self) -> String {
        self.obj(Servant::Node)
    }

    /// `tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p P -t 3000`, the `locator` key.
    pub fn locator(&self) -> String {
        self.obj(Servant::Registry)
    }

    /// The stat object with its endpoint.
    pub fn stat_obj(&self) -> String {
        self.obj(Servant::Stat)
    }

    /// The property object with its endpoint.
    pub fn property_obj(&self) -> String {
        self.obj(Servant::Property)
    }

    /// The config object with its endpoint.
    pub fn config_obj(&self) -> String {
        self.obj(Servant::Config)
    }

    /// The log object with its endpoint.
    pub fn log_obj(&self) -> String {
        self.obj(Servant::Log)
    }

    fn named(&self, servant: Servant, how: Endpoints) -> String {
        match how {
            Endpoints::ViaLocator => servant.object().to_owned(),
            Endpoints::Explicit => self.obj(servant),
        }
    }

    /// The `key=value` lines of the `<server>` block that point a server at the fake:
    /// `node`, `config`, `log` (`node` always carries its endpoint, as tarsnode writes it).
    pub fn server_config_lines(&self, how: Endpoints) -> Vec<String> {
        vec![
            format!("node={}", self.node_obj()),
            format!("config={}", self.named(Servant::Config, how)),
            format!("log={}", self.named(Servant::Log, how)),
        ]
    }

    /// The `key=value` lines of the `<client>` block: `locator`, `stat`, `property`.
    pub fn client_config_lines(&self, how: Endpoints) -> Vec<String> {
        vec![
            format!("locator={}", self.locator()),
            format!("stat={}", self.named(Servant::Stat, how)),
            format!("property={}", self.named(Servant::Property, how)),
        ]
    }

    /// The records file.
    pub fn records_path(&self) -> &Path {
        &self.records
    }

    /// Every call decoded so far, in arrival order (re-reads the file; a line still being
    /// written is left for the next read).
    pub fn records(&self) -> Vec<Value> {
        let Ok(text) = fs::read_to_string(&self.records) else {
            return Vec::new();
        };
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        complete
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The records of calls to `func` of `servant`.
    pub fn calls(&self, servant: Servant, func: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["servant"] == servant.object() && r["func"] == func)
            .collect()
    }

    /// Polls the records until `pred` holds for them (then returns them) or `timeout` passes.
    pub fn wait_for(
        &self,
        mut pred: impl FnMut(&[Value]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<Value>, PlatformError> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.records();
            if pred(&records) {
                return Ok(records);
            }
            if Instant::now() >= deadline {
                return Err(PlatformError::Timeout {
                    after: timeout,
                    records: records.len(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `n` calls to `func` of `servant` are recorded; returns them.
    pub fn wait_calls(
        &self,
        servant: Servant,
        func: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Value>, PlatformError> {
        let is_call = |r: &Value| r["servant"] == servant.object() && r["func"] == func;
        let records = self.wait_for(|r| r.iter().filter(|x| is_call(x)).count() >= n, timeout)?;
        Ok(records.into_iter().filter(is_call).collect())
    }

    /// Sends SIGTERM (by pid, through `kill`) and waits at most `timeout` for node to exit;
    /// its exit status, `None` if it did not exit in time (Drop still kills it).
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, PlatformError> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(io_err(format!("running kill -TERM {pid}")))?;
        if !sent.success() {
            return Err(PlatformError::Command {
                command: format!("kill -TERM {pid}"),
                detail: format!("exited with {sent}"),
            });
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(io_err(format!("waiting for node {pid}")))?
            {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops `servant` listening and drops its connections (a node that died).
    pub fn set_down(&mut self, servant: Servant) -> Result<(), PlatformError> {
        self.command(&format!("down {}", servant.key()))
    }

    /// Makes `servant` listen again, on the same port.
    pub fn set_up(&mut self, servant: Servant) -> Result<(), PlatformError> {
        self.command(&format!("up {}", servant.key()))
    }

    /// From now on `servant` (`None`: every servant) answers `ms` late.
    pub fn set_delay(&mut self, servant: Option<Servant>, ms: u64) -> Result<(), PlatformError> {
        let who = servant.map_or("all", Servant::key);
        self.command(&format!("delay {who} {ms}"))
    }

    fn command(&mut self, command: &str) -> Result<(), PlatformError> {
        let err = |detail: String| PlatformError::Command {
            command: command.to_owned(),
            detail,
        };
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| err("stdin is closed".to_owned()))?;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| err(format!("writing: {e}")))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|e| err(format!("no acknowledgement: {e}")))?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["ok"] == command {
                return Ok(());
            }
            if let Some(e) = v["error"].as_str() {
                return Err(err(e.to_owned()));
            }
        }
    }

    /// The last lines node wrote to stderr (for failure messages).
    pub fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        // Kill by pid (Child::kill), then reap, so no zombie or stray listener is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
