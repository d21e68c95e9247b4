//! Test support: run the real `tarsfork` binary in a temp dir on free ports, talk HTTP to
//! it, read its status, and clean up every process it started, by pid.
#![allow(dead_code)]

pub mod fake_tars;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tarsfork");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
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

/// Options of a generated tarsnode-style config.
#[derive(Clone)]
pub struct Opts {
    pub workers: usize,
    pub tasks: usize,
    pub daemonize: bool,
    pub idle_ms: u64,
    /// Extra `key=value` lines for `<server>`.
    pub extra: Vec<String>,
    /// Extra adapter-block lines for the HTTP adapter.
    pub adapter_extra: Vec<String>,
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
            datapath: true,
        }
    }
}

/// One server under test: its temp dir, config, port, and the processes to clean up.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    pub foreground: Option<Child>,
    /// Every pid ever seen in this server's tree, killed on drop if still ours.
    seen: std::cell::RefCell<Vec<(i32, u64)>>,
    /// Environment changes for every command run (`None` removes the variable).
    pub env: Vec<(&'static str, Option<String>)>,
}

pub fn proc_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn alive(pid: i32) -> bool {
    // A zombie has exited: it counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next().map(|st| st != "Z"))
            .unwrap_or(false),
        Err(_) => false,
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we started; failure (already gone) is fine.
    unsafe {
        libc::kill(pid, sig);
    }
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
            foreground: None,
            seen: Default::default(),
            env: Vec::new(),
        };
        s.write_config(&opts);
        s
    }

    pub fn write_config(&self, o: &Opts) {
        let d = self.dir.path();
        let mut server_extra = String::new();
        for l in &o.extra {
            server_extra.push_str(&format!("      {l}\n"));
        }
        let mut adapter_extra = String::new();
        for l in &o.adapter_extra {
            adapter_extra.push_str(&format!("        {l}\n"));
        }
        let text = format!(
            "<tars>\n  <application>\n    <server>\n      app=TestApp\n      server=HelloServer\n\
             \x20     basepath={d}/bin/\n{datapath}      logpath={d}/log/\n\
             \x20     logLevel=DEBUG\n      deactivating-timeout=5000\n      task_worker_num={tasks}\n\
             \x20     daemonize={daemon}\n      worker_num={workers}\n{server_extra}\
             \x20     <TestApp.HelloServer.HttpObjAdapter>\n        allow\n\
             \x20       endpoint=tcp -h 127.0.0.1 -p {port} -t {idle}\n        maxconns=200000\n\
             \x20       protocol=not_tars\n        servant=TestApp.HelloServer.HttpObj\n        threads=2\n{adapter_extra}\
             \x20     </TestApp.HelloServer.HttpObjAdapter>\n    </server>\n  </application>\n</tars>\n",
            d = d.display(),
            datapath = if o.datapath {
                format!("      datapath={}/data/\n", d.display())
            } else {
                String::new()
            },
            tasks = o.tasks,
            daemon = u8::from(o.daemonize),
            workers = o.workers,
            port = self.port,
            idle = o.idle_ms,
        );
        std::fs::write(&self.config, text).expect("write config");
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

    /// Runs `tarsfork --config=… <args>` to completion (bounded).
    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tarsfork");
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!("tarsfork {args:?} did not finish in 30 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().expect("output");
        self.remember_tree();
        out
    }

    /// `start` in daemon mode; asserts success and returns the master pid.
    pub fn start(&self) -> i32 {
        let out = self.cmd(&["start"]);
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

    /// Starts in the foreground (daemonize=0 config), waiting for the ready line.
    pub fn start_foreground(&mut self) -> i32 {
        let mut child = Command::new(BIN)
            .arg(format!("--config={}", self.config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tarsfork");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id() as i32;
        self.foreground = Some(child);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                if master_pid_in(&line).is_some() {
                    self.remember_tree();
                    return pid;
                }
            }
        }
        panic!("foreground server did not report ready in 20 s");
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
        if let Some(mut c) = self.foreground.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn master_pid_in(text: &str) -> Option<i32> {
    let i = text.find("started, master pid ")?;
    text[i + 20..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Like [`http_get`], but None instead of a panic when the connection fails.
pub fn try_http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    parse_response(&buf).map(|(st, body, _)| (st, body))
}

/// One HTTP/1.1 request on a fresh connection, bounded to 10 s.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    parse_response(&buf)
        .map(|(st, body, _)| (st, body))
        .unwrap_or((0, String::new()))
}

/// Parses one response at the start of `buf`: (status, body, bytes used, closes).
pub fn parse_response_full(buf: &[u8]) -> Option<(u16, String, usize, bool)> {
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
    Some((
        status,
        String::from_utf8_lossy(&buf[end..end + len]).into_owned(),
        end + len,
        closes,
    ))
}

pub fn parse_response(buf: &[u8]) -> Option<(u16, String, usize)> {
    parse_response_full(buf).map(|(a, b, c, _)| (a, b, c))
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
/// complete 200 answer to a request sent is a failure.
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
                    let mut conn: Option<TcpStream> = None;
                    let mut buf = Vec::with_capacity(4096);
                    let mut chunk = [0u8; 4096];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if conn.is_none() {
                            match TcpStream::connect(("127.0.0.1", port)) {
                                Ok(s) => {
                                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                                    let _ = s.set_nodelay(true);
                                    conn = Some(s);
                                    r.reconnects += 1;
                                }
                                Err(_) => {
                                    r.failed += 1;
                                    std::thread::sleep(Duration::from_millis(5));
                                    continue;
                                }
                            }
                        }
                        let Some(s) = conn.as_mut() else { continue };
                        if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").is_err() {
                            r.failed += 1;
                            conn = None;
                            continue;
                        }
                        buf.clear();
                        let answer = loop {
                            if let Some(a) = parse_response_full(&buf) {
                                break Some(a);
                            }
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => break None,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        match answer {
                            Some((200, body, _, closes)) if body == "hello" => {
                                r.ok += 1;
                                if closes {
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
