//! The task worker: takes tasks from the shared queue, runs `on_task`, sends the result
//! back to the worker that asked, and runs its timers. It finishes the task in hand
//! before obeying a stop.
//!
//! While a task runs, the task worker's scoreboard row names it (sender pid, task id):
//! if the task worker dies, the manager reads that and tells the sender at once. A
//! result is sent without waiting; when the sender's queue is full or the sender is
//! gone, it is dropped and counted in the row (`replies_dropped`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::platform::heartbeat::Heartbeat;
use crate::platform::reporter::Reporter;
use crate::process::{ChildBoot, Shared, Started};
use crate::scoreboard::{ProcHandle, ProcState};
use crate::service::{Service, TaskCtx, Timers};
use crate::signals::{self, Action};
use crate::taskq::{self, Kind, Message};
use crate::{log, sys, EXIT_BOOT_ERROR};

/// A task worker's loop (its pool's entry point): serves until told to stop and
/// returns its exit code.
pub(crate) fn serve(
    shared: &Shared,
    service: &Service,
    boot: &ChildBoot,
    started: Started,
) -> std::io::Result<i32> {
    let Started { wake, handle, .. } = started;
    let Some(queue) = shared.task_queue.as_ref().and_then(|q| q.take()) else {
        return Ok(0);
    };
    let mut ctx = TaskCtx {
        task_worker_id: boot.id,
        props: shared.props.clone(),
        new_timers: Vec::new(),
    };
    let mut timers: Timers<TaskCtx> = Timers::new();
    if let Some(start) = &service.on_task_start {
        if let Err(msg) = start(&mut ctx) {
            log::error(&format!(
                "on_task_start failed in task worker {}: {msg}",
                boot.id
            ));
            return Ok(EXIT_BOOT_ERROR);
        }
    }
    timers.adopt(&mut ctx.new_timers);
    // Task worker 0 (the first task worker id) does the framework's own work.
    let first_task_id = shared.settings.worker_num as u32;
    let mut heartbeat = if boot.id == first_task_id {
        Heartbeat::new(shared)
    } else {
        None
    };
    let mut reporter = if boot.id == first_task_id {
        Reporter::new(shared)
    } else {
        None
    };
    crate::platform::callstats::observe_client_calls(shared);
    handle.set_state(ProcState::Idle);
    handle.heartbeat();
    let fds = [wake.fd(), shared.master_alive_fd(), queue.as_raw_fd()];
    let mut buf = vec![0u8; taskq::MAX_PAYLOAD + 64];
    let mut out = Vec::with_capacity(256);
    loop {
        let now = sys::monotonic_ms();
        let mut wait = timers.next_due_in(now).unwrap_or(500).min(500);
        if let Some(h) = &heartbeat {
            wait = wait.min(h.due_in(now));
        }
        if let Some(r) = &reporter {
            wait = wait.min(r.due_in(now));
        }
        let ready = sys::poll_readable(&fds, Some(Duration::from_millis(wait as u64)))?;
        handle.heartbeat();
        if ready[0] {
            wake.drain();
        }
        if ready[1] {
            log::warn("master process is gone; task worker exiting");
            return Ok(0);
        }
        for action in signals::take() {
            match action {
                Action::Stop | Action::FastStop => return Ok(0),
                Action::ReopenLogs => log::reopen(),
                _ => {}
            }
        }
        if ready[2] {
            // Take one task per turn so a stop is noticed between tasks.
            run_one(
                queue, service, &mut ctx, &handle, boot.id, &mut buf, &mut out,
            );
        }
        if let Some(h) = heartbeat.as_mut() {
            h.run_due(shared);
        }
        if let Some(r) = reporter.as_mut() {
            r.run_due(shared);
        }
        let now = sys::monotonic_ms();
        timers.run_due(&mut ctx, now);
        timers.adopt(&mut ctx.new_timers);
    }
}

/// Takes one task off the queue (if another task worker did not take it first), runs
/// it and sends the result to the reply end that came with it.
fn run_one(
    queue: BorrowedFd<'_>,
    service: &Service,
    ctx: &mut TaskCtx,
    handle: &ProcHandle,
    my_id: u32,
    buf: &mut [u8],
    out: &mut Vec<u8>,
) {
    let (n, reply) = match taskq::take_task(queue, buf) {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
        Err(e) => {
            log::warn(&format!(
                "task queue: a malformed datagram was dropped: {e}"
            ));
            return;
        }
    };
    let Some(msg) = taskq::decode(&buf[..n]) else {
        log::warn("task queue: an undecodable task was dropped");
        return;
    };
    let Some(reply) = reply.filter(|r| sys::dgram::is_socket(r.as_fd())) else {
        log::warn(&format!(
            "task {} came without a reply channel; dropped",
            msg.task_id
        ));
        return;
    };
    if !matches!(msg.kind, Kind::Async | Kind::Wait) {
        return;
    }
    handle.begin_task(msg.from_pid, msg.task_id, sys::monotonic_ms());
    let result = match &service.on_task {
        Some(f) => f(ctx, msg.data),
        None => Vec::new(),
    };
    let answer = Message {
        task_id: msg.task_id,
        kind: Kind::Result,
        from_id: my_id,
        from_pid: sys::getpid(),
        data: &result,
    };
    let sent = match taskq::encode(out, &answer) {
        Ok(()) => taskq::send_reply(reply.as_fd(), out).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        handle.reply_dropped();
        log::warn(&format!(
            "result of task {} for pid {} dropped: {e}",
            msg.task_id, msg.from_pid
        ));
    }
    handle.end_task();
}
