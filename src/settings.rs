//! ONE settings struct for everything the server reads from its Tars config.
//!
//! Every key is described once, in [`SETTINGS_KEYS`] (keys of `<application>`,
//! `<server>` and `<client>`) and [`ADAPTER_KEYS`] (keys of each `<…Adapter>` block).
//! A descriptor names the key, its block, its type and unit, its default and meaning,
//! an example value, and the setter that stores the parsed value; the parser and the
//! README table ([`docs_table_markdown`]) are both driven by these tables.
//!
//! Rules the tables share:
//! - Durations: a bare number is in the key's own unit — seconds for the swoole keys
//!   (`max_wait_time`, `request_timeout`, `worker_timeout`, as swoole uses), milliseconds
//!   for the Tars keys (`*-timeout`, `*-interval`, `queuetimeout`). An explicit `ms` or
//!   `s` suffix is always accepted (`max_wait_time=500ms`). The endpoint `-t` stays a
//!   bare number of milliseconds, because other Tars tools read the same string.
//! - Sizes: bytes, or a number with `K`, `M`, `G` (1024-based, as TarsCpp), e.g. `15M`.
//! - Flags: `0`/`1` (also `n`/`y`, `no`/`yes`, `false`/`true`, `off`/`on`).
//! - An empty value for a text, path, endpoint or object key means "not set".
//! - Unknown keys are tolerated (tarsnode writes many that only TarsCpp uses) and kept,
//!   with their line, in [`Settings::unknown_keys`]; the caller logs them once at start.
//!   Each carries a hint when it looks like a typo (`did you mean worker_num?`) or a key
//!   of another block (`locator belongs in <client>`). Unknown child blocks of `<server>`
//!   whose name does not end in `Adapter` are listed there too, as `<name>`.
//! - Command-line overrides go through the same table: [`Settings::set`].
//! - [`Settings::validate`] checks what single keys cannot: at least one adapter (at
//!   most [`MAX_ADAPTERS`]), no two listeners on one address (the admin `local`
//!   endpoint included), distinct servants, names usable in file names, and a task
//!   worker for the heartbeat when `node` is set.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Block, ConfigError, ConfigTree, Endpoint, Location, ObjectRef, Transport};

/// Block path of `<application>` from the root.
pub const APPLICATION_PATH: [&str; 2] = ["tars", "application"];
/// Block path of `<server>` from the root.
pub const SERVER_PATH: [&str; 3] = ["tars", "application", "server"];
/// Block path of `<client>` from the root.
pub const CLIENT_PATH: [&str; 3] = ["tars", "application", "client"];

/// Upper bound on worker and task worker counts: a typo like `worker_num=40000` must
/// not fork the machine to death.
pub const MAX_PROCESSES: u64 = 1024;

/// Most adapter blocks accepted: each is a listener in every worker, and the checks
/// between adapters compare every pair.
pub const MAX_ADAPTERS: usize = 1024;

/// Longest duration any key accepts (one year), so that `now + duration` can never
/// overflow in the code that uses it.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// File label used in messages about the embedded default settings.
const EMBEDDED_LABEL: &str = "<embedded default>";

/// File label used in messages about values given to [`Settings::set`].
const OVERRIDE_LABEL: &str = "command line";

/// Log levels, in TarsCpp's order (each level includes the ones before it): the level
/// of the config's `logLevel`, of `tars.setloglevel`, and of every log line (a line is
/// written when its level is at most the server's; lines are never `None` or `Tars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LogLevel {
    /// Log nothing.
    None,
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Informational messages and above.
    Info,
    /// Debug messages and above.
    Debug,
    /// Framework tracing and everything else (TarsCpp's `TARS` level).
    Tars,
}

impl LogLevel {
    /// The level as written in configs and in `tars.setloglevel`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::None => "NONE",
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Tars => "TARS",
        }
    }

    /// Every level, least verbose first.
    pub const ALL: [LogLevel; 6] = [
        LogLevel::None,
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Tars,
    ];

    /// Parses a level name, case-insensitively; also `WARNING` and `OFF` (for `NONE`),
    /// which `tars.setloglevel` has always taken.
    pub fn parse(text: &str) -> Option<LogLevel> {
        let text = text.trim();
        let alias = [("WARNING", LogLevel::Warn), ("OFF", LogLevel::None)];
        Self::ALL
            .into_iter()
            .map(|l| (l.as_str(), l))
            .chain(alias)
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, l)| l)
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Tars RPC (`protocol=tars`).
    Tars,
    /// Anything else; served as HTTP/1.1 by tarsfork (`protocol=not_tars`).
    NotTars,
}

impl Protocol {
    /// The word as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tars => "tars",
            Protocol::NotTars => "not_tars",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `<…Adapter>` block of `<server>`: a listener and how to serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSettings {
    /// The block name, e.g. `TestApp.HelloServer.HttpObjAdapter` (what keepAlive reports).
    pub name: String,
    /// Where to listen; its `-t` is the idle timeout of a connection.
    pub endpoint: Endpoint,
    /// `tars` or `not_tars`.
    pub protocol: Protocol,
    /// Full servant name, e.g. `TestApp.HelloServer.HttpObj`.
    pub servant: String,
    /// TarsCpp handler threads; tarsfork uses the largest as the default `worker_num`.
    pub threads: usize,
    /// Most connections open at once on this adapter, counted across all workers.
    pub maxconns: usize,
    /// Most requests queued (Tars: waiting for a handler) before refusing more.
    pub queuecap: usize,
    /// How long a queued request may wait before it is dropped.
    pub queuetimeout: Duration,
    /// Client IPs allowed to connect: addresses or IPv4 patterns like `10.0.*.*`;
    /// empty means everyone.
    pub allow: Vec<String>,
    /// Line of the block's `<name>` in the config file, `None` for built-in settings.
    pub line: Option<usize>,
}

impl AdapterSettings {
    /// The connection idle timeout (the endpoint's `-t`).
    pub fn idle_timeout(&self) -> Duration {
        self.endpoint.timeout()
    }

    /// True when a client at `ip` may connect (the `allow` list is empty or matches).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|p| ip_matches(p, ip))
    }
}

/// The `<client>` block: how this server calls other Tars services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The registry (`tars.tarsregistry.QueryObj@…`) that resolves object names.
    pub locator: Option<ObjectRef>,
    /// The stat service (`tars.tarsstat.StatObj`).
    pub stat: Option<ObjectRef>,
    /// The property service (`tars.tarsproperty.PropertyObj`).
    pub property: Option<ObjectRef>,
    /// Time between stat/property reports.
    pub report_interval: Duration,
    /// Time between re-resolutions of object endpoints through the locator.
    pub refresh_endpoint_interval: Duration,
    /// Timeout of a synchronous call.
    pub sync_invoke_timeout: Duration,
    /// Timeout of an asynchronous call.
    pub async_invoke_timeout: Duration,
    /// TarsCpp async callback threads (kept for reference; tarsfork has no such threads).
    pub asyncthread: usize,
    /// The module name this server reports in client-side stats.
    pub modulename: String,
}

/// A key (or block) the settings do not know, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Where it was found, e.g. `<server>` or `<TestApp.HelloServer.HttpObjAdapter>`.
    pub block: String,
    /// The key, or `<name>` for an unknown block.
    pub key: String,
    /// Its line in the config file.
    pub line: usize,
    /// A likely fix when the key looks like a typo of a known key or belongs in
    /// another block, e.g. `did you mean worker_num?`.
    pub hint: Option<String>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} in {} is not a tarsfork setting (ignored)",
            self.line, self.key, self.block
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// Everything the server reads from its config. Build it with [`Settings::from_file`],
/// [`Settings::from_tree`] or [`Settings::embedded_default`]; the meaning and default of
/// each field is in [`SETTINGS_KEYS`] / [`ADAPTER_KEYS`] (and in README's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The config file these came from; `None` for the embedded default.
    pub source: Option<PathBuf>,
    /// `enableset`: set routing on.
    pub enableset: bool,
    /// `setdivision`: the set name (`None` for `NULL` / unset).
    pub setdivision: Option<String>,
    /// `app`: the application name.
    pub app: String,
    /// `server`: the server name.
    pub server: String,
    /// `node`: where keepAlive goes (tarsnode's ServerObj).
    pub node: Option<ObjectRef>,
    /// `nodename`: the node's name (its IP).
    pub nodename: Option<String>,
    /// `localip`: this machine's IP as the platform knows it.
    pub localip: Option<String>,
    /// `local`: the admin endpoint (AdminObj).
    pub local: Option<Endpoint>,
    /// `basepath`: install dir of the executable.
    pub basepath: Option<PathBuf>,
    /// `datapath`: data dir (pid file, shared memory names...).
    pub datapath: PathBuf,
    /// `logpath`: log root; `None` logs to stderr.
    pub logpath: Option<PathBuf>,
    /// `logsize`: bytes before a log file is rotated.
    pub logsize: u64,
    /// `lognum`: rotated log files kept.
    pub lognum: usize,
    /// `logLevel` / `loglevel`.
    pub loglevel: LogLevel,
    /// `config`: the tarsconfig object.
    pub config: Option<ObjectRef>,
    /// `notify`: the tarsnotify object.
    pub notify: Option<ObjectRef>,
    /// `log`: the tarslog object.
    pub log: Option<ObjectRef>,
    /// `deactivating-timeout`: how long `stop` waits for the master to exit.
    pub deactivating_timeout: Duration,
    /// `activating-timeout`: how long a daemonizing `start` waits for readiness.
    pub activating_timeout: Duration,
    /// `worker_num`: event worker processes.
    pub worker_num: usize,
    /// `task_worker_num`: task worker processes.
    pub task_worker_num: usize,
    /// `daemonize`: run in the background.
    pub daemonize: bool,
    /// `max_request`: requests after which a worker is recycled (0 = never).
    pub max_request: u64,
    /// `max_request_grace`: random extra requests (0..=grace) added per worker.
    pub max_request_grace: u64,
    /// `max_wait_time`: how long a graceful stop/reload waits before KILL.
    pub max_wait_time: Duration,
    /// `request_timeout`: a request running longer gets its worker killed (0 = off).
    pub request_timeout: Duration,
    /// `worker_timeout`: a worker whose heartbeat is older is killed (0 = off).
    pub worker_timeout: Duration,
    /// `pid_file`: the master's locked pid file.
    pub pid_file: PathBuf,
    /// `user`: the user every child process runs as (None: the user that started it).
    pub user: Option<String>,
    /// `group`: the group every child process runs as (None: `user`'s primary group).
    pub group: Option<String>,
    /// `backlog`: listen backlog of every listener.
    pub backlog: u32,
    /// `keepalive-interval`: time between keepAlive reports to the node.
    pub keepalive_interval: Duration,
    /// The `<…Adapter>` blocks of `<server>`, in file order.
    pub adapters: Vec<AdapterSettings>,
    /// The `<client>` block.
    pub client: ClientSettings,
    /// Keys present in the file that tarsfork does not use.
    unknown: Vec<UnknownKey>,
    /// Keys given explicitly (canonical key → line in the file, `None` when set by
    /// [`Settings::set`] or built in): derived defaults leave them alone, and
    /// [`Settings::validate`] names their line.
    explicit: HashMap<&'static str, Option<usize>>,
}

impl Settings {
    /// Reads and parses the Tars config at `path` and validates the result.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Settings, ConfigError> {
        Settings::from_tree(&ConfigTree::load(path)?)
    }

    /// Settings from a parsed config tree (validated).
    pub fn from_tree(tree: &ConfigTree) -> Result<Settings, ConfigError> {
        let file = tree.file();
        let application = tree
            .block(&APPLICATION_PATH)
            .ok_or_else(|| ConfigError::Missing {
                at: Location::file(file).into(),
                what: "the <tars><application> block".into(),
                fix:
                    "a Tars config is <tars><application><server>…</server></application></tars>; \
                          see the example in README"
                        .into(),
            })?;
        let server = application
            .child("server")
            .ok_or_else(|| ConfigError::Missing {
                at: tree.at(application.line()).into(),
                what: "<server> in <tars><application>".into(),
                fix: "add a <server> block with app=, server= and an adapter block".into(),
            })?;
        let mut s = Settings::base(Some(file.to_path_buf()));
        let mut reader = Reader {
            tree,
            seen: Vec::new(),
        };

        reader.apply_keys(&mut s, application, Scope::Application)?;
        for child in application.children() {
            if child.name() != "server" && child.name() != "client" {
                s.unknown.push(unknown_block("<application>", child));
            }
        }
        reader.apply_keys(&mut s, server, Scope::Server)?;
        if let Some(client) = application.child("client") {
            reader.apply_keys(&mut s, client, Scope::Client)?;
        }
        for child in server.children() {
            if child.name().ends_with("Adapter") {
                let adapter = reader.adapter(&mut s, child)?;
                s.adapters.push(adapter);
            } else {
                s.unknown.push(unknown_block("<server>", child));
            }
        }
        for (key, value) in [("app", &s.app), ("server", &s.server)] {
            if value.is_empty() {
                return Err(ConfigError::Missing {
                    at: tree.at(server.line()).into(),
                    what: format!("{key}= in <server>"),
                    fix: format!("add e.g. {key}={}", descriptor_example(key)),
                });
            }
        }
        s.explicit = reader
            .seen
            .iter()
            .map(|&(key, line)| (key, Some(line)))
            .collect();
        s.derive_defaults();
        s.validate()?;
        Ok(s)
    }

    /// The no-config demo: `TarsFork.Demo`, one `not_tars` adapter on
    /// `tcp -h 127.0.0.1 -p 8080 -t 60000`, 2 workers, 1 task worker, foreground,
    /// logging to stderr, data in a per-user dir under the system temp dir.
    pub fn embedded_default() -> Settings {
        let mut s = Settings::base(None);
        s.app = "TarsFork".into();
        s.server = "Demo".into();
        let mut endpoint = Endpoint::new(Transport::Tcp, "127.0.0.1", 8080);
        endpoint.timeout_ms = Some(60_000);
        s.adapters.push(AdapterSettings {
            name: "TarsFork.Demo.HttpObjAdapter".into(),
            endpoint,
            protocol: Protocol::NotTars,
            servant: "TarsFork.Demo.HttpObj".into(),
            threads: 2,
            // TarsCpp's default of 128 would refuse a 256-connection benchmark.
            maxconns: 100_000,
            queuecap: 10_000,
            queuetimeout: Duration::from_millis(60_000),
            allow: Vec::new(),
            line: None,
        });
        s.worker_num = 2;
        s.task_worker_num = 1;
        s.explicit.insert("worker_num", None);
        s.derive_defaults();
        s
    }

    /// Sets one `<application>`, `<server>` or `<client>` key as if the config said
    /// `key=value` (for command-line overrides), then recomputes the derived defaults
    /// and validates; on an error nothing changes. Errors name `command line` as their
    /// source.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let at = || Location::file(OVERRIDE_LABEL);
        let Some(d) = SETTINGS_KEYS
            .iter()
            .find(|d| d.key == key || d.aliases.contains(&key))
        else {
            let hint = suggest_key(Scope::Server, key)
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            return Err(ConfigError::Invalid {
                at: at().into(),
                message: format!(
                    "`{key}` is not a setting of <application>, <server> or <client>{hint}"
                ),
            });
        };
        // Work on a copy so that a value failing validation leaves `self` unchanged.
        let mut next = self.clone();
        d.apply(&mut next, key, value, at())?;
        next.explicit.insert(d.key, None);
        next.derive_defaults();
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// The defaults of every key with a fixed default; required and derived keys are
    /// empty here and filled by the caller / [`Settings::derive_defaults`].
    fn base(source: Option<PathBuf>) -> Settings {
        Settings {
            source,
            enableset: false,
            setdivision: None,
            app: String::new(),
            server: String::new(),
            node: None,
            nodename: None,
            localip: None,
            local: None,
            basepath: None,
            datapath: default_datapath(),
            logpath: None,
            logsize: 50 * 1024 * 1024,
            lognum: 10,
            loglevel: LogLevel::Info,
            config: None,
            notify: None,
            log: None,
            deactivating_timeout: Duration::from_millis(3000),
            activating_timeout: Duration::from_millis(60_000),
            worker_num: 1,
            task_worker_num: 1,
            daemonize: false,
            max_request: 0,
            max_request_grace: 0,
            max_wait_time: Duration::from_secs(3),
            request_timeout: Duration::from_secs(60),
            worker_timeout: Duration::from_secs(30),
            pid_file: PathBuf::new(),
            user: None,
            group: None,
            backlog: 511,
            keepalive_interval: Duration::from_millis(10_000),
            adapters: Vec::new(),
            client: ClientSettings {
                locator: None,
                stat: None,
                property: None,
                report_interval: Duration::from_millis(60_000),
                refresh_endpoint_interval: Duration::from_millis(60_000),
                sync_invoke_timeout: Duration::from_millis(3000),
                async_invoke_timeout: Duration::from_millis(5000),
                asyncthread: 3,
                modulename: String::new(),
            },
            unknown: Vec::new(),
            explicit: HashMap::new(),
        }
    }

    /// Fills the keys whose default depends on other keys, unless given explicitly.
    fn derive_defaults(&mut self) {
        let explicit = self.explicit.clone();
        let was_set = |key: &str| explicit.contains_key(key);
        if !was_set("worker_num") {
            let threads = self.adapters.iter().map(|a| a.threads).max().unwrap_or(1);
            self.worker_num = threads.clamp(1, MAX_PROCESSES as usize);
        }
        if !was_set("max_request_grace") {
            self.max_request_grace = self.max_request / 2;
        }
        if !was_set("pid_file") {
            self.pid_file = PathBuf::from(format!("{}.pid", self.full_name()));
        }
        // A relative pid_file (and the default) lives in the data dir.
        if self.pid_file.is_relative() {
            self.pid_file = self.datapath.join(&self.pid_file);
        }
        if !was_set("modulename") {
            self.client.modulename = self.full_name();
        }
    }

    /// Whether `datapath` is the per-user default (a directory tarsfork makes for
    /// itself and holds to `0700`) rather than one the config named.
    pub fn datapath_is_default(&self) -> bool {
        !self.explicit.contains_key("datapath")
    }

    /// `App.Server`, the name the platform knows this server by.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.app, self.server)
    }

    /// The server's log file: `<logpath>/<App>/<Server>/<App>.<Server>.log`, or `None`
    /// when logging to stderr.
    pub fn log_file(&self) -> Option<PathBuf> {
        self.logpath.as_ref().map(|root| {
            root.join(&self.app)
                .join(&self.server)
                .join(format!("{}.log", self.full_name()))
        })
    }

    /// Where a daemonized server sends its stdout and stderr: [`Settings::log_file`],
    /// or `<datapath>/<App>.<Server>.log` when there is no `logpath`.
    pub fn daemon_log_file(&self) -> PathBuf {
        self.log_file()
            .unwrap_or_else(|| self.datapath.join(format!("{}.log", self.full_name())))
    }

    /// Keys and blocks in the file that tarsfork ignored, in file order per block.
    /// The caller logs them once at start (one line each, via their `Display`).
    pub fn unknown_keys(&self) -> &[UnknownKey] {
        &self.unknown
    }

    /// The adapter called `name`.
    pub fn adapter(&self, name: &str) -> Option<&AdapterSettings> {
        self.adapters.iter().find(|a| a.name == name)
    }

    /// Checks that the settings fit together: names usable in file names, at least one
    /// adapter, worker counts in range, no two listeners on one address, a task worker
    /// for the heartbeat when running under tarsnode. Called by [`Settings::from_tree`];
    /// call it again after changing fields in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [("app", &self.app), ("server", &self.server)] {
            let bad = value.is_empty()
                || value
                    .chars()
                    .any(|c| c == '/' || c.is_whitespace() || c.is_control());
            if bad {
                return Err(self.invalid(
                    key,
                    format!(
                        "{key}={value:?}: expected a non-empty name without spaces or '/', \
                         e.g. {key}={}",
                        descriptor_example(key)
                    ),
                ));
            }
        }
        if self.adapters.is_empty() {
            return Err(ConfigError::Missing {
                at: self.at(None).into(),
                what: "an adapter block in <server>".into(),
                fix: format!(
                    "add e.g. <{0}.HttpObjAdapter> endpoint=tcp -h 127.0.0.1 -p 8080 -t 60000 \
                     protocol=not_tars </{0}.HttpObjAdapter> inside <server>",
                    self.full_name()
                ),
            });
        }
        if self.adapters.len() > MAX_ADAPTERS {
            return Err(ConfigError::Invalid {
                at: self
                    .at(self.adapters.get(MAX_ADAPTERS).and_then(|a| a.line))
                    .into(),
                message: format!(
                    "more than {MAX_ADAPTERS} adapter blocks in <server>; each is a listener \
                     in every worker, so merge them into fewer adapters"
                ),
            });
        }
        if self.worker_num == 0 || self.worker_num as u64 > MAX_PROCESSES {
            return Err(self.invalid(
                "worker_num",
                format!(
                    "worker_num={}: expected a whole number from 1 to {MAX_PROCESSES}, e.g. worker_num=4",
                    self.worker_num
                ),
            ));
        }
        if self.task_worker_num as u64 > MAX_PROCESSES {
            return Err(self.invalid(
                "task_worker_num",
                format!(
                    "task_worker_num={}: expected a whole number from 0 to {MAX_PROCESSES}, e.g. task_worker_num=1",
                    self.task_worker_num
                ),
            ));
        }
        if self.node.is_some() && self.task_worker_num == 0 {
            return Err(self.invalid(
                "task_worker_num",
                "task_worker_num=0 but node= is set: the keepAlive heartbeat to tarsnode runs in \
                 task worker 0; set task_worker_num=1 or more"
                    .into(),
            ));
        }
        for (i, a) in self.adapters.iter().enumerate() {
            let at: Box<Location> = self.at(a.line).into();
            if a.endpoint.timeout() > MAX_DURATION {
                return Err(ConfigError::Invalid {
                    at,
                    message: format!(
                        "<{}> endpoint -t {} ms is longer than a year; use e.g. -t 60000",
                        a.name,
                        a.endpoint.timeout().as_millis()
                    ),
                });
            }
            for b in &self.adapters[..i] {
                if a.endpoint.clashes_with(&b.endpoint) {
                    return Err(ConfigError::Invalid {
                        at,
                        message: format!(
                            "<{}> listens on {} like <{}>; give each adapter its own -p port",
                            a.name,
                            a.endpoint.host_port(),
                            b.name
                        ),
                    });
                }
                if a.servant == b.servant {
                    return Err(ConfigError::Invalid {
                        at,
                        message: format!(
                            "<{}> has servant={} like <{}>; each adapter serves its own servant",
                            a.name, a.servant, b.name
                        ),
                    });
                }
            }
            if let Some(local) = &self.local {
                if a.endpoint.clashes_with(local) {
                    return Err(ConfigError::Invalid {
                        at,
                        message: format!(
                            "<{}> listens on {} like the admin endpoint local={local}; use another port",
                            a.name,
                            a.endpoint.host_port()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Location of `line` in the source file (or the embedded-default label).
    fn at(&self, line: Option<usize>) -> Location {
        let file = self
            .source
            .clone()
            .unwrap_or_else(|| PathBuf::from(EMBEDDED_LABEL));
        Location {
            file,
            line,
            column: None,
        }
    }

    fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(self.explicit.get(key).copied().flatten()).into(),
            message,
        }
    }
}

/// The per-user data dir used when no `datapath` is configured:
/// `$XDG_RUNTIME_DIR/tarsfork/` when that variable names a directory that is ours and
/// `0700` (a login session's private runtime dir), else `<system temp dir>/tarsfork-<uid>/`.
/// Either is made `0700` and verified before use (see `rundir`).
pub fn default_datapath() -> PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = nix::unistd::geteuid().as_raw();
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        let private = std::fs::symlink_metadata(&xdg)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o777 == 0o700);
        if xdg.is_absolute() && private {
            return xdg.join("tarsfork");
        }
    }
    std::env::temp_dir().join(format!("tarsfork-{uid}"))
}

fn unknown_block(parent: &str, block: &Block) -> UnknownKey {
    UnknownKey {
        block: parent.to_string(),
        key: format!("<{}>", block.name()),
        line: block.line(),
        hint: None,
    }
}

/// Applies the keys of one block to a target through the descriptor table, keeping
/// track of which keys the file set (for derived defaults and error lines).
struct Reader<'t> {
    tree: &'t ConfigTree,
    seen: Vec<(&'static str, usize)>,
}

impl Reader<'_> {
    fn apply_keys(
        &mut self,
        s: &mut Settings,
        block: &Block,
        scope: Scope,
    ) -> Result<(), ConfigError> {
        for entry in block.entries() {
            match find_descriptor(SETTINGS_KEYS, scope, entry.key()) {
                Some(d) => {
                    d.apply(s, entry.key(), entry.value(), self.tree.at(entry.line()))?;
                    self.seen.push((d.key, entry.line()));
                }
                None => s.unknown.push(UnknownKey {
                    block: format!("<{}>", block.name()),
                    key: entry.key().to_string(),
                    line: entry.line(),
                    hint: suggest_key(scope, entry.key()),
                }),
            }
        }
        Ok(())
    }

    fn adapter(&mut self, s: &mut Settings, block: &Block) -> Result<AdapterSettings, ConfigError> {
        let mut a = AdapterSettings {
            name: block.name().to_string(),
            // Placeholder until `endpoint=` is read; its absence is an error below.
            endpoint: Endpoint::new(Transport::Tcp, "", 0),
            protocol: Protocol::Tars,
            servant: String::new(),
            threads: 1,
            maxconns: 128,
            queuecap: 1024,
            queuetimeout: Duration::from_millis(10_000),
            allow: Vec::new(),
            line: Some(block.line()),
        };
        let mut has_endpoint = false;
        for entry in block.entries() {
            match find_descriptor(ADAPTER_KEYS, Scope::Adapter, entry.key()) {
                Some(d) => {
                    d.apply(
                        &mut a,
                        entry.key(),
                        entry.value(),
                        self.tree.at(entry.line()),
                    )?;
                    has_endpoint |= d.key == "endpoint" && !entry.value().is_empty();
                }
                None => s.unknown.push(UnknownKey {
                    block: format!("<{}>", block.name()),
                    key: entry.key().to_string(),
                    line: entry.line(),
                    hint: suggest_key(Scope::Adapter, entry.key()),
                }),
            }
        }
        if !has_endpoint {
            return Err(ConfigError::Missing {
                at: self.tree.at(block.line()).into(),
                what: format!("endpoint= in <{}>", block.name()),
                fix: format!("add e.g. endpoint={}", descriptor_example("endpoint")),
            });
        }
        if a.servant.is_empty() {
            // `X.Y.HttpObjAdapter` serves `X.Y.HttpObj`, as the platform names them.
            let base = a.name.strip_suffix("Adapter").unwrap_or(&a.name);
            a.servant = base.to_string();
        }
        Ok(a)
    }
}

/// A hint for an unknown key of `scope`: the block it belongs in when it is a key of
/// another block, or the known key it most likely misspells.
fn suggest_key(scope: Scope, key: &str) -> Option<String> {
    let keys = SETTINGS_KEYS
        .iter()
        .map(|d| (d.scope, d.key, d.aliases))
        .chain(ADAPTER_KEYS.iter().map(|d| (d.scope, d.key, d.aliases)));
    let mut best: Option<(usize, &str)> = None;
    for (s, k, aliases) in keys {
        if s != scope && (k == key || aliases.contains(&key)) {
            return Some(format!("{key} belongs in {}", s.block_name()));
        }
        if s == scope {
            let d = edit_distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase());
            if !matches!(best, Some((bd, _)) if bd <= d) {
                best = Some((d, k));
            }
        }
    }
    // Short keys are too easily "close" to something; allow more slack for long ones.
    let allowed = if key.len() >= 10 { 2 } else { 1 };
    best.filter(|&(d, _)| key.len() >= 4 && d <= allowed)
        .map(|(_, k)| format!("did you mean {k}?"))
}

/// Levenshtein distance (keys are short, so the quadratic table is fine; inputs are
/// capped at 64 characters so a hostile key costs nothing).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

fn find_descriptor<T>(
    table: &'static [KeyDescriptor<T>],
    scope: Scope,
    key: &str,
) -> Option<&'static KeyDescriptor<T>> {
    table
        .iter()
        .find(|d| d.scope == scope && (d.key == key || d.aliases.contains(&key)))
}

/// The example value of a key in the tables (for messages about required keys).
fn descriptor_example(key: &str) -> &'static str {
    SETTINGS_KEYS
        .iter()
        .map(|d| (d.key, d.example))
        .chain(ADAPTER_KEYS.iter().map(|d| (d.key, d.example)))
        .find(|&(k, _)| k == key)
        .map_or("…", |(_, e)| e)
}

// ---------------------------------------------------------------------------------
// The descriptor tables
// ---------------------------------------------------------------------------------

/// The block a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `<tars><application>`
    Application,
    /// `<tars><application><server>`
    Server,
    /// each `<…Adapter>` block inside `<server>`
    Adapter,
    /// `<tars><application><client>`
    Client,
}

impl Scope {
    /// The block as shown in the docs table (Markdown).
    pub fn label(self) -> &'static str {
        match self {
            Scope::Application => "application",
            Scope::Server => "server",
            Scope::Adapter => "server → `<…Adapter>`",
            Scope::Client => "client",
        }
    }

    /// The block as named in messages.
    pub fn block_name(self) -> &'static str {
        match self {
            Scope::Application => "<application>",
            Scope::Server => "<server>",
            Scope::Adapter => "an <…Adapter> block",
            Scope::Client => "<client>",
        }
    }
}

/// The unit of a bare number in a duration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (Tars keys).
    Millis,
    /// Seconds (swoole keys).
    Seconds,
}

/// How a key's default is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultDoc {
    /// A fixed value, written as it would be in the config (a unit test checks that
    /// writing it gives the same settings as leaving the key out).
    Value(&'static str),
    /// Computed from other keys; the text says how.
    Derived(&'static str),
    /// Not set unless given; the text says what that means.
    Unset(&'static str),
    /// The key must be present.
    Required,
}

/// How a key's value is parsed and where it is stored; the variant determines the
/// type/unit shown in the docs and the "expected …" of error messages.
pub enum Setter<T: 'static> {
    /// Free text.
    Text(fn(&mut T, String)),
    /// A file system path.
    Path(fn(&mut T, PathBuf)),
    /// A whole number in `min..=max`.
    Count {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
        /// Stores it.
        set: fn(&mut T, u64),
    },
    /// 0/1.
    Flag(fn(&mut T, bool)),
    /// A duration; a bare number is in `unit`.
    Duration {
        /// Unit of a bare number.
        unit: Unit,
        /// Stores it.
        set: fn(&mut T, Duration),
    },
    /// A size in bytes with optional K/M/G.
    Bytes(fn(&mut T, u64)),
    /// A log level.
    Level(fn(&mut T, LogLevel)),
    /// An endpoint string.
    Endpoint(fn(&mut T, Endpoint)),
    /// An object string.
    Object(fn(&mut T, ObjectRef)),
    /// `tars` / `not_tars`.
    Protocol(fn(&mut T, Protocol)),
    /// A list of IPs / IPv4 patterns.
    IpList(fn(&mut T, Vec<String>)),
}

impl<T> Setter<T> {
    /// The type and unit, as shown in the docs table.
    pub fn type_label(&self) -> String {
        match self {
            Setter::Text(_) => "text".into(),
            Setter::Path(_) => "path".into(),
            Setter::Count { min, max, .. } => {
                if *max == u64::MAX {
                    format!("whole number ≥ {min}")
                } else {
                    format!("whole number {min}…{max}")
                }
            }
            Setter::Flag(_) => "flag `0`/`1` (or `n`/`y`)".into(),
            Setter::Duration {
                unit: Unit::Millis, ..
            } => "duration; bare number = ms (`ms`/`s` suffix ok)".into(),
            Setter::Duration {
                unit: Unit::Seconds,
                ..
            } => "duration; bare number = s (`ms`/`s` suffix ok)".into(),
            Setter::Bytes(_) => "size; bytes or K/M/G (1024-based)".into(),
            Setter::Level(_) => "NONE, ERROR, WARN, INFO, DEBUG or TARS".into(),
            Setter::Endpoint(_) => "endpoint `tcp -h H -p P [-t MS]`".into(),
            Setter::Object(_) => "object `Name` or `Name@endpoint[:endpoint]`".into(),
            Setter::Protocol(_) => "`tars` or `not_tars`".into(),
            Setter::IpList(_) => "IPs or patterns like `10.0.*.*`, `;`/`,`-separated".into(),
        }
    }
}

/// One config key: where it lives, what it means, its default, how it is parsed.
pub struct KeyDescriptor<T: 'static> {
    /// The key as written in tarsnode's template.
    pub key: &'static str,
    /// Other spellings accepted (e.g. `loglevel` for `logLevel`).
    pub aliases: &'static [&'static str],
    /// Its block.
    pub scope: Scope,
    /// Its default.
    pub default: DefaultDoc,
    /// What it does (one line, for the README table).
    pub meaning: &'static str,
    /// A valid value, used in error messages (`e.g. worker_num=4`).
    pub example: &'static str,
    /// Parser and storage.
    pub set: Setter<T>,
}

impl<T> KeyDescriptor<T> {
    /// Parses `raw` (the value of `key` as written, located at `at`) and stores it in
    /// `target`, or says what is wrong.
    fn apply(&self, target: &mut T, key: &str, raw: &str, at: Location) -> Result<(), ConfigError> {
        let value = raw.trim();
        let bad = |expected: String| ConfigError::BadValue {
            at: at.clone().into(),
            key: key.to_string(),
            value: raw.to_string(),
            expected,
            example: self.example.to_string(),
        };
        match &self.set {
            Setter::Text(set) => {
                if !value.is_empty() {
                    set(target, value.to_string());
                }
            }
            Setter::Path(set) => {
                if !value.is_empty() {
                    set(target, PathBuf::from(value));
                }
            }
            Setter::Count { min, max, set } => {
                let n = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (*min..=*max).contains(n));
                match n {
                    Some(n) => set(target, n),
                    None if *max == u64::MAX => {
                        return Err(bad(format!("expected a whole number ≥ {min}")))
                    }
                    None => {
                        return Err(bad(format!("expected a whole number from {min} to {max}")))
                    }
                }
            }
            Setter::Flag(set) => match parse_flag(value) {
                Some(b) => set(target, b),
                None => return Err(bad("expected 0 or 1".into())),
            },
            Setter::Duration { unit, set } => match parse_duration(value, *unit) {
                Some(d) => set(target, d),
                None => {
                    let unit = match unit {
                        Unit::Millis => "milliseconds",
                        Unit::Seconds => "seconds",
                    };
                    return Err(bad(format!(
                        "expected a duration of at most a year: a whole number of {unit}, \
                         or a number with ms or s"
                    )));
                }
            },
            Setter::Bytes(set) => match parse_size(value) {
                Some(n) => set(target, n),
                None => {
                    return Err(bad(
                        "expected a size: a whole number of bytes, or with K, M or G".into(),
                    ))
                }
            },
            Setter::Level(set) => match LogLevel::parse(value) {
                Some(l) => set(target, l),
                None => {
                    return Err(bad(
                        "expected one of NONE, ERROR, WARN, INFO, DEBUG, TARS".into()
                    ))
                }
            },
            Setter::Endpoint(set) => {
                if !value.is_empty() {
                    let ep = Endpoint::parse(value).map_err(|e| bad(e.to_string()))?;
                    set(target, ep);
                }
            }
            Setter::Object(set) => {
                if !value.is_empty() {
                    let obj = ObjectRef::parse(value).map_err(|e| bad(e.to_string()))?;
                    set(target, obj);
                }
            }
            Setter::Protocol(set) => match value {
                "tars" => set(target, Protocol::Tars),
                "not_tars" => set(target, Protocol::NotTars),
                _ => return Err(bad("expected tars or not_tars".into())),
            },
            Setter::IpList(set) => {
                let list: Vec<String> = value
                    .split([';', ',', ' ', '\t'])
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(p) = list.iter().find(|p| !is_ip_pattern(p)) {
                    return Err(bad(format!(
                        "`{p}` is not an IP address or a pattern like 10.0.*.*"
                    )));
                }
                set(target, list);
            }
        }
        Ok(())
    }

    /// The type and unit, as shown in the docs table.
    pub fn type_label(&self) -> String {
        self.set.type_label()
    }
}

const fn key<T>(
    scope: Scope,
    key: &'static str,
    set: Setter<T>,
    default: DefaultDoc,
    example: &'static str,
    meaning: &'static str,
) -> KeyDescriptor<T> {
    KeyDescriptor {
        key,
        aliases: &[],
        scope,
        default,
        meaning,
        example,
        set,
    }
}

const MAX_PROC: u64 = MAX_PROCESSES;

/// Bound of `max_request` and `max_request_grace`, so that their sum (what a worker
/// computes) cannot overflow.
const MAX_REQUESTS: u64 = u32::MAX as u64;

/// Every key of `<application>`, `<server>` and `<client>`, in README order.
pub static SETTINGS_KEYS: &[KeyDescriptor<Settings>] = &[
    key(
        Scope::Application,
        "enableset",
        Setter::Flag(|s, v| s.enableset = v),
        DefaultDoc::Value("n"),
        "y",
        "set routing on (`y`/`n`)",
    ),
    key(
        Scope::Application,
        "setdivision",
        Setter::Text(|s, v| s.setdivision = (v != "NULL").then_some(v)),
        DefaultDoc::Unset("no set (`NULL`)"),
        "app.sz.1",
        "set name `app.area.group` when enableset=y",
    ),
    key(
        Scope::Server,
        "app",
        Setter::Text(|s, v| s.app = v),
        DefaultDoc::Required,
        "TestApp",
        "application name `<App>`",
    ),
    key(
        Scope::Server,
        "server",
        Setter::Text(|s, v| s.server = v),
        DefaultDoc::Required,
        "HelloServer",
        "server name `<Server>`; with `app` it names the process titles, pid file and logs",
    ),
    key(
        Scope::Server,
        "node",
        Setter::Object(|s, v| s.node = Some(v)),
        DefaultDoc::Unset("no heartbeat"),
        "tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000",
        "tarsnode's ServerObj, where keepAlive goes",
    ),
    key(
        Scope::Server,
        "nodename",
        Setter::Text(|s, v| s.nodename = Some(v)),
        DefaultDoc::Unset("none"),
        "127.0.0.1",
        "the node's name, reported in stats",
    ),
    key(
        Scope::Server,
        "localip",
        Setter::Text(|s, v| s.localip = Some(v)),
        DefaultDoc::Unset("none"),
        "127.0.0.1",
        "this machine's IP, reported in stats",
    ),
    key(
        Scope::Server,
        "local",
        Setter::Endpoint(|s, v| s.local = Some(v)),
        DefaultDoc::Unset("no admin endpoint"),
        "tcp -h 127.0.0.1 -p 38721 -t 10000",
        "admin endpoint (AdminObj) where tarsnode sends commands",
    ),
    key(
        Scope::Server,
        "basepath",
        Setter::Path(|s, v| s.basepath = Some(v)),
        DefaultDoc::Unset("none"),
        "/usr/local/app/tars/tarsnode/data/TestApp.HelloServer/bin/",
        "install dir of the executable",
    ),
    key(
        Scope::Server,
        "datapath",
        Setter::Path(|s, v| s.datapath = v),
        DefaultDoc::Derived("`$XDG_RUNTIME_DIR/tarsfork/` if that is a private dir of ours, else `<temp dir>/tarsfork-<uid>/`"),
        "/usr/local/app/tars/tarsnode/data/TestApp.HelloServer/data/",
        "data dir: pid file, the master's record and other run-time files; made `0700` if missing, refused unless owned by us and writable by nobody else",
    ),
    key(
        Scope::Server,
        "logpath",
        Setter::Path(|s, v| s.logpath = Some(v)),
        DefaultDoc::Unset("log to stderr"),
        "/usr/local/app/tars/app_log/",
        "log root; the log is `<logpath>/<App>/<Server>/<App>.<Server>.log`",
    ),
    key(
        Scope::Server,
        "logsize",
        Setter::Bytes(|s, v| s.logsize = v),
        DefaultDoc::Value("50M"),
        "15M",
        "size at which the log file is rotated to `.log.1`, `.log.2`…; shared by every process of the server",
    ),
    key(
        Scope::Server,
        "lognum",
        Setter::Count {
            min: 1,
            max: 10_000,
            set: |s, v| s.lognum = v as usize,
        },
        DefaultDoc::Value("10"),
        "5",
        "rotated log files kept (the oldest is removed)",
    ),
    KeyDescriptor {
        aliases: &["loglevel"],
        ..key(
            Scope::Server,
            "logLevel",
            Setter::Level(|s, v| s.loglevel = v),
            DefaultDoc::Value("INFO"),
            "DEBUG",
            "log level (`logLevel` or `loglevel`)",
        )
    },
    key(
        Scope::Server,
        "config",
        Setter::Object(|s, v| s.config = Some(v)),
        DefaultDoc::Unset("no config pull"),
        "tars.tarsconfig.ConfigObj",
        "tarsconfig object to pull config files from",
    ),
    key(
        Scope::Server,
        "notify",
        Setter::Object(|s, v| s.notify = Some(v)),
        DefaultDoc::Unset("no notifications"),
        "tars.tarsnotify.NotifyObj",
        "tarsnotify object",
    ),
    key(
        Scope::Server,
        "log",
        Setter::Object(|s, v| s.log = Some(v)),
        DefaultDoc::Unset("no remote log"),
        "tars.tarslog.LogObj",
        "tarslog object for remote logs",
    ),
    key(
        Scope::Server,
        "deactivating-timeout",
        Setter::Duration {
            unit: Unit::Millis,
            set: |s, v| s.deactivating_timeout = v,
        },
        DefaultDoc::Value("3000"),
        "5000",
        "how long `stop` waits for the master to exit before KILL",
    ),
    key(
        Scope::Server,
        "activating-timeout",
        Setter::Duration {
            unit: Unit::Millis,
            set: |s, v| s.activating_timeout = v,
        },
        DefaultDoc::Value("60000"),
        "30000",
        "how long a daemonizing `start` waits for the server to be ready",
    ),
    key(
        Scope::Server,
        "worker_num",
        Setter::Count {
            min: 1,
            max: MAX_PROC,
            set: |s, v| s.worker_num = v as usize,
        },
        DefaultDoc::Derived("largest `threads` of the adapters, at least 1"),
        "4",
        "event worker processes",
    ),
    key(
        Scope::Server,
        "task_worker_num",
        Setter::Count {
            min: 0,
            max: MAX_PROC,
            set: |s, v| s.task_worker_num = v as usize,
        },
        DefaultDoc::Value("1"),
        "2",
        "task worker processes (≥ 1 under tarsnode: task worker 0 sends the heartbeat)",
    ),
    key(
        Scope::Server,
        "daemonize",
        Setter::Flag(|s, v| s.daemonize = v),
        DefaultDoc::Value("0"),
        "1",
        "run in the background; `start` returns once the server is ready",
    ),
    key(
        Scope::Server,
        "max_request",
        Setter::Count {
            min: 0,
            max: MAX_REQUESTS,
            set: |s, v| s.max_request = v,
        },
        DefaultDoc::Value("0"),
        "100000",
        "requests after which a worker is replaced; 0 = never",
    ),
    key(
        Scope::Server,
        "max_request_grace",
        Setter::Count {
            min: 0,
            max: MAX_REQUESTS,
            set: |s, v| s.max_request_grace = v,
        },
        DefaultDoc::Derived("max_request / 2 (as swoole)"),
        "500",
        "each worker adds a random 0…grace to max_request, so workers do not recycle together",
    ),
    key(
        Scope::Server,
        "max_wait_time",
        Setter::Duration {
            unit: Unit::Seconds,
            set: |s, v| s.max_wait_time = v,
        },
        DefaultDoc::Value("3"),
        "10",
        "graceful stop/reload: time to finish in-flight requests before KILL",
    ),
    key(
        Scope::Server,
        "request_timeout",
        Setter::Duration {
            unit: Unit::Seconds,
            set: |s, v| s.request_timeout = v,
        },
        DefaultDoc::Value("60"),
        "30",
        "a worker whose current request runs longer is killed and replaced; 0 = off",
    ),
    key(
        Scope::Server,
        "worker_timeout",
        Setter::Duration {
            unit: Unit::Seconds,
            set: |s, v| s.worker_timeout = v,
        },
        DefaultDoc::Value("30"),
        "10",
        "a worker whose heartbeat is older is killed and replaced; 0 = off",
    ),
    key(
        Scope::Server,
        "pid_file",
        Setter::Path(|s, v| s.pid_file = v),
        DefaultDoc::Derived("`<datapath>/<App>.<Server>.pid`"),
        "/var/run/TestApp.HelloServer.pid",
        "the master's pid file, locked while it runs; relative = inside datapath",
    ),
    key(
        Scope::Server,
        "user",
        Setter::Text(|s, v| s.user = Some(v)),
        DefaultDoc::Unset("the user that starts it"),
        "nobody",
        "user (name or uid) every child process runs as, as nginx's `user`: the master binds, opens the pid file, logs and shared memory as root, then manager, workers and task workers drop to it; needs root",
    ),
    key(
        Scope::Server,
        "group",
        Setter::Text(|s, v| s.group = Some(v)),
        DefaultDoc::Unset("the primary group of `user`"),
        "nogroup",
        "group (name or gid) the children run as; their supplementary groups are dropped",
    ),
    key(
        Scope::Server,
        "backlog",
        Setter::Count {
            min: 1,
            max: 65_535,
            set: |s, v| s.backlog = v as u32,
        },
        DefaultDoc::Value("511"),
        "1024",
        "listen backlog (as nginx; the kernel caps it at net.core.somaxconn)",
    ),
    key(
        Scope::Server,
        "keepalive-interval",
        Setter::Duration {
            unit: Unit::Millis,
            set: |s, v| s.keepalive_interval = v,
        },
        DefaultDoc::Value("10000"),
        "1000",
        "time between keepAlive heartbeats to tarsnode",
    ),
    key(
        Scope::Client,
        "locator",
        Setter::Object(|s, v| s.client.locator = Some(v)),
        DefaultDoc::Unset("names are not resolved"),
        "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890",
        "registry that resolves object names to endpoints",
    ),
    key(
        Scope::Client,
        "stat",
        Setter::Object(|s, v| s.client.stat = Some(v)),
        DefaultDoc::Unset("no stat reports"),
        "tars.tarsstat.StatObj",
        "stat service (resolved via the locator unless it has `@tcp …`)",
    ),
    key(
        Scope::Client,
        "property",
        Setter::Object(|s, v| s.client.property = Some(v)),
        DefaultDoc::Unset("no property reports"),
        "tars.tarsproperty.PropertyObj",
        "property service (resolved via the locator unless it has `@tcp …`)",
    ),
    key(
        Scope::Client,
        "report-interval",
        Setter::Duration {
            unit: Unit::Millis,
            set: |s, v| s.client.report_interval = v,
        },
        DefaultDoc::Value("60000"),
        "10000",
        "time between stat and property reports",
    ),
    key(
        Scope::Client,
        "refresh-endpoint-interval",
        Setter::Duration {
            unit: Unit::Millis,
            set: |s, v| s.client.refresh_endpoint_interval = v,
        },
        DefaultDoc::Value("60000"),
        "30000",
        "time between re-resolutions of object names",
    ),
    key(
        Scope::Client,
        "sync-invoke-timeout",
        Setter::Duration {
            unit: Unit::Millis,
            set: |s, v| s.client.sync_invoke_timeout = v,
        },
        DefaultDoc::Value("3000"),
        "1000",
        "timeout of a synchronous outgoing call",
    ),
    key(
        Scope::Client,
        "async-invoke-timeout",
        Setter::Duration {
            unit: Unit::Millis,
            set: |s, v| s.client.async_invoke_timeout = v,
        },
        DefaultDoc::Value("5000"),
        "2000",
        "timeout of an asynchronous outgoing call",
    ),
    key(
        Scope::Client,
        "asyncthread",
        Setter::Count {
            min: 0,
            max: MAX_PROC,
            set: |s, v| s.client.asyncthread = v as usize,
        },
        DefaultDoc::Value("3"),
        "4",
        "TarsCpp async threads; read but unused (tarsfork has no threads)",
    ),
    key(
        Scope::Client,
        "modulename",
        Setter::Text(|s, v| s.client.modulename = v),
        DefaultDoc::Derived("`<App>.<Server>`"),
        "TestApp.HelloServer",
        "module name in client-side stats",
    ),
];

/// Every key of an `<…Adapter>` block inside `<server>`.
pub static ADAPTER_KEYS: &[KeyDescriptor<AdapterSettings>] = &[
    key(
        Scope::Adapter,
        "endpoint",
        Setter::Endpoint(|a, v| a.endpoint = v),
        DefaultDoc::Required,
        "tcp -h 127.0.0.1 -p 8080 -t 60000",
        "where to listen; `-t` = idle timeout of a connection in ms",
    ),
    key(
        Scope::Adapter,
        "protocol",
        Setter::Protocol(|a, v| a.protocol = v),
        DefaultDoc::Value("tars"),
        "not_tars",
        "`tars` = Tars RPC, `not_tars` = HTTP/1.1",
    ),
    key(
        Scope::Adapter,
        "servant",
        Setter::Text(|a, v| a.servant = v),
        DefaultDoc::Derived("block name without `Adapter`"),
        "TestApp.HelloServer.HelloObj",
        "full servant name `App.Server.Obj`",
    ),
    key(
        Scope::Adapter,
        "threads",
        Setter::Count {
            min: 0,
            max: MAX_PROC,
            set: |a, v| a.threads = v as usize,
        },
        DefaultDoc::Value("1"),
        "4",
        "TarsCpp handler threads; the largest is the default worker_num (as TarsPHP)",
    ),
    key(
        Scope::Adapter,
        "maxconns",
        Setter::Count {
            min: 1,
            max: 10_000_000,
            set: |a, v| a.maxconns = v as usize,
        },
        DefaultDoc::Value("128"),
        "200000",
        "most open connections on this adapter, all workers together (more are closed at accept)",
    ),
    key(
        Scope::Adapter,
        "queuecap",
        Setter::Count {
            min: 1,
            max: 10_000_000,
            set: |a, v| a.queuecap = v as usize,
        },
        DefaultDoc::Value("1024"),
        "10000",
        "TarsCpp request queue size; read for compatibility, unused (a worker accepts only what it serves)",
    ),
    key(
        Scope::Adapter,
        "queuetimeout",
        Setter::Duration {
            unit: Unit::Millis,
            set: |a, v| a.queuetimeout = v,
        },
        DefaultDoc::Value("10000"),
        "60000",
        "TarsCpp queue timeout; read for compatibility, unused (no request queue)",
    ),
    key(
        Scope::Adapter,
        "allow",
        Setter::IpList(|a, v| a.allow = v),
        DefaultDoc::Unset("everyone (bare `allow`)"),
        "127.0.0.1;10.0.*.*",
        "client IPs allowed to connect",
    ),
];

/// Renders the README settings table (Markdown) from the descriptor tables.
pub fn docs_table_markdown() -> String {
    let mut out =
        String::from("| block | key | type / unit | default | meaning |\n|---|---|---|---|---|\n");
    let rows = SETTINGS_KEYS
        .iter()
        .map(|d| {
            doc_row(
                d.scope,
                d.key,
                d.aliases,
                &d.type_label(),
                d.default,
                d.meaning,
            )
        })
        .chain(ADAPTER_KEYS.iter().map(|d| {
            doc_row(
                d.scope,
                d.key,
                d.aliases,
                &d.type_label(),
                d.default,
                d.meaning,
            )
        }));
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out
}

fn doc_row(
    scope: Scope,
    key: &str,
    aliases: &[&str],
    type_label: &str,
    default: DefaultDoc,
    meaning: &str,
) -> String {
    let mut key_cell = format!("`{key}`");
    for alias in aliases {
        key_cell.push_str(&format!(" / `{alias}`"));
    }
    let default = match default {
        DefaultDoc::Value(v) => format!("`{v}`"),
        DefaultDoc::Derived(text) | DefaultDoc::Unset(text) => text.to_string(),
        DefaultDoc::Required => "**required**".to_string(),
    };
    let cells = [scope.label(), &key_cell, type_label, &default, meaning];
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |", cells.join(" | "))
}

// ---------------------------------------------------------------------------------
// Value parsers
// ---------------------------------------------------------------------------------

fn parse_flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "y" | "yes" | "true" | "on" => Some(true),
        "0" | "n" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// A bare whole number in `unit`, or with an explicit `ms` / `s` suffix; at most
/// [`MAX_DURATION`].
fn parse_duration(text: &str, unit: Unit) -> Option<Duration> {
    let (digits, millis_per) = if let Some(d) = text.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = text.strip_suffix('s') {
        (d, 1000)
    } else {
        match unit {
            Unit::Millis => (text, 1),
            Unit::Seconds => (text, 1000),
        }
    };
    let digits = digits.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = digits.parse::<u64>().ok()?.checked_mul(millis_per)?;
    let d = Duration::from_millis(millis);
    (d <= MAX_DURATION).then_some(d)
}

/// Bytes, or a whole number with `K`, `M`, `G` (optionally followed by `B`), 1024-based.
fn parse_size(text: &str) -> Option<u64> {
    let upper = text.to_ascii_uppercase();
    let t = upper.strip_suffix('B').unwrap_or(&upper);
    let (digits, mult) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1u64 << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let digits = digits.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// An IP address, or an IPv4 pattern of four parts each a number or `*` (TarsCpp's
/// allow lists use such patterns).
fn is_ip_pattern(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| *p == "*" || p.parse::<u8>().is_ok())
}

fn ip_matches(pattern: &str, ip: IpAddr) -> bool {
    if let Ok(p) = pattern.parse::<IpAddr>() {
        return p == ip;
    }
    let IpAddr::V4(v4) = ip else {
        return false;
    };
    let octets = v4.octets();
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .zip(octets)
            .all(|(p, o)| *p == "*" || p.parse::<u8>() == Ok(o))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/example.config.conf")
    }

    /// A minimal valid config: `server_lines` go right after `datapath=` (their first
    /// line is line 7), then `adapters` (default: one HTTP adapter), then `client`.
    fn conf(server_lines: &str, adapters: Option<&str>, client: &str) -> String {
        let adapters = adapters.unwrap_or(
            "<A.S.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000\n</A.S.HttpObjAdapter>\n",
        );
        format!(
            "<tars>\n<application>\n<server>\napp=A\nserver=S\ndatapath=/d/\n{server_lines}{adapters}</server>\n<client>\n{client}</client>\n</application>\n</tars>\n"
        )
    }

    fn settings(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_tree(&ConfigTree::parse(text, "t.conf")?)
    }

    fn ok(text: &str) -> Settings {
        match settings(text) {
            Ok(s) => s,
            Err(e) => panic!("unexpected error: {e}\n{text}"),
        }
    }

    fn err(text: &str) -> String {
        match settings(text) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn example_file_every_value() {
        let s = Settings::from_file(example_path()).unwrap();
        assert_eq!(s.source.as_deref(), Some(example_path().as_path()));
        assert!(!s.enableset);
        assert_eq!(s.setdivision, None);
        assert_eq!(
            (s.app.as_str(), s.server.as_str()),
            ("TestApp", "HelloServer")
        );
        assert_eq!(s.full_name(), "TestApp.HelloServer");
        let node = s.node.as_ref().unwrap();
        assert_eq!(node.name, "tars.tarsnode.ServerObj");
        assert_eq!(
            node.endpoints,
            [Endpoint::parse("tcp -h 127.0.0.1 -p 19386 -t 60000").unwrap()]
        );
        assert_eq!(s.nodename.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.localip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            s.local,
            Some(Endpoint::parse("tcp -h 127.0.0.1 -p 38721 -t 10000").unwrap())
        );
        let data = "/usr/local/app/tars/tarsnode/data/TestApp.HelloServer/";
        assert_eq!(s.basepath, Some(PathBuf::from(format!("{data}bin/"))));
        assert_eq!(s.datapath, PathBuf::from(format!("{data}data/")));
        assert_eq!(
            s.logpath,
            Some(PathBuf::from("/usr/local/app/tars/app_log/"))
        );
        assert_eq!(
            s.log_file(),
            Some(PathBuf::from(
                "/usr/local/app/tars/app_log/TestApp/HelloServer/TestApp.HelloServer.log"
            ))
        );
        assert_eq!(Some(s.daemon_log_file()), s.log_file());
        assert_eq!(s.logsize, 15 * 1024 * 1024);
        assert_eq!(s.lognum, 10);
        assert_eq!(s.loglevel, LogLevel::Debug);
        assert_eq!(s.config.as_ref().unwrap().name, "tars.tarsconfig.ConfigObj");
        assert!(s.config.as_ref().unwrap().endpoints.is_empty());
        assert_eq!(s.notify.as_ref().unwrap().name, "tars.tarsnotify.NotifyObj");
        assert_eq!(s.log.as_ref().unwrap().name, "tars.tarslog.LogObj");
        assert_eq!(s.deactivating_timeout, ms(3000));
        assert_eq!(s.activating_timeout, ms(60_000));
        assert_eq!(s.task_worker_num, 1);
        assert!(s.daemonize);
        assert_eq!(s.max_request, 100_000);
        // Derived defaults.
        assert_eq!(s.max_request_grace, 50_000);
        assert_eq!(s.worker_num, 2);
        assert_eq!(
            s.pid_file,
            PathBuf::from(format!("{data}data/TestApp.HelloServer.pid"))
        );
        // Keys the example leaves out.
        assert_eq!(s.backlog, 511);
        assert_eq!(s.keepalive_interval, ms(10_000));
        assert_eq!(s.max_wait_time, Duration::from_secs(3));
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.worker_timeout, Duration::from_secs(30));

        assert_eq!(s.adapters.len(), 2);
        let http = &s.adapters[0];
        assert_eq!(http.name, "TestApp.HelloServer.HttpObjAdapter");
        assert_eq!(
            http.endpoint,
            Endpoint::parse("tcp -h 127.0.0.1 -p 8080 -t 60000").unwrap()
        );
        assert_eq!(http.idle_timeout(), ms(60_000));
        assert_eq!(http.protocol, Protocol::NotTars);
        assert_eq!(http.servant, "TestApp.HelloServer.HttpObj");
        assert_eq!(http.threads, 2);
        assert_eq!(http.maxconns, 200_000);
        assert_eq!(http.queuecap, 10_000);
        assert_eq!(http.queuetimeout, ms(60_000));
        assert!(http.allow.is_empty());
        assert_eq!(http.line, Some(26));
        let tars = &s.adapters[1];
        assert_eq!(tars.name, "TestApp.HelloServer.HelloObjAdapter");
        assert_eq!(tars.endpoint.port, 10_000);
        assert_eq!(tars.protocol, Protocol::Tars);
        assert_eq!(tars.servant, "TestApp.HelloServer.HelloObj");
        assert_eq!(tars.line, Some(36));
        assert_eq!(s.adapter("TestApp.HelloServer.HelloObjAdapter"), Some(tars));

        let c = &s.client;
        let locator = c.locator.as_ref().unwrap();
        assert_eq!(locator.name, "tars.tarsregistry.QueryObj");
        assert_eq!(locator.endpoints[0].port, 17890);
        assert_eq!(c.sync_invoke_timeout, ms(3000));
        assert_eq!(c.async_invoke_timeout, ms(5000));
        assert_eq!(c.refresh_endpoint_interval, ms(60_000));
        assert_eq!(c.stat.as_ref().unwrap().name, "tars.tarsstat.StatObj");
        assert_eq!(
            c.property.as_ref().unwrap().name,
            "tars.tarsproperty.PropertyObj"
        );
        assert_eq!(c.report_interval, ms(60_000));
        assert_eq!(c.asyncthread, 3);
        assert_eq!(c.modulename, "TestApp.HelloServer");

        assert_eq!(s.unknown_keys(), &[]);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn worker_num_defaults_to_largest_threads() {
        let two = |a: u32, b: u32| {
            format!(
                "<A.S.AObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9001\nthreads={a}\n</A.S.AObjAdapter>\n\
                 <A.S.BObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9002\nthreads={b}\n</A.S.BObjAdapter>\n"
            )
        };
        assert_eq!(ok(&conf("", Some(&two(3, 5)), "")).worker_num, 5);
        assert_eq!(ok(&conf("", Some(&two(7, 2)), "")).worker_num, 7);
        // threads=0 (TarsCpp's own default) still gives one worker.
        assert_eq!(ok(&conf("", Some(&two(0, 0)), "")).worker_num, 1);
        // No threads= at all: the adapter default of 1.
        assert_eq!(ok(&conf("", None, "")).worker_num, 1);
        // An explicit worker_num wins.
        assert_eq!(
            ok(&conf("worker_num=3\n", Some(&two(7, 2)), "")).worker_num,
            3
        );
    }

    #[test]
    fn other_defaults() {
        let s = ok(&conf("", None, ""));
        assert_eq!(s.task_worker_num, 1);
        assert!(!s.daemonize);
        assert_eq!((s.max_request, s.max_request_grace), (0, 0));
        assert_eq!(s.pid_file, PathBuf::from("/d/A.S.pid"));
        assert_eq!(s.loglevel, LogLevel::Info);
        assert_eq!(s.logpath, None);
        assert_eq!(s.log_file(), None);
        // A daemon without logpath writes into its data dir.
        assert_eq!(s.daemon_log_file(), PathBuf::from("/d/A.S.log"));
        assert_eq!(s.logsize, 50 << 20);
        assert_eq!(s.client.modulename, "A.S");
        let a = &s.adapters[0];
        assert_eq!((a.threads, a.maxconns, a.queuecap), (1, 128, 1024));
        assert_eq!(a.queuetimeout, ms(10_000));
        assert_eq!(a.servant, "A.S.HttpObj");

        let s = ok(&conf("max_request=1001\n", None, ""));
        assert_eq!(s.max_request_grace, 500);
        let s = ok(&conf("max_request=1000\nmax_request_grace=0\n", None, ""));
        assert_eq!(s.max_request_grace, 0);

        let s = ok(&conf("pid_file=run/x.pid\n", None, ""));
        assert_eq!(s.pid_file, PathBuf::from("/d/run/x.pid"));
        let s = ok(&conf("pid_file=/var/run/x.pid\n", None, ""));
        assert_eq!(s.pid_file, PathBuf::from("/var/run/x.pid"));

        // Without datapath, the per-user temp dir.
        let text = conf("", None, "").replace("datapath=/d/\n", "");
        let s = ok(&text);
        assert_eq!(s.datapath, default_datapath());
        assert!(s.datapath_is_default());
        let uid = nix::unistd::getuid().to_string();
        let in_temp = s.datapath.starts_with(std::env::temp_dir())
            && s.datapath.ends_with(format!("tarsfork-{uid}"));
        let in_xdg = std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|x| s.datapath == PathBuf::from(x).join("tarsfork"));
        assert!(in_temp || in_xdg, "{}", s.datapath.display());
        assert!(!ok(&conf("", None, "")).datapath_is_default());
    }

    #[test]
    fn durations_units_and_suffixes() {
        let s = ok(&conf(
            "max_wait_time=2\nrequest_timeout=1500ms\nworker_timeout=4s\n\
             deactivating-timeout=2\nkeepalive-interval=3s\n",
            None,
            "report-interval=250ms\nsync-invoke-timeout=7\n",
        ));
        assert_eq!(s.max_wait_time, Duration::from_secs(2));
        assert_eq!(s.request_timeout, ms(1500));
        assert_eq!(s.worker_timeout, Duration::from_secs(4));
        assert_eq!(s.deactivating_timeout, ms(2));
        assert_eq!(s.keepalive_interval, Duration::from_secs(3));
        assert_eq!(s.client.report_interval, ms(250));
        assert_eq!(s.client.sync_invoke_timeout, ms(7));
        let s = ok(&conf("request_timeout=0\n", None, ""));
        assert_eq!(s.request_timeout, Duration::ZERO);

        for bad in [
            "-1",
            "1.5",
            "s",
            "ms",
            "10m",
            "",
            "99999999999999999999",
            "31536001",
        ] {
            let e = err(&conf(&format!("max_wait_time={bad}\n"), None, ""));
            assert_eq!(
                e,
                format!(
                    "t.conf:7: max_wait_time={bad}: expected a duration of at most a year: \
                     a whole number of seconds, or a number with ms or s, e.g. max_wait_time=10"
                )
            );
        }
    }

    #[test]
    fn sizes_levels_flags_aliases() {
        for (text, bytes) in [
            ("1024", 1024),
            ("10K", 10 << 10),
            ("15M", 15 << 20),
            ("2g", 2 << 30),
            ("3MB", 3 << 20),
        ] {
            assert_eq!(
                ok(&conf(&format!("logsize={text}\n"), None, "")).logsize,
                bytes,
                "{text}"
            );
        }
        let e = err(&conf("logsize=15X\n", None, ""));
        assert_eq!(
            e,
            "t.conf:7: logsize=15X: expected a size: a whole number of bytes, or with K, M or G, e.g. logsize=15M"
        );
        assert_eq!(
            ok(&conf("loglevel=error\n", None, "")).loglevel,
            LogLevel::Error
        );
        assert_eq!(
            ok(&conf("logLevel=TARS\n", None, "")).loglevel,
            LogLevel::Tars
        );
        // Both spellings: the later line wins.
        assert_eq!(
            ok(&conf("logLevel=WARN\nloglevel=NONE\n", None, "")).loglevel,
            LogLevel::None
        );
        assert_eq!(
            err(&conf("\nlogLevel=LOUD\n", None, "")),
            "t.conf:8: logLevel=LOUD: expected one of NONE, ERROR, WARN, INFO, DEBUG, TARS, e.g. logLevel=DEBUG"
        );
        assert!(ok(&conf("daemonize=1\n", None, "")).daemonize);
        assert!(!ok(&conf("daemonize=0\n", None, "")).daemonize);
        assert_eq!(
            err(&conf("daemonize=maybe\n", None, "")),
            "t.conf:7: daemonize=maybe: expected 0 or 1, e.g. daemonize=1"
        );
        let text =
            conf("", None, "").replace("<server>", "enableset=y\nsetdivision=app.sz.1\n<server>");
        let s = ok(&text);
        assert!(s.enableset);
        assert_eq!(s.setdivision.as_deref(), Some("app.sz.1"));
    }

    #[test]
    fn bad_numbers_name_file_line_key_and_fix() {
        assert_eq!(
            err(&conf("\n\nworker_num=abc\n", None, "")),
            "t.conf:9: worker_num=abc: expected a whole number from 1 to 1024, e.g. worker_num=4"
        );
        assert_eq!(
            err(&conf("worker_num=0\n", None, "")),
            "t.conf:7: worker_num=0: expected a whole number from 1 to 1024, e.g. worker_num=4"
        );
        assert_eq!(
            err(&conf("max_request=-5\n", None, "")),
            "t.conf:7: max_request=-5: expected a whole number from 0 to 4294967295, e.g. max_request=100000"
        );
        assert_eq!(
            err(&conf("backlog=70000\n", None, "")),
            "t.conf:7: backlog=70000: expected a whole number from 1 to 65535, e.g. backlog=1024"
        );
        let adapter = "<A.S.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000\nthreads=lots\n</A.S.HttpObjAdapter>\n";
        assert_eq!(
            err(&conf("", Some(adapter), "")),
            "t.conf:9: threads=lots: expected a whole number from 0 to 1024, e.g. threads=4"
        );
        assert_eq!(
            err(&conf("", None, "\nasyncthread=x\n")),
            "t.conf:13: asyncthread=x: expected a whole number from 0 to 1024, e.g. asyncthread=4"
        );
    }

    #[test]
    fn bad_endpoints_and_protocols() {
        let adapter = |body: &str| format!("<A.S.HttpObjAdapter>\n{body}</A.S.HttpObjAdapter>\n");
        assert_eq!(
            err(&conf("", Some(&adapter("endpoint=tcp -h 127.0.0.1\n")), "")),
            "t.conf:8: endpoint=tcp -h 127.0.0.1: missing -p PORT, e.g. endpoint=tcp -h 127.0.0.1 -p 8080 -t 60000"
        );
        assert_eq!(
            err(&conf("", Some(&adapter("\nendpoint=tcp -h 127.0.0.1 -p http\n")), "")),
            "t.conf:9: endpoint=tcp -h 127.0.0.1 -p http: port `http` is not a number from 0 to 65535, \
             e.g. endpoint=tcp -h 127.0.0.1 -p 8080 -t 60000"
        );
        assert_eq!(
            err(&conf("", Some(&adapter("endpoint=http -h a -p 1\n")), "")),
            "t.conf:8: endpoint=http -h a -p 1: unknown transport `http`; an endpoint starts with tcp, udp or ssl, \
             e.g. endpoint=tcp -h 127.0.0.1 -p 8080 -t 60000"
        );
        assert_eq!(
            err(&conf(
                "",
                Some(&adapter("endpoint=tcp -h a -p 1\nprotocol=http\n")),
                ""
            )),
            "t.conf:9: protocol=http: expected tars or not_tars, e.g. protocol=not_tars"
        );
        assert_eq!(
            err(&conf("", Some(&adapter("protocol=tars\n")), "")),
            "t.conf:7: endpoint= in <A.S.HttpObjAdapter> is missing; add e.g. endpoint=tcp -h 127.0.0.1 -p 8080 -t 60000"
        );
        assert_eq!(
            err(&conf("local=tcp -p 1\n", None, "")),
            "t.conf:7: local=tcp -p 1: missing -h HOST, e.g. local=tcp -h 127.0.0.1 -p 38721 -t 10000"
        );
        assert_eq!(
            err(&conf("", None, "locator=tars.tarsregistry.QueryObj@tcp -h a -p x\n")),
            "t.conf:12: locator=tars.tarsregistry.QueryObj@tcp -h a -p x: port `x` is not a number from 0 to 65535, \
             e.g. locator=tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"
        );
        assert_eq!(
            err(&conf("", Some(&adapter("endpoint=tcp -h a -p 1\nallow=10.0.0.1;nope\n")), "")),
            "t.conf:9: allow=10.0.0.1;nope: `nope` is not an IP address or a pattern like 10.0.*.*, \
             e.g. allow=127.0.0.1;10.0.*.*"
        );
    }

    #[test]
    fn missing_blocks_and_keys() {
        let e = settings("<tars>\n</tars>\n").unwrap_err();
        assert!(matches!(e, ConfigError::Missing { .. }));
        assert!(
            e.to_string()
                .starts_with("t.conf: the <tars><application> block is missing"),
            "{e}"
        );
        assert_eq!(
            err("<tars>\n<application>\n</application>\n</tars>\n"),
            "t.conf:2: <server> in <tars><application> is missing; add a <server> block with app=, server= and an adapter block"
        );
        assert_eq!(
            err(&conf("", None, "").replace("app=A\n", "")),
            "t.conf:3: app= in <server> is missing; add e.g. app=TestApp"
        );
        assert_eq!(
            err(&conf("", None, "").replace("server=S\n", "server=\n")),
            "t.conf:3: server= in <server> is missing; add e.g. server=HelloServer"
        );
        let e = err(&conf("", Some(""), ""));
        assert!(
            e.starts_with(
                "t.conf: an adapter block in <server> is missing; add e.g. <A.S.HttpObjAdapter>"
            ),
            "{e}"
        );
    }

    #[test]
    fn validation_errors_name_the_line() {
        let two = "<A.S.AObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000\n</A.S.AObjAdapter>\n\
                   <A.S.BObjAdapter>\nendpoint=tcp -h 0.0.0.0 -p 9000\n</A.S.BObjAdapter>\n";
        assert_eq!(
            err(&conf("", Some(two), "")),
            "t.conf:10: <A.S.BObjAdapter> listens on 0.0.0.0:9000 like <A.S.AObjAdapter>; give each adapter its own -p port"
        );
        let same_servant = "<A.S.AObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000\nservant=A.S.X\n</A.S.AObjAdapter>\n\
                            <A.S.BObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9001\nservant=A.S.X\n</A.S.BObjAdapter>\n";
        assert_eq!(
            err(&conf("", Some(same_servant), "")),
            "t.conf:11: <A.S.BObjAdapter> has servant=A.S.X like <A.S.AObjAdapter>; each adapter serves its own servant"
        );
        assert_eq!(
            err(&conf("local=tcp -h 127.0.0.1 -p 9000\n", None, "")),
            "t.conf:8: <A.S.HttpObjAdapter> listens on 127.0.0.1:9000 like the admin endpoint \
             local=tcp -h 127.0.0.1 -p 9000; use another port"
        );
        assert_eq!(
            err(&conf("node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 1\n\ntask_worker_num=0\n", None, "")),
            "t.conf:9: task_worker_num=0 but node= is set: the keepAlive heartbeat to tarsnode runs in \
             task worker 0; set task_worker_num=1 or more"
        );
        assert_eq!(
            err(&conf("", None, "").replace("app=A\n", "app=My App\n")),
            "t.conf:4: app=\"My App\": expected a non-empty name without spaces or '/', e.g. app=TestApp"
        );
        let slow = "<A.S.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000 -t 99999999999999\n</A.S.HttpObjAdapter>\n";
        let e = err(&conf("", Some(slow), ""));
        assert!(e.starts_with("t.conf:7: <A.S.HttpObjAdapter> endpoint -t 99999999999999 ms is longer than a year"), "{e}");

        let many: String = (0..=MAX_ADAPTERS)
            .map(|i| {
                format!(
                    "<A{i}Adapter>\nendpoint=tcp -h 127.0.0.1 -p {}\n</A{i}Adapter>\n",
                    10_000 + i
                )
            })
            .collect();
        let e = err(&conf("", Some(&many), ""));
        assert!(
            e.starts_with(&format!(
                "t.conf:{}: more than 1024 adapter blocks",
                7 + 3 * MAX_ADAPTERS
            )),
            "{e}"
        );

        // Changing fields in code and validating again names the key's line too.
        let mut s = ok(&conf("\nworker_num=2\n", None, ""));
        s.worker_num = 0;
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "t.conf:8: worker_num=0: expected a whole number from 1 to 1024, e.g. worker_num=4"
        );
    }

    #[test]
    fn unknown_keys_and_blocks_are_listed_with_lines() {
        let adapter = "<A.S.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000\norder=allow,deny\n</A.S.HttpObjAdapter>\n<extra>\n</extra>\n";
        let s = ok(&conf("closecout=0\n", Some(adapter), "weird=1\n"));
        let listed: Vec<(String, String, usize)> = s
            .unknown_keys()
            .iter()
            .map(|u| (u.block.clone(), u.key.clone(), u.line))
            .collect();
        assert_eq!(
            listed,
            [
                ("<server>".to_string(), "closecout".to_string(), 7),
                ("<client>".to_string(), "weird".to_string(), 16),
                ("<A.S.HttpObjAdapter>".to_string(), "order".to_string(), 10),
                ("<server>".to_string(), "<extra>".to_string(), 12),
            ]
        );
        assert_eq!(
            s.unknown_keys()[0].to_string(),
            "line 7: closecout in <server> is not a tarsfork setting (ignored)"
        );
    }

    #[test]
    fn unknown_keys_get_hints() {
        let adapter = "<A.S.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000\nmaxconn=5\n</A.S.HttpObjAdapter>\n";
        let s = ok(&conf(
            "worker_nums=3\nlocator=tars.tarsregistry.QueryObj\ncloseout=1\nmax_requests=9\nthreads=2\n",
            Some(adapter),
            "",
        ));
        let hints: Vec<(&str, Option<&str>)> = s
            .unknown_keys()
            .iter()
            .map(|u| (u.key.as_str(), u.hint.as_deref()))
            .collect();
        assert_eq!(
            hints,
            [
                ("worker_nums", Some("did you mean worker_num?")),
                ("locator", Some("locator belongs in <client>")),
                ("closeout", None),
                ("max_requests", Some("did you mean max_request?")),
                ("threads", Some("threads belongs in an <…Adapter> block")),
                ("maxconn", Some("did you mean maxconns?")),
            ]
        );
        assert_eq!(
            s.unknown_keys()[0].to_string(),
            "line 7: worker_nums in <server> is not a tarsfork setting (ignored); did you mean worker_num?"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn set_overrides_recompute_derived_defaults() {
        let mut s = ok(&conf("", None, ""));
        s.set("max_request", "100").unwrap();
        assert_eq!((s.max_request, s.max_request_grace), (100, 50));
        s.set("app", "B").unwrap();
        assert_eq!(s.pid_file, PathBuf::from("/d/B.S.pid"));
        assert_eq!(s.client.modulename, "B.S");
        s.set("loglevel", "warn").unwrap();
        assert_eq!(s.loglevel, LogLevel::Warn);
        s.set("report-interval", "2s").unwrap();
        assert_eq!(s.client.report_interval, Duration::from_secs(2));
        s.set("worker_num", "7").unwrap();
        assert_eq!(s.worker_num, 7);
        // An explicit pid_file is kept when other keys change.
        s.set("pid_file", "/run/p.pid").unwrap();
        s.set("server", "T").unwrap();
        assert_eq!(s.pid_file, PathBuf::from("/run/p.pid"));

        assert_eq!(
            s.set("worker_num", "x").unwrap_err().to_string(),
            "command line: worker_num=x: expected a whole number from 1 to 1024, e.g. worker_num=4"
        );
        assert_eq!(s.worker_num, 7);
        assert_eq!(
            s.set("worker_nums", "1").unwrap_err().to_string(),
            "command line: `worker_nums` is not a setting of <application>, <server> or <client>; did you mean worker_num?"
        );
        let e = s.set("local", "tcp -h 127.0.0.1 -p 9000").unwrap_err();
        assert!(e.to_string().contains("like the admin endpoint"), "{e}");
        assert_eq!(s.local, None);
    }

    #[test]
    fn allow_lists() {
        let adapter = "<A.S.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p 9000\nallow=127.0.0.1; 10.1.*.*,::1\n</A.S.HttpObjAdapter>\n";
        let s = ok(&conf("", Some(adapter), ""));
        let a = &s.adapters[0];
        assert_eq!(a.allow, ["127.0.0.1", "10.1.*.*", "::1"]);
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(a.allows(ip("127.0.0.1")));
        assert!(a.allows(ip("10.1.200.3")));
        assert!(a.allows(ip("::1")));
        assert!(!a.allows(ip("10.2.0.1")));
        assert!(!a.allows(ip("127.0.0.2")));
        let open = ok(&conf("", None, ""));
        assert!(open.adapters[0].allows(ip("192.0.2.1")));
    }

    #[test]
    fn embedded_default_is_the_demo() {
        let s = Settings::embedded_default();
        assert_eq!(s.source, None);
        assert_eq!(s.full_name(), "TarsFork.Demo");
        assert_eq!((s.worker_num, s.task_worker_num), (2, 1));
        assert!(!s.daemonize);
        assert_eq!(s.adapters.len(), 1);
        let a = &s.adapters[0];
        assert_eq!(a.name, "TarsFork.Demo.HttpObjAdapter");
        assert_eq!(a.protocol, Protocol::NotTars);
        assert_eq!(a.endpoint.to_string(), "tcp -h 127.0.0.1 -p 8080 -t 60000");
        assert_eq!(s.datapath, default_datapath());
        assert_eq!(s.pid_file, default_datapath().join("TarsFork.Demo.pid"));
        assert_eq!(s.logpath, None);
        assert_eq!(s.client.modulename, "TarsFork.Demo");
        assert!(s.validate().is_ok());
        assert!(s.unknown_keys().is_empty());

        // Validation of built-in settings names the embedded label.
        let mut bad = s.clone();
        bad.adapters.clear();
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("<embedded default>: an adapter block in <server> is missing"),
            "{e}"
        );
    }

    /// Field names of a struct, read from its pretty Debug output (top level only).
    fn debug_fields(debug: &str) -> Vec<String> {
        debug
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
            .filter_map(|l| l.trim().split_once(':').map(|(f, _)| f.to_string()))
            .collect()
    }

    #[test]
    fn docs_table_mentions_every_field_and_key() {
        let table = docs_table_markdown();
        let s = Settings::embedded_default();
        let mut fields = debug_fields(&format!("{s:#?}"));
        fields.extend(debug_fields(&format!("{:#?}", s.client)));
        fields.extend(debug_fields(&format!("{:#?}", s.adapters[0])));
        assert!(fields.len() > 40, "{fields:?}");
        // Fields that are not config keys: bookkeeping and the containers.
        let not_keys = [
            "source", "unknown", "explicit", "adapters", "client", "name", "line",
        ];
        let keys: Vec<String> = SETTINGS_KEYS
            .iter()
            .map(|d| d.key)
            .chain(ADAPTER_KEYS.iter().map(|d| d.key))
            .map(|k| k.to_ascii_lowercase().replace('-', "_"))
            .collect();
        for field in fields.iter().filter(|f| !not_keys.contains(&f.as_str())) {
            assert!(
                keys.contains(field),
                "field `{field}` has no key descriptor"
            );
        }
        for d in SETTINGS_KEYS {
            let row = format!("| {} | `{}`", d.scope.label(), d.key);
            assert!(table.contains(&row), "table lacks {row}");
            assert!(table.contains(d.meaning.split('|').next().unwrap_or("")));
        }
        for d in ADAPTER_KEYS {
            assert!(table.contains(&format!("| {} | `{}`", d.scope.label(), d.key)));
        }
        assert!(table.contains("`logLevel` / `loglevel`"));
        assert_eq!(
            table.lines().count(),
            2 + SETTINGS_KEYS.len() + ADAPTER_KEYS.len()
        );
        // Every row has the five cells (no stray '|' in a cell).
        for line in table.lines().filter(|l| !l.starts_with("|---")) {
            assert_eq!(line.matches(" | ").count(), 4, "{line}");
        }
    }

    /// Puts `key=value` into the config: a server/application/client key in its block,
    /// an adapter key into the single adapter (replacing a line for the same key).
    fn conf_with(scope: Scope, key: &str, value: &str) -> String {
        let line = format!("{key}={value}\n");
        match scope {
            Scope::Application => {
                conf("", None, "").replace("<server>", &format!("{line}<server>"))
            }
            Scope::Server => conf(&line, None, ""),
            Scope::Client => conf("", None, &line),
            Scope::Adapter => {
                let mut body = String::from("endpoint=tcp -h 127.0.0.1 -p 9000\n");
                body = body
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{key}=")))
                    .map(|l| format!("{l}\n"))
                    .collect();
                conf(
                    "",
                    Some(&format!(
                        "<A.S.HttpObjAdapter>\n{body}{line}</A.S.HttpObjAdapter>\n"
                    )),
                    "",
                )
            }
        }
    }

    fn without_lines(mut s: Settings) -> Settings {
        s.explicit.clear();
        for a in &mut s.adapters {
            a.line = None;
        }
        s
    }

    #[test]
    fn every_descriptor_example_parses_and_changes_the_settings() {
        let base = without_lines(ok(&conf("", None, "")));
        let scoped = SETTINGS_KEYS
            .iter()
            .map(|d| (d.scope, d.key, d.example))
            .chain(ADAPTER_KEYS.iter().map(|d| (d.scope, d.key, d.example)));
        for (scope, key, example) in scoped {
            let text = conf_with(scope, key, example);
            let s = without_lines(ok(&text));
            assert!(s.unknown_keys().is_empty(), "{key}: {:?}", s.unknown_keys());
            assert_ne!(s, base, "{key}={example} changed nothing");
        }
    }

    #[test]
    fn documented_default_values_are_the_real_defaults() {
        let base = without_lines(ok(&conf("", None, "")));
        let scoped = SETTINGS_KEYS
            .iter()
            .map(|d| (d.scope, d.key, d.default))
            .chain(ADAPTER_KEYS.iter().map(|d| (d.scope, d.key, d.default)));
        let mut checked = 0;
        for (scope, key, default) in scoped {
            if let DefaultDoc::Value(v) = default {
                let s = without_lines(ok(&conf_with(scope, key, v)));
                assert_eq!(
                    s, base,
                    "documented default {key}={v} differs from leaving it out"
                );
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked}");
    }

    #[test]
    fn mutated_example_never_panics() {
        // Deterministic value mutations of the example: Ok or a typed error, never a panic.
        let base = std::fs::read_to_string(example_path()).unwrap();
        let lines: Vec<&str> = base.lines().collect();
        let junk = [
            "",
            "-1",
            "0",
            "99999999999999999999999",
            "1s",
            "abc",
            "tcp -h",
            "@",
            "\\",
            "==",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let mut errors = 0;
        for _ in 0..1500 {
            let mut text = String::new();
            let (target, value) = (next() % lines.len(), junk[next() % junk.len()]);
            for (i, line) in lines.iter().enumerate() {
                match line.split_once('=') {
                    Some((k, _)) if i == target => text.push_str(&format!("{k}={value}\n")),
                    _ => text.push_str(&format!("{line}\n")),
                }
            }
            if settings(&text).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 100, "{errors}");
    }

    #[test]
    fn empty_values_mean_unset() {
        let s = ok(&conf("node=\nlocal=\nlogpath=\nconfig=\n", None, "stat=\n"));
        assert_eq!(
            (s.node, s.local, s.logpath, s.config),
            (None, None, None, None)
        );
        assert_eq!(s.client.stat, None);
    }
}
