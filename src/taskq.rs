//! The task channel between event workers and task workers.
//!
//! The master binds one unix datagram socket, the task queue, in the abstract namespace
//! before forking; every task worker inherits it and blocks in `recv` on it, so the
//! kernel hands each task to whichever task worker is idle (swoole's dispatch to an idle
//! task worker), and queued tasks survive the restart of a task worker. Each event worker
//! binds its own reply socket and connects it to the queue, so the task worker's answer
//! (sent from the queue socket) comes back to exactly the worker that asked.
//!
//! Every datagram carries the server's random token: a datagram from anyone else on the
//! machine is dropped.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Largest task or result payload in one datagram.
pub const MAX_PAYLOAD: usize = 60 * 1024;

const MAGIC: u32 = 0x5446_544b; // "TFTK"
const HEADER: usize = 4 + 8 + 8 + 1 + 4;

/// Whether the sender waits for the result (`task_wait`) or gets it in `on_finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `task(data)`: the result comes back to `on_finish`.
    Async = 0,
    /// `task_wait(data, timeout)`: the sender blocks for the result.
    Wait = 1,
    /// The result of a task, travelling back.
    Result = 2,
}

/// One decoded datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Task id, unique per sending worker process.
    pub task_id: u64,
    /// What this datagram is.
    pub kind: Kind,
    /// The worker id of the sender (event worker for tasks, task worker for results).
    pub from_id: u32,
    /// Payload.
    pub data: &'a [u8],
}

/// Errors of the task channel.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The payload is over [`MAX_PAYLOAD`].
    #[error("task payload of {0} bytes is over the limit of {MAX_PAYLOAD} bytes")]
    TooLarge(usize),
    /// No task worker is configured.
    #[error("no task workers: set task_worker_num ≥ 1")]
    NoTaskWorkers,
    /// `task_wait` timed out.
    #[error("task_wait timed out after {0} ms")]
    Timeout(u64),
    /// The socket failed.
    #[error("task channel: {0}")]
    Io(#[from] io::Error),
}

/// Encodes a datagram into `out` (cleared first).
pub fn encode(out: &mut Vec<u8>, token: u64, msg: &Message<'_>) -> Result<(), TaskError> {
    if msg.data.len() > MAX_PAYLOAD {
        return Err(TaskError::TooLarge(msg.data.len()));
    }
    out.clear();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&token.to_be_bytes());
    out.extend_from_slice(&msg.task_id.to_be_bytes());
    out.push(msg.kind as u8);
    out.extend_from_slice(&msg.from_id.to_be_bytes());
    out.extend_from_slice(msg.data);
    Ok(())
}

/// Decodes a datagram; `None` for anything malformed or carrying another token.
pub fn decode(buf: &[u8], token: u64) -> Option<Message<'_>> {
    if buf.len() < HEADER {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        u64::from_be_bytes(b)
    };
    if u32_at(0) != MAGIC || u64_at(4) != token {
        return None;
    }
    let kind = match buf[20] {
        0 => Kind::Async,
        1 => Kind::Wait,
        2 => Kind::Result,
        _ => return None,
    };
    Some(Message {
        task_id: u64_at(12),
        kind,
        from_id: u32_at(21),
        data: &buf[HEADER..],
    })
}

/// The abstract socket name of the task queue of the server with this token.
pub fn queue_name(token: u64) -> String {
    format!("tarsfork-{token:016x}-tasks")
}

/// The abstract socket name of the reply socket of worker process `pid`.
pub fn reply_name(token: u64, pid: i32) -> String {
    format!("tarsfork-{token:016x}-reply-{pid}")
}

/// Binds the task queue (in the master, before forking).
pub fn bind_queue(token: u64) -> io::Result<UnixDatagram> {
    let addr = SocketAddr::from_abstract_name(queue_name(token).as_bytes())?;
    UnixDatagram::bind_addr(&addr)
}

/// Binds an event worker's reply socket and connects it to the queue.
pub fn bind_reply(token: u64, pid: i32) -> io::Result<UnixDatagram> {
    let me = SocketAddr::from_abstract_name(reply_name(token, pid).as_bytes())?;
    let sock = UnixDatagram::bind_addr(&me)?;
    let queue = SocketAddr::from_abstract_name(queue_name(token).as_bytes())?;
    sock.connect_addr(&queue)?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_token_check() {
        let mut buf = Vec::new();
        let msg = Message {
            task_id: 42,
            kind: Kind::Wait,
            from_id: 3,
            data: b"hello",
        };
        encode(&mut buf, 7, &msg).unwrap();
        assert_eq!(decode(&buf, 7), Some(msg));
        assert_eq!(
            decode(&buf, 8),
            None,
            "another server's token must be refused"
        );
        assert_eq!(decode(&buf[..10], 7), None);
        let mut bad = buf.clone();
        bad[20] = 9;
        assert_eq!(decode(&bad, 7), None);
    }

    #[test]
    fn oversized_payload_is_an_error() {
        let big = vec![0u8; MAX_PAYLOAD + 1];
        let msg = Message {
            task_id: 1,
            kind: Kind::Async,
            from_id: 0,
            data: &big,
        };
        assert!(matches!(
            encode(&mut Vec::new(), 1, &msg),
            Err(TaskError::TooLarge(_))
        ));
    }

    #[test]
    fn reply_reaches_the_asking_socket() {
        let token = 0x1234_5678_9abc_def0 ^ std::process::id() as u64;
        let queue = bind_queue(token).unwrap();
        let reply = bind_reply(token, std::process::id() as i32).unwrap();
        let mut buf = Vec::new();
        encode(
            &mut buf,
            token,
            &Message {
                task_id: 1,
                kind: Kind::Wait,
                from_id: 0,
                data: b"x",
            },
        )
        .unwrap();
        reply.send(&buf).unwrap();
        let mut rbuf = vec![0u8; 1024];
        let (n, from) = queue.recv_from(&mut rbuf).unwrap();
        let got = decode(&rbuf[..n], token).unwrap();
        assert_eq!(got.data, b"x");
        encode(
            &mut buf,
            token,
            &Message {
                task_id: 1,
                kind: Kind::Result,
                from_id: 2,
                data: b"y",
            },
        )
        .unwrap();
        queue.send_to_addr(&buf, &from).unwrap();
        let n = reply.recv(&mut rbuf).unwrap();
        assert_eq!(decode(&rbuf[..n], token).unwrap().data, b"y");
    }
}
