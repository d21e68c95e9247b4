//! In-process fake Hello servers on loopback for the client proxy's tests: each
//! answers `testHello(s)` with `"<port>:<s>"`, counts what it served, and can be told
//! to hang (read requests and answer none) or to answer requests in pairs, the second
//! first. Threads are stopped and joined when the server is dropped.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tarsfork_tars::frame::{FrameSplitter, DEFAULT_MAX_FRAME};
use tarsfork_tars::packet::RequestPacket;
use tarsfork_tars::proxy::{Current, Dispatch, Endpoint, ServantError};

use super::test_app::{HelloReq, HelloServant, HelloServer};

/// The servant name the fakes serve.
pub const SERVANT: &str = "TestApp.HelloServer.HelloObj";

/// How long a connection thread blocks in one read before checking for the stop.
const POLL: Duration = Duration::from_millis(20);

/// What a fake does with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer each at once.
    Answer,
    /// Read and drop every request, pings included: a hung server.
    Hang,
    /// Hold a reply until the next request arrives, then send the later one's reply
    /// first: pipelined replies out of order.
    AnswerPairsReversed,
}

#[derive(Default)]
struct Counters {
    hello: AtomicUsize,
    pings: AtomicUsize,
    accepted: AtomicUsize,
}

struct Echo {
    port: u16,
    counters: Arc<Counters>,
}

impl HelloServant for Echo {
    fn test_hello(&mut self, _: &Current<'_>, s_in: &str) -> Result<(i32, String), ServantError> {
        self.counters.hello.fetch_add(1, Ordering::SeqCst);
        Ok((0, format!("{}:{s_in}", self.port)))
    }

    fn test_struct(
        &mut self,
        _: &Current<'_>,
        _: &HelloReq,
    ) -> Result<(i32, Vec<String>, BTreeMap<String, String>), ServantError> {
        Ok((0, Vec::new(), BTreeMap::new()))
    }
}

/// A fake Hello server (see the module documentation).
pub struct FakeServer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// A server answering on a fresh loopback port.
    pub fn start(mode: Mode) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (mode, counters, stop) = (mode.clone(), counters.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            counters.accepted.fetch_add(1, Ordering::SeqCst);
                            let (mode, counters, stop) =
                                (mode.clone(), counters.clone(), stop.clone());
                            conns.push(std::thread::spawn(move || {
                                serve(s, addr.port(), &mode, counters, &stop)
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            })
        };
        FakeServer {
            addr,
            mode,
            counters,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its endpoint, for an endpoint set.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::from(self.addr)
    }

    /// `testHello` calls served.
    pub fn hellos(&self) -> usize {
        self.counters.hello.load(Ordering::SeqCst)
    }

    /// `tars_ping` requests answered.
    pub fn pings(&self) -> usize {
        self.counters.pings.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Changes what it does with the next requests.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(
    mut s: TcpStream,
    port: u16,
    mode: &Mutex<Mode>,
    counters: Arc<Counters>,
    stop: &AtomicBool,
) {
    s.set_read_timeout(Some(POLL)).unwrap();
    let mut splitter = FrameSplitter::new(DEFAULT_MAX_FRAME);
    let mut servant = HelloServer(Echo {
        port,
        counters: counters.clone(),
    });
    let mut held: Option<Vec<u8>> = None;
    while !stop.load(Ordering::SeqCst) {
        match splitter.read_from(&mut s) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        while let Ok(Some(body)) = splitter.next_frame() {
            let request = RequestPacket::decode(body).unwrap();
            let mode = *mode.lock().unwrap();
            if mode == Mode::Hang {
                continue;
            }
            if request.func_name == "tars_ping" {
                counters.pings.fetch_add(1, Ordering::SeqCst);
            }
            let Some(frame) = servant.dispatch(&request).encode_frame().unwrap() else {
                continue;
            };
            if mode == Mode::AnswerPairsReversed {
                match held.take() {
                    None => {
                        held = Some(frame);
                        continue;
                    }
                    Some(first) => {
                        s.write_all(&frame).unwrap();
                        s.write_all(&first).unwrap();
                        continue;
                    }
                }
            }
            if s.write_all(&frame).is_err() {
                return;
            }
        }
    }
}

/// A loopback endpoint that refuses connections: a socket bound to the port but not
/// listening, so no other process can take the port while the test runs. Keep the
/// socket alive as long as the endpoint is used.
pub fn refusing_endpoint() -> (Endpoint, socket2::Socket) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (Endpoint::from(addr), s)
}
