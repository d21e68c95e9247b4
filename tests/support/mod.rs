//! Test support, one copy for every test file: run the real `tarsfork` binary in a temp
//! dir on free ports (config writer with adapters, an admin endpoint and a `<client>`
//! block), talk HTTP, Tars and AdminF to it, read its status, run other programs with a
//! bound, and end every process a test started, by pid.
//!
//! Reads tell a timeout from an end of stream: [`Conn::read`] says [`Outcome::Closed`]
//! only for a real FIN, so a test that expects a close fails against a server that holds
//! the connection open.
#![allow(dead_code)]

pub mod chaos;
pub mod fake_tars;

#[path = "../../tars/tests/platform_support/mod.rs"]
#[allow(dead_code, clippy::all)]
pub mod platform_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use tarsfork_tars::framework::tars::AdminFProxy;
use tarsfork_tars::packet::ResponsePacket;
use tarsfork_tars::proxy::Proxy;

pub const BIN: &str = env!("CARGO_BIN_EXE_tarsfork");

/// The servant name of the demo's Tars adapter.
pub const HELLO_SERVANT: &str = "TestApp.HelloServer.HelloObj";

/// How long a read waits before it reports [`Outcome::TimedOut`].
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// 127.0.0.1:`port`.
pub fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Polls `f` every 10 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// A process's start time (field 22 of /proc/PID/stat): with the pid it names one process.
pub fn proc_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` runs (a zombie has exited: it counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next().map(|st| st != "Z"))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Waits up to `limit` until every one of `pids` has exited; how long that took. Panics
/// naming those still alive.
pub fn wait_gone(pids: &[i32], limit: Duration) -> Duration {
    let t = Instant::now();
    wait_for(limit, || {
        pids.iter().all(|p| !alive(*p)).then(|| t.elapsed())
    })
    .unwrap_or_else(|| {
        let left: Vec<&i32> = pids.iter().filter(|p| alive(**p)).collect();
        panic!("still running after {limit:?}: {left:?} of {pids:?}")
    })
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we started; failure (already gone) is fine.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A child process that is killed (by its pid) and reaped when this is dropped.
pub struct Spawned {
    child: Option<Child>,
}

impl Spawned {
    /// Spawns `cmd`; panics with the program's name when it cannot start.
    pub fn new(cmd: &mut Command) -> Spawned {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        Spawned { child: Some(child) }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is still ours")
    }

    /// Waits up to `limit` for the exit; None: still running.
    pub fn wait_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child();
        wait_for(limit, || child.try_wait().ok().flatten())
    }

    /// Waits up to `limit` for the exit and collects what it wrote to piped stdout and
    /// stderr (read while it runs, so a full pipe cannot stall it). Kills it and panics
    /// when `limit` passes.
    pub fn output_within(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().expect("the child is still ours");
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let pid = child.id();
        let status = wait_for(limit, || child.try_wait().ok().flatten());
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pid {pid} ran longer than {limit:?}; killed");
        };
        Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` to completion with piped stdout and stderr, bounded by `limit`.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    Spawned::new(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .output_within(limit)
}

/// The master pid in a ready line (`… started, master pid N`).
pub fn master_pid_in(text: &str) -> Option<i32> {
    let i = text.find("started, master pid ")?;
    text[i + 20..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A server running in the foreground (`daemonize=0` or no config): the launched
/// process is the master.
pub struct Foreground {
    pub process: Spawned,
    pub master: i32,
    lines: Receiver<String>,
}

impl Foreground {
    /// Starts `tarsfork <args>` with `env` and waits (at most 20 s) for its ready line.
    pub fn start(args: &[String], env: &[(&str, &Path)]) -> Foreground {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut process = Spawned::new(&mut cmd);
        let stdout = process.child().stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
                if master_pid_in(&line).is_some() {
                    let master = process.pid();
                    return Foreground {
                        process,
                        master,
                        lines,
                    };
                }
            }
        }
        panic!("tarsfork {args:?} did not report ready in 20 s");
    }

    /// Sends TERM and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        kill(self.master, libc::SIGTERM);
        self.process.wait_within(limit)
    }
}

// ---------------------------------------------------------------------------------------
// A server under test

/// Options of a generated tarsnode-style config.
#[derive(Clone)]
pub struct Opts {
    pub workers: usize,
    pub tasks: usize,
    pub daemonize: bool,
    /// Idle timeout of the HTTP adapter (`-t` of its endpoint).
    pub idle_ms: u64,
    /// Extra `key=value` lines for `<server>`.
    pub extra: Vec<String>,
    /// Extra adapter-block lines for the HTTP adapter.
    pub adapter_extra: Vec<String>,
    /// A Tars adapter serving the demo's `HelloObj` on this port.
    pub tars_port: Option<u16>,
    /// Idle timeout of the Tars adapter.
    pub tars_idle_ms: u64,
    /// The admin endpoint (`local=`) on this port.
    pub admin_port: Option<u16>,
    /// Lines of a `<client>` block (none when empty).
    pub client: Vec<String>,
    /// Whether the config sets `datapath` (else the per-user default is used).
    pub datapath: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            workers: 2,
            tasks: 1,
            daemonize: true,
            idle_ms: 60_000,
            extra: Vec::new(),
            adapter_extra: Vec::new(),
            tars_port: None,
            tars_idle_ms: 60_000,
            admin_port: None,
            client: Vec::new(),
            datapath: true,
        }
    }
}

impl Opts {
    /// Adds the Tars adapter of `HelloObj` on a free port.
    pub fn with_tars(mut self) -> Self {
        self.tars_port = Some(free_port());
        self
    }

    /// Adds the admin endpoint on a free port.
    pub fn with_admin(mut self) -> Self {
        self.admin_port = Some(free_port());
        self
    }
}

/// One server under test: its temp dir, config, ports, and the processes to clean up.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The HTTP adapter's port.
    pub port: u16,
    pub opts: Opts,
    pub foreground: Option<Foreground>,
    /// Every pid ever seen in this server's tree, killed on drop if still ours.
    seen: std::cell::RefCell<Vec<(i32, u64)>>,
    /// Environment changes for every command run (`None` removes the variable).
    pub env: Vec<(&'static str, Option<String>)>,
}

impl Server {
    pub fn new(opts: Opts) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("TestApp.HelloServer.config.conf");
        let s = Server {
            dir,
            config,
            port,
            opts,
            foreground: None,
            seen: Default::default(),
            env: Vec::new(),
        };
        std::fs::write(&s.config, s.config_text()).expect("write config");
        s
    }

    /// The config this server runs with.
    pub fn config_text(&self) -> String {
        let o = &self.opts;
        let d = self.dir.path().display();
        let mut server = String::new();
        for l in &o.extra {
            server.push_str(&format!("      {l}\n"));
        }
        if let Some(p) = o.admin_port {
            server.push_str(&format!("      local=tcp -h 127.0.0.1 -p {p} -t 10000\n"));
        }
        let mut http_extra = String::new();
        for l in &o.adapter_extra {
            http_extra.push_str(&format!("        {l}\n"));
        }
        let tars = match o.tars_port {
            Some(p) => format!(
                "      <TestApp.HelloServer.HelloObjAdapter>\n\
                 \x20       endpoint=tcp -h 127.0.0.1 -p {p} -t {idle}\n        protocol=tars\n\
                 \x20       servant={HELLO_SERVANT}\n        threads=2\n\
                 \x20     </TestApp.HelloServer.HelloObjAdapter>\n",
                idle = o.tars_idle_ms
            ),
            None => String::new(),
        };
        let client = if o.client.is_empty() {
            String::new()
        } else {
            let lines: String = o.client.iter().map(|l| format!("      {l}\n")).collect();
            format!("    <client>\n{lines}    </client>\n")
        };
        format!(
            "<tars>\n  <application>\n    <server>\n      app=TestApp\n      server=HelloServer\n\
             \x20     basepath={d}/bin/\n{datapath}      logpath={d}/log/\n\
             \x20     logLevel=DEBUG\n      deactivating-timeout=5000\n      task_worker_num={tasks}\n\
             \x20     daemonize={daemon}\n      worker_num={workers}\n{server}\
             \x20     <TestApp.HelloServer.HttpObjAdapter>\n        allow\n\
             \x20       endpoint=tcp -h 127.0.0.1 -p {port} -t {idle}\n        maxconns=200000\n\
             \x20       protocol=not_tars\n        servant=TestApp.HelloServer.HttpObj\n        threads=2\n{http_extra}\
             \x20     </TestApp.HelloServer.HttpObjAdapter>\n{tars}    </server>\n{client}  </application>\n</tars>\n",
            datapath = if o.datapath {
                format!("      datapath={d}/data/\n")
            } else {
                String::new()
            },
            tasks = o.tasks,
            daemon = u8::from(o.daemonize),
            workers = o.workers,
            port = self.port,
            idle = o.idle_ms,
        )
    }

    /// The Tars adapter's port (the server was made with [`Opts::with_tars`]).
    pub fn tars_port(&self) -> u16 {
        self.opts.tars_port.expect("a server with a Tars adapter")
    }

    /// An AdminF client of this server's admin endpoint ([`Opts::with_admin`]).
    pub fn admin(&self) -> AdminFProxy {
        admin(
            self.opts
                .admin_port
                .expect("a server with an admin endpoint"),
        )
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir
            .path()
            .join("log/TestApp/HelloServer/TestApp.HelloServer.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("data/TestApp.HelloServer.pid")
    }

    /// `tarsfork --config=…` with this server's environment changes.
    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg(format!("--config={}", self.config.display()));
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Runs `tarsfork --config=… <args>` to completion (bounded to 30 s).
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_env(args, &[])
    }

    /// [`Server::cmd`] with extra environment variables.
    pub fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run_within(&mut cmd, Duration::from_secs(30));
        self.remember_tree();
        out
    }

    /// `start` in daemon mode; asserts success and returns the master pid.
    pub fn start(&self) -> i32 {
        self.start_env(&[])
    }

    /// [`Server::start`] with `env` in the server's environment.
    pub fn start_env(&self, env: &[(&str, &str)]) -> i32 {
        let out = self.cmd_env(&["start"], env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "start failed: {}\nstdout: {stdout}\nstderr: {}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let pid = master_pid_in(&stdout).unwrap_or_else(|| panic!("no master pid in {stdout:?}"));
        self.remember_tree();
        pid
    }

    /// `stop`; asserts that it succeeded.
    pub fn stop(&self) {
        let out = self.cmd(&["stop"]);
        assert!(
            out.status.success(),
            "stop failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts in the foreground (a `daemonize: false` server), waiting for the ready line.
    pub fn start_foreground(&mut self) -> i32 {
        let fg = Foreground::start(&[format!("--config={}", self.config.display())], &[]);
        let pid = fg.master;
        self.foreground = Some(fg);
        self.remember_tree();
        pid
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.cmd(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).expect("status json")
    }

    /// (pid, role, id, state) of every process row.
    pub fn procs(&self) -> Vec<(i32, String, u64, String)> {
        let st = self.status();
        st["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .map(|p| {
                (
                    p["pid"].as_i64().unwrap_or(0) as i32,
                    p["role"].as_str().unwrap_or("").to_string(),
                    p["id"].as_u64().unwrap_or(0),
                    p["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Pids of every running process of the tree.
    pub fn tree(&self) -> Vec<i32> {
        self.procs()
            .iter()
            .map(|p| p.0)
            .filter(|p| *p > 0)
            .collect()
    }

    pub fn pids_of(&self, role: &str) -> Vec<i32> {
        self.procs()
            .into_iter()
            .filter(|p| p.1 == role && p.0 > 0)
            .map(|p| p.0)
            .collect()
    }

    /// Waits until `role` has `n` processes, all idle or busy.
    pub fn wait_role_up(&self, role: &str, n: usize, limit: Duration) -> Vec<i32> {
        wait_for(limit, || {
            let ps: Vec<_> = self.procs().into_iter().filter(|p| p.1 == role).collect();
            let up: Vec<i32> = ps
                .iter()
                .filter(|p| p.3 == "idle" || p.3 == "busy")
                .map(|p| p.0)
                .collect();
            (up.len() == n && ps.len() == n).then_some(up)
        })
        .unwrap_or_else(|| {
            panic!(
                "{role} x{n} not up in {limit:?}: {:?}\nlog:\n{}",
                self.procs(),
                self.log()
            )
        })
    }

    /// Records the current tree so drop can kill it.
    pub fn remember_tree(&self) {
        let Ok(out) = self
            .command()
            .args(["status", "--json"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return;
        };
        let mut seen = self.seen.borrow_mut();
        if let Some(m) = v["master_pid"].as_i64() {
            if let Some(st) = proc_start(m as i32) {
                seen.push((m as i32, st));
            }
        }
        for p in v["processes"].as_array().into_iter().flatten() {
            let pid = p["pid"].as_i64().unwrap_or(0) as i32;
            if pid > 0 {
                if let Some(st) = proc_start(pid) {
                    seen.push((pid, st));
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.remember_tree();
        for (pid, st) in self.seen.borrow().iter() {
            if proc_start(*pid) == Some(*st) {
                kill(*pid, libc::SIGKILL);
            }
        }
        // The foreground master (if any) is killed and reaped by its `Spawned`.
        self.foreground.take();
    }
}

// ---------------------------------------------------------------------------------------
// Clients

/// An AdminF client of 127.0.0.1:`port` with a 5 s call timeout.
pub fn admin(port: u16) -> AdminFProxy {
    let mut p = Proxy::new(local(port), "AdminObj");
    p.set_timeout(Duration::from_secs(5));
    AdminFProxy::new(p)
}

/// What one read from a connection gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many bytes.
    Data(usize),
    /// The peer closed its side: the read returned 0 (a FIN).
    Closed,
    /// The peer reset the connection (ECONNRESET): a close with unread data does that.
    Reset,
    /// Nothing came within [`READ_TIMEOUT`]: the connection is still open.
    TimedOut,
}

/// One HTTP response: status, body, and whether it said `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub closes: bool,
}

/// A client connection that keeps what it read but did not parse yet.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to 127.0.0.1:`port`, reads bounded by [`READ_TIMEOUT`].
    pub fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(local(port)).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`; panics when the connection refuses them.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Writes `bytes` if the connection takes them (a refused one may not).
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// One read, appended to what is kept; says what it gave.
    pub fn read(&mut self) -> Outcome {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            return match self.stream.read(&mut chunk) {
                Ok(0) => Outcome::Closed,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    Outcome::Data(n)
                }
                Err(e) => match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        Outcome::TimedOut
                    }
                    std::io::ErrorKind::ConnectionReset => Outcome::Reset,
                    _ => panic!("read failed: {e}"),
                },
            };
        }
    }

    /// Bytes read but not taken by [`Conn::take`].
    pub fn unparsed(&self) -> &[u8] {
        &self.buf
    }

    /// Reads until the stream ends; how it ended (never `Data`), with the bytes that came
    /// before the end (including any kept from earlier reads).
    pub fn until_end(&mut self) -> (Vec<u8>, Outcome) {
        loop {
            match self.read() {
                Outcome::Data(_) => continue,
                end => return (std::mem::take(&mut self.buf), end),
            }
        }
    }

    /// How long until the peer closes the connection, sending nothing more; panics
    /// when it sends data, resets or holds it open past [`READ_TIMEOUT`].
    pub fn time_to_close(&mut self) -> Duration {
        let t = Instant::now();
        assert_eq!(
            self.until_end(),
            (vec![], Outcome::Closed),
            "closed by the peer"
        );
        t.elapsed()
    }

    /// Takes `n` messages that `parse` finds at the start of the bytes read (it returns
    /// a message and the bytes it used), reading as needed. When the stream ends first,
    /// returns those that came and how it ended; `Ok` means all `n` came.
    pub fn take<T>(
        &mut self,
        n: usize,
        parse: impl Fn(&[u8]) -> Option<(T, usize)>,
    ) -> Result<Vec<T>, (Vec<T>, Outcome)> {
        let mut out = Vec::new();
        loop {
            while out.len() < n {
                let Some((item, used)) = parse(&self.buf) else {
                    break;
                };
                out.push(item);
                self.buf.drain(..used);
            }
            if out.len() >= n {
                return Ok(out);
            }
            match self.read() {
                Outcome::Data(_) => {}
                end => return Err((out, end)),
            }
        }
    }

    /// `n` HTTP responses, as [`Conn::take`] gives them.
    pub fn replies(&mut self, n: usize) -> Result<Vec<Reply>, (Vec<Reply>, Outcome)> {
        self.take(n, parse_response)
    }

    /// `n` HTTP responses; panics (saying how the stream ended) when fewer came.
    pub fn expect_replies(&mut self, n: usize) -> Vec<Reply> {
        self.replies(n).unwrap_or_else(|(got, end)| {
            panic!("{n} responses expected; got {got:?}, then {end:?}")
        })
    }

    /// `n` Tars response frames; panics (saying how the stream ended) when fewer came.
    pub fn expect_frames(&mut self, n: usize) -> Vec<ResponsePacket> {
        self.take(n, parse_frame)
            .unwrap_or_else(|(got, end)| panic!("{n} frames expected; got {got:?}, then {end:?}"))
    }
}

/// Parses one Tars response frame at the start of `buf`: the packet and the bytes used.
pub fn parse_frame(buf: &[u8]) -> Option<(ResponsePacket, usize)> {
    let head: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(head) as usize;
    let body = buf.get(4..len)?;
    Some((ResponsePacket::decode(body).expect("a ResponsePacket"), len))
}

/// Like [`http_get`], but None instead of a panic when the connection fails.
pub fn try_http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(local(port)).ok()?;
    s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    parse_response(&buf).map(|(r, _)| (r.status, r.body))
}

/// One HTTP/1.1 request on a fresh connection that the server must close after its
/// answer (a timeout panics); (0, "") when the answer does not parse.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(local(port)).expect("connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    parse_response(&buf)
        .map(|(r, _)| (r.status, r.body))
        .unwrap_or((0, String::new()))
}

/// Parses one response at the start of `buf`: the reply and the bytes it used.
pub fn parse_response(buf: &[u8]) -> Option<(Reply, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0usize;
    let mut closes = false;
    for line in head.lines() {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if lower.starts_with("connection:") && lower.contains("close") {
            closes = true;
        }
    }
    if buf.len() < end + len {
        return None;
    }
    let body = String::from_utf8_lossy(&buf[end..end + len]).into_owned();
    Some((
        Reply {
            status,
            body,
            closes,
        },
        end + len,
    ))
}

/// Counts of a keep-alive load run.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadResult {
    pub ok: u64,
    pub failed: u64,
    pub reconnects: u64,
}

/// `conns` threads, each sending `GET /` back to back on a keep-alive connection until
/// `stop` is set; a `Connection: close` answer makes it reconnect. Anything other than a
/// complete 200 answer to a request sent (a close, a reset, a timeout) is a failure.
pub fn keepalive_load(
    port: u16,
    conns: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<LoadResult> {
    std::thread::spawn(move || {
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut r = LoadResult::default();
                    let mut conn: Option<Conn> = None;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if conn.is_none() {
                            match TcpStream::connect(local(port)) {
                                Ok(s) => {
                                    let _ = s.set_read_timeout(Some(READ_TIMEOUT));
                                    let _ = s.set_nodelay(true);
                                    conn = Some(Conn {
                                        stream: s,
                                        buf: Vec::new(),
                                    });
                                    r.reconnects += 1;
                                }
                                Err(_) => {
                                    r.failed += 1;
                                    std::thread::sleep(Duration::from_millis(5));
                                    continue;
                                }
                            }
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        if !c.try_send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n") {
                            r.failed += 1;
                            conn = None;
                            continue;
                        }
                        match c.replies(1).map(|mut v| v.remove(0)) {
                            Ok(reply) if reply.status == 200 && reply.body == "hello" => {
                                r.ok += 1;
                                if reply.closes {
                                    conn = None;
                                }
                            }
                            _ => {
                                r.failed += 1;
                                conn = None;
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        let mut total = LoadResult::default();
        for h in handles {
            let r = h.join().unwrap_or_default();
            total.ok += r.ok;
            total.failed += r.failed;
            total.reconnects += r.reconnects;
        }
        total
    })
}

/// The command line `ps` shows for a pid.
pub fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ")
        .trim_end()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// The Tars.js fake platform

/// The fake platform (tests/interop/fake_platform.js) with its records in a temp dir
/// that is removed after node was killed.
pub struct Platform {
    // Field order: node is killed before its records' folder is removed.
    fake: platform_support::FakePlatform,
    _dir: tempfile::TempDir,
}

impl Platform {
    pub fn start(options: &platform_support::Options) -> Platform {
        let dir = tempfile::tempdir().expect("temp dir");
        let fake = platform_support::FakePlatform::start(dir.path(), options)
            .unwrap_or_else(|e| panic!("fake platform: {e}"));
        Platform { fake, _dir: dir }
    }
}

impl std::ops::Deref for Platform {
    type Target = platform_support::FakePlatform;
    fn deref(&self) -> &Self::Target {
        &self.fake
    }
}

impl std::ops::DerefMut for Platform {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.fake
    }
}

/// Socket inodes among the open descriptors of `pid`.
pub fn socket_fds(pid: i32) -> std::collections::BTreeSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    dir.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}

/// Whether this test process runs as root (the threat-model tests switch to another
/// user, which needs it; CI runs as root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of `nobody`, the other local user of the threat-model tests.
pub const NOBODY: u32 = 65534;

/// A python3 that the user nobody can run (a pyenv shim under /root is out of its reach).
fn python_for_nobody() -> String {
    let mut candidates = vec![
        "/usr/bin/python3".to_string(),
        "/usr/local/bin/python3".to_string(),
    ];
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v python3"])
        .output()
    {
        candidates.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    candidates
        .into_iter()
        .find(|p| {
            use std::os::unix::process::CommandExt;
            !p.is_empty()
                && Command::new(p)
                    .args(["-c", "pass"])
                    .uid(NOBODY)
                    .gid(NOBODY)
                    .stdin(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        })
        .expect("a python3 the user nobody can run (apt-get install python3)")
}

/// `python3 -c <script> <args>` as the user nobody (uid and gid 65534, no other groups):
/// the hostile local user. Needs root.
pub fn as_nobody(script: &str, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    assert!(
        is_root(),
        "the threat-model tests act as another local user (setuid 65534) and need root; CI runs as root"
    );
    let mut c = Command::new(python_for_nobody());
    c.arg("-c")
        .arg(script)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir("/")
        .stdin(Stdio::null());
    c
}

/// Runs `script` as nobody to completion (bounded to 30 s), asserting it succeeded;
/// returns its stdout.
pub fn run_as_nobody(script: &str, args: &[&str]) -> String {
    let mut child = as_nobody(script, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 as nobody");
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the attacker script did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("attacker output");
    assert!(
        out.status.success(),
        "attacker script failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process killed (and reaped) when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes `path` world-traversable (mode 0755), so the user nobody can reach below it.
pub fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The `Uid:`, `Gid:` and `Groups:` lines of /proc/<pid>/status.
pub fn ids_of(pid: i32) -> (String, String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (line("Uid:"), line("Gid:"), line("Groups:"))
}
