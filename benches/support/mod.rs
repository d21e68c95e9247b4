//! Bench support: start the real binary on a free port, time HTTP answers, find tools.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tarsfork");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

/// Writes a tarsnode-style config for App `Bench`, server `Http`, HTTP on `port`.
pub fn write_config(
    dir: &Path,
    port: u16,
    workers: usize,
    tasks: usize,
    daemonize: bool,
) -> PathBuf {
    let d = dir.display();
    let text = format!(
        "<tars>\n<application>\n<server>\napp=Bench\nserver=Http\ndatapath={d}/data/\nlogpath={d}/log/\n\
         logLevel=INFO\nworker_num={workers}\ntask_worker_num={tasks}\ndaemonize={}\n\
         <Bench.Http.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p {port} -t 60000\nprotocol=not_tars\n\
         servant=Bench.Http.HttpObj\nthreads={workers}\nmaxconns=100000\n</Bench.Http.HttpObjAdapter>\n</server>\n</application>\n</tars>\n",
        u8::from(daemonize)
    );
    let path = dir.join("bench.conf");
    std::fs::write(&path, text).expect("write bench config");
    path
}

/// One GET on a new connection; Some(status) if a whole answer came back.
pub fn get_status(port: u16, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()
}

/// A foreground server process, killed with its tree on drop.
pub struct Fg {
    pub child: Child,
    pub config: PathBuf,
}

impl Fg {
    pub fn start(config: &Path) -> Fg {
        let child = Command::new(BIN)
            .arg(format!("--config={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tarsfork");
        Fg {
            child,
            config: config.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Pids of a role from `status --json`.
    pub fn pids(&self, role: &str) -> Vec<i32> {
        let out = Command::new(BIN)
            .arg(format!("--config={}", self.config.display()))
            .args(["status", "--json"])
            .output();
        let Ok(out) = out else { return Vec::new() };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Vec::new();
        };
        v["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["role"] == role && p["state"] != "backoff" && p["state"] != "draining")
            .filter_map(|p| p["pid"].as_i64().map(|x| x as i32))
            .collect()
    }

    pub fn stop_and_wait(&mut self) -> Duration {
        let t = Instant::now();
        kill(self.pid(), libc::SIGTERM);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        t.elapsed()
    }
}

impl Drop for Fg {
    fn drop(&mut self) {
        for role in ["worker", "task", "manager"] {
            for p in self.pids(role) {
                kill(p, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid this bench started; an error (gone already) is harmless.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits until `port` answers 200, polling every 200 µs; returns how long it took.
pub fn wait_answer(port: u16, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if get_status(port, Duration::from_millis(500)) == Some(200) {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// Finds a tool, installing its Debian package if we may. None: say how to get it.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let find = || {
        ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        eprintln!("bench: installing {package} with apt-get");
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let found = find();
    if found.is_none() {
        eprintln!("bench: {name} not found; install it with `apt-get install {package}`");
    }
    found
}

/// The Tars.js peers' folder (`tests/interop`) with its npm packages installed: on a
/// fresh clone it runs `npm ci` there (pinned by the lock file, as `scripts/test` does),
/// installing node and npm with apt-get first when they are missing and we are root.
/// Err says what is missing and how to get it.
pub fn interop_peers() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let installed = || {
        ["@tars/rpc", "@tars/stream"]
            .iter()
            .all(|p| dir.join("node_modules").join(p).is_dir())
    };
    if installed() {
        return Ok(dir);
    }
    if tool("node", "nodejs").is_none() || tool("npm", "npm").is_none() {
        return Err("node and npm are needed for the Tars.js peers".into());
    }
    eprintln!(
        "bench: installing the Tars.js peers with npm ci in {}",
        dir.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !status.success() || !installed() {
        return Err(format!(
            "npm ci in {} failed ({status}); run `npm ci --prefix tests/interop`",
            dir.display()
        ));
    }
    Ok(dir)
}

/// A whole number from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests/s that `wrk -t1 -c<conns> -d<secs>s` measured on `port` (0 if it failed);
/// wrk's error lines are passed on to stderr.
pub fn wrk(wrk: &Path, conns: u32, secs: u64, port: u16) -> f64 {
    let out = Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            &format!("http://127.0.0.1:{port}/"),
        ])
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else { return 0.0 };
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("bench: wrk reported errors on port {port}:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// utime + stime of `pid` (all its threads) in seconds, from /proc.
pub fn cpu_secs(pid: i32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which may hold spaces, start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// CPU seconds of all of `pids`.
pub fn cpu_of(pids: &[i32]) -> f64 {
    pids.iter().map(|p| cpu_secs(*p)).sum()
}
