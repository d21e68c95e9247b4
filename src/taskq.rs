//! The task channel between event workers and task workers, made of socketpairs only.
//!
//! **The queue** is one unix datagram socketpair the master makes before it forks
//! anything ([`TaskQueue`]). Every event worker holds its sending end, every task worker
//! its receiving end, and the master keeps both for its whole life: the kernel hands
//! each task to whichever task worker asks first — an idle one (swoole's dispatch to an
//! idle task worker) — and tasks queued while no task worker runs wait in the master's
//! socket for the next one, so they survive a task worker's restart.
//!
//! **Replies**: the manager makes one socketpair per event worker before forking it
//! ([`ReplyChannel`]). The worker reads results on one end and sends the other end with
//! every task (`SCM_RIGHTS`); the task worker answers on that descriptor and closes it,
//! so each result returns to exactly the process that asked. The manager keeps a copy
//! of the sending end, to tell the worker at once when the task worker running one of
//! its tasks dies ([`Kind::Failed`]).
//!
//! Nothing here has a name (no abstract or filesystem socket, no token to guess): only
//! processes of the tree hold an end, so no other process on the machine can send a
//! task or a reply. A reply never waits: when the asking worker's queue is full, or the
//! worker is gone, the reply is dropped and counted (`replies_dropped` in `status`),
//! so one worker that does not read its results cannot stall the task workers.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::sys::dgram;

/// Largest task or result payload in one datagram.
pub const MAX_PAYLOAD: usize = 60 * 1024;

const MAGIC: u32 = 0x5446_544b; // "TFTK"
const HEADER: usize = 4 + 8 + 1 + 4 + 4;

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `task(data)`: the result comes back to `on_finish`.
    Async = 0,
    /// `task_wait(data, timeout)`: the sender blocks for the result.
    Wait = 1,
    /// The result of a task, travelling back.
    Result = 2,
    /// From the manager: the task worker running the task died; the data says how.
    Failed = 3,
}

/// One decoded datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Task id, unique per sending worker process.
    pub task_id: u64,
    /// What this datagram is.
    pub kind: Kind,
    /// The worker id of the sender: the event worker for a task, the task worker for a
    /// result or a failure.
    pub from_id: u32,
    /// The pid of that process.
    pub from_pid: i32,
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
    /// The task worker running the task died before answering.
    #[error("task worker {task_worker} died with {how} while running this task")]
    WorkerDied {
        /// Its id.
        task_worker: u32,
        /// How it ended (`signal 9 (KILL)`, `exit code 1`).
        how: String,
    },
    /// The socket failed.
    #[error("task channel: {0}")]
    Io(#[from] io::Error),
}

/// Encodes a datagram into `out` (cleared first).
pub fn encode(out: &mut Vec<u8>, msg: &Message<'_>) -> Result<(), TaskError> {
    if msg.data.len() > MAX_PAYLOAD {
        return Err(TaskError::TooLarge(msg.data.len()));
    }
    out.clear();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&msg.task_id.to_be_bytes());
    out.push(msg.kind as u8);
    out.extend_from_slice(&msg.from_id.to_be_bytes());
    out.extend_from_slice(&msg.from_pid.to_be_bytes());
    out.extend_from_slice(msg.data);
    Ok(())
}

/// Decodes a datagram; `None` for anything malformed.
pub fn decode(buf: &[u8]) -> Option<Message<'_>> {
    if buf.len() < HEADER {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        u64::from_be_bytes(b)
    };
    if u32_at(0) != MAGIC {
        return None;
    }
    let kind = match buf[12] {
        0 => Kind::Async,
        1 => Kind::Wait,
        2 => Kind::Result,
        3 => Kind::Failed,
        _ => return None,
    };
    Some(Message {
        task_id: u64_at(4),
        kind,
        from_id: u32_at(13),
        from_pid: u32_at(17) as i32,
        data: &buf[HEADER..],
    })
}

/// The queue's two ends, as a process of the tree holds them: the master and the
/// manager hold both, an event worker only the sending end, a task worker only the
/// receiving end.
#[derive(Debug)]
pub struct TaskQueue {
    submit: Option<OwnedFd>,
    take: Option<OwnedFd>,
}

impl TaskQueue {
    /// A new queue (the master, before forking).
    pub fn new() -> io::Result<TaskQueue> {
        let (submit, take) = dgram::socketpair()?;
        Ok(TaskQueue {
            submit: Some(submit),
            take: Some(take),
        })
    }

    /// The sending end, if this process holds it.
    pub fn submit(&self) -> Option<BorrowedFd<'_>> {
        self.submit.as_ref().map(|f| f.as_fd())
    }

    /// The receiving end, if this process holds it.
    pub fn take(&self) -> Option<BorrowedFd<'_>> {
        self.take.as_ref().map(|f| f.as_fd())
    }

    /// Closes the ends this process must not hold.
    pub(crate) fn keep(&mut self, submit: bool, take: bool) {
        if !submit {
            self.submit = None;
        }
        if !take {
            self.take = None;
        }
    }

    /// The descriptors it holds.
    pub(crate) fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.submit
            .iter()
            .chain(self.take.iter())
            .map(|f| f.as_raw_fd())
    }
}

/// One event worker's reply channel: results arrive on `recv`; `send` travels with
/// each task to the task worker that runs it.
#[derive(Debug)]
pub struct ReplyChannel {
    /// Where results arrive.
    pub recv: OwnedFd,
    /// The end results are sent on.
    pub send: OwnedFd,
}

impl ReplyChannel {
    /// A new channel (the manager, before forking the event worker).
    pub fn new() -> io::Result<ReplyChannel> {
        let (recv, send) = dgram::socketpair()?;
        Ok(ReplyChannel { recv, send })
    }

    /// Both descriptors.
    pub(crate) fn fds(&self) -> [RawFd; 2] {
        [self.recv.as_raw_fd(), self.send.as_raw_fd()]
    }
}

/// Whether a send failed only because the receiver has no room right now (a full
/// queue, or too many descriptors in flight for this user): worth trying again later.
pub fn is_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ETOOMANYREFS)
}

/// Puts an encoded task on the queue with the sender's reply end attached, without
/// waiting (see [`is_full`]).
pub fn send_task(submit: BorrowedFd<'_>, task: &[u8], reply: BorrowedFd<'_>) -> io::Result<()> {
    dgram::send_now_with_fd(submit, task, reply).map(|_| ())
}

/// Takes the next task off the queue without waiting: its bytes in `buf` and the
/// descriptor to answer on. `WouldBlock` when another task worker took it first.
pub fn take_task(take: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    dgram::recv_now(take, buf)
}

/// Sends a result (or a failure) on a worker's reply end without waiting: an error
/// means the reply is lost (the worker's queue is full, or it is gone), and the caller
/// counts it.
pub fn send_reply(reply: BorrowedFd<'_>, msg: &[u8]) -> io::Result<()> {
    dgram::send_now(reply, msg).map(|_| ())
}

/// Receives one reply without waiting (`WouldBlock` when none is there).
pub fn recv_reply(recv: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    dgram::recv_now(recv, buf).map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: Kind, data: &[u8]) -> Message<'_> {
        Message {
            task_id: 42,
            kind,
            from_id: 3,
            from_pid: 777,
            data,
        }
    }

    #[test]
    fn round_trip_and_malformed_datagrams() {
        let mut buf = Vec::new();
        for kind in [Kind::Async, Kind::Wait, Kind::Result, Kind::Failed] {
            encode(&mut buf, &msg(kind, b"hello")).unwrap();
            assert_eq!(decode(&buf), Some(msg(kind, b"hello")));
        }
        assert_eq!(decode(&buf[..10]), None);
        let mut bad = buf.clone();
        bad[12] = 9;
        assert_eq!(decode(&bad), None);
        bad = buf.clone();
        bad[0] ^= 1;
        assert_eq!(decode(&bad), None, "wrong magic");
    }

    #[test]
    fn oversized_payload_is_an_error() {
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert!(matches!(
            encode(&mut Vec::new(), &msg(Kind::Async, &big)),
            Err(TaskError::TooLarge(_))
        ));
    }

    #[test]
    fn a_reply_reaches_the_asking_channel_and_a_full_one_is_not_waited_on() {
        let queue = TaskQueue::new().unwrap();
        let mine = ReplyChannel::new().unwrap();
        let mut buf = Vec::new();
        let payload = vec![5u8; MAX_PAYLOAD];
        encode(&mut buf, &msg(Kind::Wait, &payload)).unwrap();
        send_task(queue.submit().unwrap(), &buf, mine.send.as_fd()).unwrap();
        let mut rbuf = vec![0u8; MAX_PAYLOAD + 64];
        let (n, reply) = take_task(queue.take().unwrap(), &mut rbuf).unwrap();
        assert_eq!(decode(&rbuf[..n]).unwrap().data.len(), MAX_PAYLOAD);
        let reply = reply.expect("the reply end travels with the task");
        encode(&mut buf, &msg(Kind::Result, b"y")).unwrap();
        send_reply(reply.as_fd(), &buf).unwrap();
        let n = recv_reply(mine.recv.as_fd(), &mut rbuf).unwrap();
        assert_eq!(decode(&rbuf[..n]).unwrap().data, b"y");
        // Nobody reads: the channel fills and sends fail at once.
        encode(&mut buf, &msg(Kind::Result, &payload)).unwrap();
        let started = std::time::Instant::now();
        let err = loop {
            if let Err(e) = send_reply(reply.as_fd(), &buf) {
                break e;
            }
        };
        assert!(is_full(&err), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
