//! Tars RPC throughput: tarsfork's `HelloObj.testHello` echo against the same server's
//! HTTP `GET /` hello and against a Tars.js (@tars/rpc) Hello server, all loaded by
//! one client built here, on loopback.
//!
//! The client opens `BENCH_CONNS` (default 64) persistent connections, each keeping
//! `BENCH_DEPTH` (default 8) requests in flight, driven by `BENCH_CLIENT_THREADS`
//! (default 1) mio poll loops, so every server sees the same load shape. Every answer
//! is checked (a wrong echo, a bad status or a closed connection is an error). Each
//! case runs `BENCH_SECS` (default 5) after a 1 s warm-up, the cases rotating their
//! order for `BENCH_REPS` (default 3) reps; the medians are reported.
//!
//! Eight in flight because that is how Tars clients load a server: TarsCpp's and
//! @tars/rpc's proxies are asynchronous and multiplex calls on a connection by request
//! id, so a busy client has several outstanding. The HTTP case gets the same shape
//! (pipelined keep-alive requests), so all three servers see identical load;
//! `BENCH_DEPTH=1` gives the strict request/response shape.
//!
//! tarsfork runs 2 event workers and no task worker, like benches/http.rs. The Tars.js
//! side is `BENCH_NODE_PROCS` (default 2, one per tarsfork worker) copies of
//! tests/interop/hello_server.js, each on its own port, the connections split evenly
//! between them. That server answers `testHello` with `"hello " + sIn` and `sIn`'s
//! length, which is what the client checks there.
//!
//! Prints `BENCH tars_echo rps=… http_rps=… tarsjs_rps=… ratio_vs_http=… ratio_vs_tarsjs=…`
//! and, on stderr, one line per case with the raw numbers, the client's and the
//! server's CPU use (in cores, read from /proc). `per_core_ratio_*` divide requests
//! per second of server CPU: on a machine shared with other jobs the schedulers share
//! CPU differently between servers (node takes what it can), and that ratio says how
//! much work each server spends per request regardless. `client_cpu=a/b/c` is the
//! load generator's CPU in the tars/http/tarsjs cases.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use support::*;
use tarsfork_tars::codec::{from_bytes, Bytes, TarsWriter};
use tarsfork_tars::packet::{RequestPacket, ResponsePacket};

const SERVANT: &str = "TestApp.HelloServer.HelloObj";
/// Warm-up before each measured window (JIT for node, caches, accept queues).
const WARM: Duration = Duration::from_secs(1);
/// A reply larger than this is a protocol error, not something to buffer.
const MAX_FRAME: usize = 1 << 20;

/// The three servers, in the order the first rep runs them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    /// tarsfork, Tars RPC `testHello`, answer = the argument, ret 0.
    Tars,
    /// tarsfork, HTTP `GET /`, answer `hello`.
    Http,
    /// Tars.js hello_server.js, answer `"hello " + sIn`, ret = its length.
    TarsJs,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Tars => "tars",
            Case::Http => "http",
            Case::TarsJs => "tarsjs",
        }
    }
}

/// Knobs from the environment.
struct Settings {
    secs: u64,
    reps: usize,
    conns: usize,
    depth: usize,
    threads: usize,
    node_procs: usize,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            secs: env_or("BENCH_SECS", 5) as u64,
            reps: env_or("BENCH_REPS", 3),
            conns: env_or("BENCH_CONNS", 64),
            depth: env_or("BENCH_DEPTH", 8).min(1024),
            threads: env_or("BENCH_CLIENT_THREADS", 1),
            node_procs: env_or("BENCH_NODE_PROCS", 2),
        }
    }
}

// ---- what a request is and what its answer must be ------------------------------------

/// One request a connection may send, with what must come back for it.
struct Slot {
    frame: Vec<u8>,
    /// Tars: the expected `(ret, sOut)`; HTTP: unused (every answer is `hello`).
    expect: (i32, String),
}

/// `ring` distinct requests for connection `conn`: ids 1..=ring, payloads that name
/// the connection and the slot, so a reply crossed between requests is caught.
fn slots(case: Case, conn: usize, ring: usize) -> Vec<Slot> {
    (0..ring)
        .map(|i| {
            if case == Case::Http {
                return Slot {
                    frame: b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
                    expect: (0, String::new()),
                };
            }
            let s_in = format!("bench-{conn}-{i}");
            let mut w = TarsWriter::new();
            w.write(1, s_in.as_str());
            let req = RequestPacket {
                version: 1,
                request_id: i as i32 + 1,
                servant_name: SERVANT.into(),
                func_name: "testHello".into(),
                buffer: Bytes(w.into_bytes()),
                timeout: 3000,
                ..RequestPacket::default()
            };
            let expect = if case == Case::Tars {
                (0, s_in.clone())
            } else {
                (s_in.len() as i32, format!("hello {s_in}"))
            };
            Slot {
                frame: req.encode_frame().expect("encode a bench request"),
                expect,
            }
        })
        .collect()
}

// ---- one client connection --------------------------------------------------------------

struct Conn {
    stream: MioStream,
    case: Case,
    slots: Vec<Slot>,
    in_flight: Vec<bool>,
    /// How many requests are sent and not yet answered.
    pending: usize,
    next: usize,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    out_pos: usize,
    dead: bool,
}

/// Counts from one pass over a connection.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
}

impl Conn {
    /// Tops the connection up to `depth` requests in flight.
    fn refill(&mut self, depth: usize) {
        let ring = self.slots.len();
        while self.pending < depth {
            // ring >= 2 * depth, so a free slot exists within `ring` steps.
            let mut i = self.next;
            while self.in_flight[i] {
                i = (i + 1) % ring;
            }
            self.outbuf.extend_from_slice(&self.slots[i].frame);
            self.in_flight[i] = true;
            self.next = (i + 1) % ring;
            self.pending += 1;
        }
    }

    /// Writes what is queued; a hard error kills the connection.
    fn flush(&mut self, t: &mut Tally) {
        while self.out_pos < self.outbuf.len() {
            match self.stream.write(&self.outbuf[self.out_pos..]) {
                Ok(0) => return self.fail(t),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return self.fail(t),
            }
        }
        self.outbuf.clear();
        self.out_pos = 0;
    }

    fn fail(&mut self, t: &mut Tally) {
        if !self.dead {
            self.dead = true;
            t.errors += 1;
        }
    }

    /// Reads until the socket is drained (the poll is edge-triggered), then checks
    /// every complete answer.
    fn read_all(&mut self, scratch: &mut [u8], t: &mut Tally) {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return self.fail(t),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return self.fail(t),
            }
        }
        let used = match self.case {
            Case::Http => self.check_http(t),
            Case::Tars | Case::TarsJs => self.check_tars(t),
        };
        self.inbuf.drain(..used);
    }

    /// Checks the Tars replies in `inbuf`; returns the bytes consumed.
    fn check_tars(&mut self, t: &mut Tally) -> usize {
        let mut pos = 0;
        while self.inbuf.len() - pos >= 4 {
            let b = &self.inbuf[pos..];
            let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if !(5..=MAX_FRAME).contains(&len) {
                self.fail(t);
                return pos;
            }
            if b.len() < len {
                break;
            }
            let Ok(reply) = ResponsePacket::decode(&b[4..len]) else {
                self.fail(t);
                return pos;
            };
            pos += len;
            let i = reply.request_id as usize;
            if i == 0 || i > self.slots.len() || !self.in_flight[i - 1] {
                // An answer to nothing we asked: the stream can no longer be trusted.
                self.fail(t);
                return pos;
            }
            self.in_flight[i - 1] = false;
            self.pending -= 1;
            let (want_ret, want_out) = &self.slots[i - 1].expect;
            let body = &reply.buffer.0;
            let right = reply.ret == 0
                && from_bytes::<i32>(body, 0).ok() == Some(*want_ret)
                && from_bytes::<String>(body, 2).ok().as_deref() == Some(want_out.as_str());
            if right {
                t.ok += 1;
            } else {
                t.errors += 1;
            }
        }
        pos
    }

    /// Checks the HTTP answers in `inbuf` (in order, one per request); returns the
    /// bytes consumed.
    fn check_http(&mut self, t: &mut Tally) -> usize {
        let mut pos = 0;
        while pos < self.inbuf.len() {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            let head = match resp.parse(&self.inbuf[pos..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    self.fail(t);
                    return pos;
                }
            };
            let length = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            let Some(length) = length.filter(|l| *l <= MAX_FRAME) else {
                self.fail(t);
                return pos;
            };
            if self.inbuf.len() - pos < head + length {
                break;
            }
            let right =
                resp.code == Some(200) && &self.inbuf[pos + head..pos + head + length] == b"hello";
            pos += head + length;
            if self.pending == 0 {
                self.fail(t);
                return pos;
            }
            // Answers come in request order: release the oldest slot in flight.
            let ring = self.slots.len();
            let oldest = (0..ring)
                .map(|k| (self.next + ring - self.pending + k) % ring)
                .find(|i| self.in_flight[*i]);
            if let Some(i) = oldest {
                self.in_flight[i] = false;
            }
            self.pending -= 1;
            if right {
                t.ok += 1;
            } else {
                t.errors += 1;
            }
        }
        pos
    }
}

/// Connects `conns` clients, spread evenly over `addrs`. A connection that fails
/// counts as an error and is left out.
fn connect(case: Case, addrs: &[SocketAddr], s: &Settings, errors: &mut u64) -> Vec<Conn> {
    let ring = (2 * s.depth).max(8);
    let mut out = Vec::with_capacity(s.conns);
    for c in 0..s.conns {
        let addr = addrs[c % addrs.len()];
        let Ok(std_stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            *errors += 1;
            continue;
        };
        if std_stream.set_nodelay(true).is_err() || std_stream.set_nonblocking(true).is_err() {
            *errors += 1;
            continue;
        }
        out.push(Conn {
            stream: MioStream::from_std(std_stream),
            case,
            slots: slots(case, c, ring),
            in_flight: vec![false; ring],
            pending: 0,
            next: 0,
            inbuf: Vec::with_capacity(4096),
            outbuf: Vec::with_capacity(4096),
            out_pos: 0,
            dead: false,
        });
    }
    out
}

/// One client thread: a mio poll loop over its share of connections until `stop`.
fn drive(mut conns: Vec<Conn>, depth: usize, stop: &AtomicBool, ok: &AtomicU64, err: &AtomicU64) {
    let Ok(mut poll) = Poll::new() else {
        err.fetch_add(conns.len() as u64, Ordering::Relaxed);
        return;
    };
    let mut t = Tally::default();
    for (i, c) in conns.iter_mut().enumerate() {
        if poll
            .registry()
            .register(
                &mut c.stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            c.fail(&mut t);
            continue;
        }
        c.refill(depth);
        c.flush(&mut t);
    }
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let Some(c) = conns.get_mut(ev.token().0) else {
                continue;
            };
            if c.dead {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.read_all(&mut scratch, &mut t);
            }
            if !c.dead {
                c.refill(depth);
                c.flush(&mut t);
            }
            if c.dead {
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
        ok.fetch_add(std::mem::take(&mut t.ok), Ordering::Relaxed);
        err.fetch_add(std::mem::take(&mut t.errors), Ordering::Relaxed);
    }
}

// ---- CPU accounting ------------------------------------------------------------------

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

/// What one measured window gave.
#[derive(Clone, Copy, Default)]
struct Sample {
    rps: f64,
    errors: u64,
    /// Client CPU, in cores (1.0 = one core busy all the time).
    client_cpu: f64,
    /// Server CPU (all its processes), in cores.
    server_cpu: f64,
}

/// Loads `addrs` for WARM + `secs` and measures the last `secs`.
fn run_case(
    case: Case,
    addrs: &[SocketAddr],
    server_pids: &[i32],
    s: &Settings,
    secs: u64,
) -> Sample {
    let mut connect_errors = 0;
    let conns = connect(case, addrs, s, &mut connect_errors);
    let threads = s.threads.min(conns.len()).max(1);
    let mut shares: Vec<Vec<Conn>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        shares[i % threads].push(c);
    }
    let stop = AtomicBool::new(false);
    let ok = AtomicU64::new(0);
    let err = AtomicU64::new(0);
    let me = std::process::id() as i32;
    std::thread::scope(|scope| {
        for share in shares {
            let (stop, ok, err) = (&stop, &ok, &err);
            scope.spawn(move || drive(share, s.depth, stop, ok, err));
        }
        std::thread::sleep(WARM);
        let ok0 = ok.load(Ordering::Relaxed);
        let (c0, s0, t0) = (cpu_secs(me), cpu_of(server_pids), Instant::now());
        std::thread::sleep(Duration::from_secs(secs));
        let (ok1, err1) = (ok.load(Ordering::Relaxed), err.load(Ordering::Relaxed));
        let (c1, s1, wall) = (
            cpu_secs(me),
            cpu_of(server_pids),
            t0.elapsed().as_secs_f64(),
        );
        stop.store(true, Ordering::Relaxed);
        Sample {
            rps: (ok1 - ok0) as f64 / wall,
            // Errors in the warm-up count too: a wrong answer is never excused.
            errors: err1 + connect_errors,
            client_cpu: (c1 - c0) / wall,
            server_cpu: (s1 - s0) / wall,
        }
    })
}

// ---- the servers ------------------------------------------------------------------------

/// A tarsfork config: app TestApp, server HelloServer, 2 event workers, no task
/// worker, an HTTP adapter on `http_port` and a Tars adapter serving HelloObj on
/// `tars_port`.
fn write_tars_config(dir: &std::path::Path, http_port: u16, tars_port: u16) -> PathBuf {
    let d = dir.display();
    let text = format!(
        "<tars>\n<application>\n<server>\napp=TestApp\nserver=HelloServer\ndatapath={d}/data/\n\
         logpath={d}/log/\nlogLevel=INFO\nworker_num=2\ntask_worker_num=0\ndaemonize=0\n\
         <TestApp.HelloServer.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p {http_port} -t 60000\n\
         protocol=not_tars\nservant=TestApp.HelloServer.HttpObj\nthreads=2\nmaxconns=100000\n\
         </TestApp.HelloServer.HttpObjAdapter>\n\
         <TestApp.HelloServer.HelloObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p {tars_port} -t 60000\n\
         protocol=tars\nservant={SERVANT}\nthreads=2\nmaxconns=100000\n\
         </TestApp.HelloServer.HelloObjAdapter>\n</server>\n</application>\n</tars>\n"
    );
    let path = dir.join("tars_echo.conf");
    std::fs::write(&path, text).expect("write bench config");
    path
}

/// One blocking testHello on a fresh connection: does the Tars adapter answer?
fn tars_answers(addr: SocketAddr, case: Case) -> bool {
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let slot = slots(case, 0, 1).remove(0);
    if c.write_all(&slot.frame).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() >= len && len > 4 {
                return ResponsePacket::decode(&buf[4..len])
                    .ok()
                    .and_then(|r| from_bytes::<String>(&r.buffer.0, 2).ok())
                    .is_some_and(|s| s == slot.expect.1);
            }
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A Tars.js hello_server.js; killed by its pid and reaped on drop.
struct Node {
    child: Child,
    // Held open: the script also exits when its stdin closes, should we die unkilled.
    _stdin: Option<ChildStdin>,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` Tars.js servers, or says why it cannot.
fn start_nodes(n: usize) -> Result<Vec<Node>, String> {
    let dir = interop_peers().map_err(|e| e.replace(' ', "_"))?;
    let mut nodes = Vec::new();
    for _ in 0..n {
        let mut child = Command::new("node")
            .args(["hello_server.js", "0"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("node_not_startable({e})").replace(' ', "_"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let mut node = Node {
            child,
            _stdin: stdin,
            port: 0,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.strip_prefix("PORT ") {
                    let _ = tx.send(p.trim().parse::<u16>().unwrap_or(0));
                    break;
                }
            }
        });
        node.port = rx.recv_timeout(Duration::from_secs(20)).unwrap_or(0);
        if node.port == 0 {
            return Err("hello_server.js_gave_no_port_in_20s".into());
        }
        nodes.push(node);
    }
    Ok(nodes)
}

// ---- main ----------------------------------------------------------------------------------

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let s = Settings::from_env();
    let load_before = load1();
    let dir = tempfile::tempdir().expect("temp dir");
    let (http_port, tars_port) = (free_port(), free_port());
    let config = write_tars_config(dir.path(), http_port, tars_port);
    let mut tf = Fg::start(&config);
    let tars_addr: SocketAddr = ([127, 0, 0, 1], tars_port).into();
    let http_addr: SocketAddr = ([127, 0, 0, 1], http_port).into();
    if wait_answer(http_port, Duration::from_secs(10)).is_none()
        || !tars_answers(tars_addr, Case::Tars)
    {
        println!("BENCH tars_echo skipped=tarsfork_did_not_start");
        return;
    }
    let mut tf_pids = vec![tf.pid()];
    for role in ["manager", "worker"] {
        tf_pids.extend(tf.pids(role));
    }
    let workers = tf.pids("worker");

    let nodes = start_nodes(s.node_procs);
    let (node_addrs, node_pids, node_note) = match &nodes {
        Ok(ns) => {
            let addrs: Vec<SocketAddr> =
                ns.iter().map(|n| ([127, 0, 0, 1], n.port).into()).collect();
            if addrs.iter().all(|a| tars_answers(*a, Case::TarsJs)) {
                let pids = ns.iter().map(|n| n.child.id() as i32).collect();
                (addrs, pids, String::new())
            } else {
                (
                    Vec::new(),
                    Vec::new(),
                    "hello_server.js_answered_wrong".into(),
                )
            }
        }
        Err(why) => (Vec::new(), Vec::new(), why.clone()),
    };
    if !node_note.is_empty() {
        eprintln!("bench: no Tars.js case: {node_note}");
    }

    let mut cases = vec![Case::Tars, Case::Http];
    if !node_addrs.is_empty() {
        cases.push(Case::TarsJs);
    }
    // BENCH_ONLY=tars (or http, tarsjs, comma-separated) runs a subset, e.g. to
    // strace or perf one server under load.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        cases.retain(|c| only.split(',').any(|o| o.trim() == c.name()));
    }
    let target = |c: Case| -> (Vec<SocketAddr>, &[i32]) {
        match c {
            Case::Tars => (vec![tars_addr], &tf_pids),
            Case::Http => (vec![http_addr], &tf_pids),
            Case::TarsJs => (node_addrs.clone(), &node_pids),
        }
    };

    // Warm every server once, untimed.
    for c in &cases {
        let (addrs, pids) = target(*c);
        run_case(*c, &addrs, pids, &s, 1);
    }
    let mut results: Vec<Vec<Sample>> = vec![Vec::new(); cases.len()];
    for rep in 0..s.reps {
        // Rotate the order so drift in the machine's load hits every case alike.
        for k in 0..cases.len() {
            let i = (k + rep) % cases.len();
            let (addrs, pids) = target(cases[i]);
            let sample = run_case(cases[i], &addrs, pids, &s, s.secs);
            eprintln!(
                "tars_echo rep={rep} case={} rps={:.0} errors={} client_cpu={:.2} server_cpu={:.2} load1={}",
                cases[i].name(),
                sample.rps,
                sample.errors,
                sample.client_cpu,
                sample.server_cpu,
                load1()
            );
            results[i].push(sample);
        }
    }

    // Per case: median rps, median rps per server core (robust when other jobs take
    // CPU from the servers), median client CPU.
    let mut medians = [0.0f64; 3];
    let mut per_core = [0.0f64; 3];
    let mut client = [0.0f64; 3];
    let mut errors = 0;
    for (i, c) in cases.iter().enumerate() {
        let r = &results[i];
        let mut rps: Vec<f64> = r.iter().map(|x| x.rps).collect();
        let mut cc: Vec<f64> = r.iter().map(|x| x.client_cpu).collect();
        let mut sc: Vec<f64> = r.iter().map(|x| x.server_cpu).collect();
        let mut pc: Vec<f64> = r
            .iter()
            .map(|x| {
                if x.server_cpu > 0.0 {
                    x.rps / x.server_cpu
                } else {
                    0.0
                }
            })
            .collect();
        let errs: Vec<u64> = r.iter().map(|x| x.errors).collect();
        errors += errs.iter().sum::<u64>();
        let raw: Vec<String> = rps.iter().map(|x| format!("{x:.0}")).collect();
        let k = *c as usize;
        medians[k] = median(&mut rps);
        per_core[k] = median(&mut pc);
        client[k] = median(&mut cc);
        eprintln!(
            "tars_echo case={} rps=[{}] median={:.0} errors={errs:?} client_cpu_median={:.2} \
             server_cpu_median={:.2} rps_per_server_core={:.0} server_procs={}",
            c.name(),
            raw.join(","),
            medians[k],
            client[k],
            median(&mut sc),
            per_core[k],
            if *c == Case::TarsJs {
                node_pids.len()
            } else {
                tf_pids.len()
            },
        );
    }
    let [rps, http_rps, tarsjs_rps] = medians;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let note = if node_note.is_empty() {
        String::new()
    } else {
        format!(" tarsjs_skipped={node_note}")
    };
    println!(
        "BENCH tars_echo rps={rps:.0} http_rps={http_rps:.0} tarsjs_rps={tarsjs_rps:.0} \
         ratio_vs_http={:.2} ratio_vs_tarsjs={:.2} per_core_ratio_vs_http={:.2} \
         per_core_ratio_vs_tarsjs={:.2} client_cpu={:.2}/{:.2}/{:.2} conns={} depth={} \
         client_threads={} tarsfork_workers={} tarsjs_procs={} secs={} reps={} errors={errors} \
         load1_start={load_before} load1_end={}{note}",
        ratio(rps, http_rps),
        ratio(rps, tarsjs_rps),
        ratio(per_core[0], per_core[1]),
        ratio(per_core[0], per_core[2]),
        client[0],
        client[1],
        client[2],
        s.conns,
        s.depth,
        s.threads,
        workers.len(),
        node_pids.len(),
        s.secs,
        s.reps,
        load1(),
    );
    drop(nodes);
    tf.stop_and_wait();
}
