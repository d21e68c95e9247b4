//! Chaos under load, shared by `tests/chaos.rs` and `benches/chaos.rs` (`scripts/chaos`):
//! a keep-alive HTTP client that accounts for every request it sends, a prober that
//! measures how long a fresh connection waits for an accepting worker, and the faults
//! (kill -9, SIGSTOP, reload) applied to the processes of one server, found under its
//! master by their titles in `/proc`.
//!
//! Every request sent ends in exactly one of: answered as expected (`ok`), answered
//! otherwise (`other`: another status or body), `failed` (the connection was reset or
//! closed before the whole answer), or `unanswered` (no whole answer within the
//! request's deadline). So `sent == ok + other + failed + unanswered`.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One kind of fault, applied every `Scenario::every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of a random event worker.
    KillEventWorker,
    /// kill -9 of a random task worker.
    KillTaskWorker,
    /// kill -9 of the manager.
    KillManager,
    /// SIGUSR1 to the master: a rolling reload.
    Reload,
    /// SIGSTOP of a random event worker that is not stopped yet; the manager's liveness
    /// check (`worker_timeout`) has to kill it.
    StopEventWorker,
}

/// A fault applied periodically under keep-alive load.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub fault: Fault,
    /// Time between two faults.
    pub every: Duration,
    /// How long faults are applied (the load runs that long, then `SETTLE` more).
    pub duration: Duration,
    /// Keep-alive client connections.
    pub conns: usize,
    /// What every request asks for, and the start of the body a good answer has.
    pub path: &'static str,
    pub expect: &'static str,
    /// A request without a whole answer this long after it was sent is unanswered.
    pub deadline: Duration,
}

/// How long the load goes on after the last fault, so requests sent around it resolve.
pub const SETTLE: Duration = Duration::from_millis(500);
/// Pause between two probes.
const PROBE_PAUSE: Duration = Duration::from_millis(5);
/// A probe answered within this is not counted as time without an accepting worker
/// (a fresh connection on a loaded 2-core machine takes a few ms).
pub const GAP_FLOOR: Duration = Duration::from_millis(20);

/// Every request of a load run, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub ok: u64,
    pub other: u64,
    pub failed: u64,
    pub unanswered: u64,
    /// Connections that could not be opened (no request was sent on them).
    pub connect_errors: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.other += o.other;
        self.failed += o.failed;
        self.unanswered += o.unanswered;
        self.connect_errors += o.connect_errors;
    }

    /// Whether every request sent has exactly one outcome.
    pub fn balanced(&self) -> bool {
        self.sent == self.ok + self.other + self.failed + self.unanswered
    }
}

/// What the prober saw: how long fresh connections waited for an answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gaps {
    /// Probes answered.
    pub probes: u64,
    /// The longest wait of one probe (retries after a reset included): an upper bound
    /// on the longest stretch without an accepting worker.
    pub longest: Duration,
    /// The sum of the waits longer than [`GAP_FLOOR`]: time without an accepting worker.
    pub total: Duration,
}

/// What the faults did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// Faults applied (a round with no process to hit counts none).
    pub applied: u64,
    /// The most requests the faults can have cut off: for each event worker killed or
    /// stopped, the client connections it held at that moment (this client sends one
    /// request at a time per connection, so that is the requests in flight in it, or
    /// about to be sent to it); for each task worker killed, 1 (it runs one task at a
    /// time). A manager kill or a reload cuts off none.
    pub in_flight_bound: u64,
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub tally: Tally,
    pub gaps: Gaps,
    pub faults: Faults,
    pub elapsed: Duration,
}

impl Outcome {
    /// Issue 11's target, which every scenario is held to: no request unanswered, none
    /// failed beyond the requests the faults cut off, every answer the right one.
    pub fn target_met(&self) -> bool {
        let t = &self.tally;
        t.balanced() && t.unanswered == 0 && t.other == 0 && t.failed <= self.faults.in_flight_bound
    }

    /// The line `scripts/chaos` prints.
    pub fn line(&self) -> String {
        let t = &self.tally;
        format!(
            "CHAOS {} requests={} ok={} other={} failed={} unanswered={} connect_errors={} \
             faults={} in_flight_bound={} target={} no_accept_longest_ms={} no_accept_total_ms={} \
             probes={} secs={:.1}",
            self.name,
            t.sent,
            t.ok,
            t.other,
            t.failed,
            t.unanswered,
            t.connect_errors,
            self.faults.applied,
            self.faults.in_flight_bound,
            if self.target_met() { "met" } else { "missed" },
            self.gaps.longest.as_millis(),
            self.gaps.total.as_millis(),
            self.gaps.probes,
            self.elapsed.as_secs_f64(),
        )
    }
}

/// Runs `s` against the server of `master` serving HTTP on `port`.
pub fn run(s: &Scenario, port: u16, master: i32) -> Outcome {
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<JoinHandle<Tally>> = (0..s.conns)
        .map(|_| {
            let (stop, path, expect, deadline) = (stop.clone(), s.path, s.expect, s.deadline);
            std::thread::spawn(move || client(port, path, expect, deadline, &stop))
        })
        .collect();
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || probe(port, &stop))
    };
    let faults = apply(s, port, master);
    std::thread::sleep(SETTLE);
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for h in load {
        tally.add(&h.join().expect("client thread"));
    }
    let gaps = prober.join().expect("prober thread");
    Outcome {
        name: s.name,
        tally,
        gaps,
        faults,
        elapsed: started.elapsed(),
    }
}

/// Applies the scenario's fault every `every` for `duration`.
fn apply(s: &Scenario, port: u16, master: i32) -> Faults {
    let mut rng = Rng::seeded();
    let mut f = Faults::default();
    let mut stopped: Vec<i32> = Vec::new();
    let start = Instant::now();
    let end = start + s.duration;
    let mut next = start + s.every;
    while next <= end {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += s.every;
        match s.fault {
            Fault::KillEventWorker => {
                if let Some(pid) = rng.pick(&titled(master, "event worker")) {
                    f.in_flight_bound += stop_count_kill(pid, port) as u64;
                    f.applied += 1;
                }
            }
            Fault::KillTaskWorker => {
                if let Some(pid) = rng.pick(&titled(master, "task worker")) {
                    signal(pid, libc::SIGKILL);
                    f.in_flight_bound += 1;
                    f.applied += 1;
                }
            }
            Fault::KillManager => {
                if let Some(pid) = titled(master, "manager").first() {
                    signal(*pid, libc::SIGKILL);
                    f.applied += 1;
                }
            }
            Fault::Reload => {
                signal(master, libc::SIGUSR1);
                f.applied += 1;
            }
            Fault::StopEventWorker => {
                stopped.retain(|p| state_of(*p).is_some());
                let running: Vec<i32> = titled(master, "event worker")
                    .into_iter()
                    .filter(|p| !stopped.contains(p))
                    .collect();
                if let Some(pid) = rng.pick(&running) {
                    signal(pid, libc::SIGSTOP);
                    f.in_flight_bound += conns_held(pid, port) as u64;
                    f.applied += 1;
                    stopped.push(pid);
                }
            }
        }
    }
    f
}

/// One keep-alive connection's client: sends the request, waits for the whole answer,
/// and again, until `stop`; a new connection after a close, a failure or a deadline.
fn client(port: u16, path: &str, expect: &str, deadline: Duration, stop: &AtomicBool) -> Tally {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let request = format!("GET {path} HTTP/1.1\r\nHost: chaos\r\n\r\n");
    let mut t = Tally::default();
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let s = match conn.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect_timeout(&addr, deadline) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn.insert(s)
                }
                Err(_) => {
                    t.connect_errors += 1;
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        t.sent += 1;
        let answer = if s.write_all(request.as_bytes()).is_ok() {
            read_answer(s, &mut buf, Instant::now() + deadline)
        } else {
            Answer::Failed
        };
        match answer {
            Answer::Whole {
                status,
                body,
                closes,
            } => {
                if status == 200 && body.starts_with(expect) {
                    t.ok += 1;
                } else {
                    t.other += 1;
                }
                if closes {
                    conn = None;
                }
            }
            Answer::Failed => {
                t.failed += 1;
                conn = None;
            }
            Answer::Late => {
                t.unanswered += 1;
                conn = None;
            }
        }
    }
    t
}

/// How one request ended.
enum Answer {
    Whole {
        status: u16,
        body: String,
        closes: bool,
    },
    /// Reset or closed before the whole answer.
    Failed,
    /// No whole answer by the deadline.
    Late,
}

/// Reads one whole answer from `s`, giving up at `until`.
fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>, until: Instant) -> Answer {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((r, _)) = super::parse_response(buf) {
            return Answer::Whole {
                status: r.status,
                body: r.body,
                closes: r.closes,
            };
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Answer::Late;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Answer::Failed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Answer::Failed,
        }
    }
}

/// Fresh connections, one at a time, until `stop`: how long each waited for an answer.
/// A probe that is reset (its worker was killed) is sent again at once, its wait still
/// counted from the first attempt.
fn probe(port: u16, stop: &AtomicBool) -> Gaps {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut g = Gaps::default();
    let mut buf = Vec::with_capacity(512);
    while !stop.load(Ordering::Relaxed) {
        let first = Instant::now();
        let answered = loop {
            if stop.load(Ordering::Relaxed) {
                break false;
            }
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let sent = s
                .write_all(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
                .is_ok();
            if sent {
                let until = Instant::now() + Duration::from_secs(5);
                if let Answer::Whole { status: 200, .. } = read_answer(&mut s, &mut buf, until) {
                    break true;
                }
            }
        };
        if answered {
            let wait = first.elapsed();
            g.probes += 1;
            g.longest = g.longest.max(wait);
            if wait > GAP_FLOOR {
                g.total += wait;
            }
        }
        std::thread::sleep(PROBE_PAUSE);
    }
    g
}

/// SIGSTOPs `pid`, counts the client connections it holds on `port`, then SIGKILLs it.
/// Stopped, it accepts nothing between the count and the kill.
pub fn stop_count_kill(pid: i32, port: u16) -> usize {
    signal(pid, libc::SIGSTOP);
    let held = conns_held(pid, port);
    signal(pid, libc::SIGKILL);
    held
}

/// How many established TCP connections on local port `port` process `pid` holds: its
/// socket descriptors matched against `/proc/net/tcp{,6}` (listeners left out).
pub fn conns_held(pid: i32, port: u16) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let mine: Vec<u64> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let mut held = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retr uid timeout inode …; st 0A = LISTEN.
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let inode: u64 = inode.parse().unwrap_or(0);
            if local_port == Some(port) && *st != "0A" && inode != 0 && mine.contains(&inode) {
                held += 1;
            }
        }
    }
    held
}

/// Live descendants of `master` (itself included) whose title is `…: <word> process`.
pub fn titled(master: i32, word: &str) -> Vec<i32> {
    let suffix = format!(": {word} process");
    let procs = all_procs();
    let mut tree = vec![master];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            procs
                .iter()
                .filter(|p| p.1 == parent && p.2 != 'Z')
                .map(|p| p.0),
        );
        i += 1;
    }
    tree.into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .trim_end_matches('\0')
                        .trim_end()
                        .ends_with(&suffix)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// (pid, parent pid, state) of every process.
fn all_procs() -> Vec<(i32, i32, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (state, ppid) = state_of(pid)?;
            Some((pid, ppid, state))
        })
        .collect()
}

/// (state letter, parent pid) of `pid`, from `/proc/<pid>/stat`; None once it is gone.
fn state_of(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process of the server this run started; an error (it is
    // gone already) is harmless.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// xorshift64: which process a fault hits.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng(t | 1)
    }

    fn pick(&mut self, from: &[i32]) -> Option<i32> {
        if from.is_empty() {
            return None;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Some(from[(self.0 % from.len() as u64) as usize])
    }
}
