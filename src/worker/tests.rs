//! Tests of the protocol seam: switches, calls outside a read, deadlines and
//! backpressure, through the same `Conn` code the worker runs, on loopback sockets.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

use mio::{Events, Poll, Token};

use crate::http::Response;
use crate::scoreboard::{Role, Scoreboard};
use crate::service::{Ctx, Service};

use super::conn::{Conn, Origin};
use super::protocol::{switching, App, Host, Output, Protocol, Switch};
use super::requests::Requests;

/// The worker's application state for protocol tests: a scoreboard row of its own
/// (in a temp dir that is gone once the tables are mapped), no statistics, no
/// `max_request` unless given.
pub(super) fn app(service: &Service, max_request: u64) -> App<'_> {
    let dir = tempfile::tempdir().unwrap();
    let shm = crate::rundir::RunDir::create_fresh(dir.path(), "shm").unwrap();
    let board = Scoreboard::create(&shm, 4, 1).unwrap();
    let handle = board.register(Role::EventWorker, 0, 0).unwrap();
    App {
        service,
        ctx: Ctx::new(0, None, None),
        requests: Requests::new(handle, None, max_request),
        wall: SystemTime::now(),
    }
}

/// A service whose HTTP handler answers `hello`.
pub(super) fn hello() -> Service {
    Service::new(|_req, _ctx| Response::text(200, "hello"))
}

/// `app` lent to a protocol as the worker lends it.
pub(super) fn host<'h, 'w>(app: &'h mut App<'w>) -> Host<'h, 'w> {
    Host {
        app,
        peer: "127.0.0.1",
        port: 1,
    }
}

/// Answers `UPGRADE\n` with `101\n` and hands the rest of the input to a new `next()`.
struct Upgrader {
    next: fn() -> Box<dyn Protocol>,
}

impl Protocol for Upgrader {
    fn on_input(&mut self, input: &[u8], out: &mut Output, _: &mut Host<'_, '_>) -> Option<Switch> {
        let rest = input.strip_prefix(b"UPGRADE\n")?;
        out.buf().extend_from_slice(b"101\n");
        Some(Switch {
            next: (self.next)(),
            leftover: rest.to_vec(),
        })
    }

    fn is_idle(&self) -> bool {
        true
    }
}

/// Echoes its input; on a deadline or a drain, says so and closes.
struct Echo {
    deadline: Option<i64>,
}

impl Protocol for Echo {
    fn on_input(&mut self, input: &[u8], out: &mut Output, _: &mut Host<'_, '_>) -> Option<Switch> {
        out.buf().extend_from_slice(input);
        None
    }

    fn is_idle(&self) -> bool {
        true
    }

    fn on_drain(&mut self, out: &mut Output, _: &mut Host<'_, '_>) {
        out.buf().extend_from_slice(b"bye");
        out.close();
    }

    fn deadline(&self) -> Option<i64> {
        self.deadline
    }

    fn on_deadline(&mut self, out: &mut Output, _: &mut Host<'_, '_>) {
        out.buf().extend_from_slice(b"late");
        out.close();
    }
}

fn echo() -> Box<dyn Protocol> {
    Box::new(Echo { deadline: None })
}

fn upgrader_to_echo() -> Box<dyn Protocol> {
    Box::new(Upgrader { next: echo })
}

fn upgrader_to_upgrader() -> Box<dyn Protocol> {
    Box::new(Upgrader {
        next: upgrader_to_echo,
    })
}

#[test]
fn a_switch_hands_the_bytes_after_the_handshake_to_the_next_protocol() {
    let service = hello();
    let mut app = app(&service, 0);
    let mut slot = upgrader_to_upgrader();
    let mut out = Output::default();
    // Two switches in one read: each protocol gets what its predecessor left.
    switching(&mut slot, &mut out, &mut host(&mut app), |p, out, host| {
        p.on_input(b"UPGRADE\nUPGRADE\nframes", out, host)
    });
    assert_eq!(out.buf(), b"101\n101\nframes");
    // The connection stays with the last protocol.
    switching(&mut slot, &mut out, &mut host(&mut app), |p, out, host| {
        p.on_input(b"UPGRADE\n", out, host)
    });
    assert_eq!(out.buf(), b"101\n101\nframesUPGRADE\n");
}

/// A connected pair on loopback: the client's std socket and the server's `Conn`
/// (registered with `poll` as token 0).
fn pair(protocol: Box<dyn Protocol>, poll: &Poll) -> (TcpStream, Box<Conn>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (server, peer) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let from = Origin {
        peer: peer.ip().to_string(),
        adapter: 0,
        port: 1,
    };
    let stream = mio::net::TcpStream::from_std(server);
    let mut conn = Conn::new(stream, Token(0), from, protocol, 0);
    conn.register(poll.registry()).unwrap();
    (client, conn)
}

/// Waits (bounded) until the server side has an event, then drives the connection
/// as the worker's loop does. Returns the connection's verdict.
fn drive(conn: &mut Conn, poll: &mut Poll, app: &mut App<'_>) -> bool {
    let mut events = Events::with_capacity(8);
    poll.poll(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    let ev = events.iter().next().expect("an event within 10 s");
    let mut scratch = vec![0u8; 16 * 1024];
    conn.drive(
        ev.is_readable(),
        ev.is_writable(),
        &mut scratch,
        poll.registry(),
        app,
    )
}

/// Reads until the server closes; panics on a read timeout (which is no end of stream).
fn read_to_close(client: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    client.read_to_end(&mut got).expect("the server closes");
    got
}

#[test]
fn a_switch_read_from_the_socket_answers_the_handshake_and_the_leftover_in_one_turn() {
    let service = hello();
    let mut app = app(&service, 0);
    let mut poll = Poll::new().unwrap();
    let (mut client, mut conn) = pair(upgrader_to_echo(), &poll);
    client.write_all(b"UPGRADE\nhello").unwrap();
    assert!(drive(&mut conn, &mut poll, &mut app));
    let mut got = [0u8; 9];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"101\nhello");
}

#[test]
fn a_call_outside_a_read_writes_what_the_protocol_queued() {
    let service = hello();
    let mut app = app(&service, 0);
    let poll = Poll::new().unwrap();
    let (mut client, mut conn) = pair(echo(), &poll);
    // The drain is such a call; the echo protocol says goodbye and closes.
    let keep = conn.call(poll.registry(), &mut app, |p, out, host| {
        p.on_drain(out, host);
        None
    });
    assert!(keep, "a lingering close, not an abrupt one");
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"bye");
}

#[test]
fn the_sweep_calls_a_protocol_whose_deadline_has_come_and_no_earlier() {
    let service = hello();
    let mut app = app(&service, 0);
    let poll = Poll::new().unwrap();
    let (mut client, mut conn) = pair(
        Box::new(Echo {
            deadline: Some(500),
        }),
        &poll,
    );
    assert!(conn.sweep(499, 0, false, poll.registry(), &mut app));
    client.set_nonblocking(true).unwrap();
    let early = client.read(&mut [0u8; 8]).map_err(|e| e.kind());
    assert_eq!(
        early,
        Err(std::io::ErrorKind::WouldBlock),
        "nothing before the deadline"
    );
    client.set_nonblocking(false).unwrap();
    assert!(conn.sweep(500, 0, false, poll.registry(), &mut app));
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"late");
}

/// Queues 600 KiB per `x` received, as far as backpressure lets it.
struct Big {
    pending: usize,
}

impl Protocol for Big {
    fn on_input(&mut self, input: &[u8], out: &mut Output, _: &mut Host<'_, '_>) -> Option<Switch> {
        self.pending += input.iter().filter(|b| **b == b'x').count();
        while self.pending > 0 && !out.is_full() {
            let buf = out.buf();
            buf.resize(buf.len() + 600 * 1024, b'.');
            self.pending -= 1;
        }
        None
    }

    fn is_idle(&self) -> bool {
        self.pending == 0
    }
}

#[test]
fn output_backpressure_resumes_with_what_was_left_buffered() {
    let service = hello();
    let mut app = app(&service, 0);
    let mut poll = Poll::new().unwrap();
    let (mut client, mut conn) = pair(Box::new(Big { pending: 0 }), &poll);
    // Three answers of 600 KiB: the first two fill the output, the third waits in the
    // protocol until they are written. The client sends nothing more.
    client.write_all(b"xxx").unwrap();
    let want = 3 * 600 * 1024;
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < want {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        // Kept open: an end of stream would end the connection.
        (got, client)
    });
    let started = std::time::Instant::now();
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(10) {
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        let mut scratch = vec![0u8; 16 * 1024];
        for ev in events.iter() {
            assert!(conn.drive(
                ev.is_readable(),
                ev.is_writable(),
                &mut scratch,
                poll.registry(),
                &mut app,
            ));
        }
    }
    assert_eq!(reader.join().unwrap().0, want);
}
