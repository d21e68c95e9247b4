//! The task worker: takes tasks from the shared queue, runs `on_task`, sends the result
//! back to the worker that asked, and runs its timers. It finishes the task in hand
//! before obeying a stop.

use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::platform::heartbeat::Heartbeat;
use crate::platform::reporter::Reporter;
use crate::process::{ChildBoot, Shared, Started};
use crate::scoreboard::ProcState;
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
    let Started { wake, handle } = started;
    let Some(queue) = shared.task_queue.as_ref() else {
        return Ok(0);
    };
    queue.set_nonblocking(true)?;
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
            if let Ok((n, from)) = queue.recv_from(&mut buf) {
                if let Some(msg) = taskq::decode(&buf[..n], shared.token) {
                    if msg.kind != Kind::Result {
                        handle.begin_request(sys::monotonic_ms());
                        let result = match &service.on_task {
                            Some(f) => f(&mut ctx, msg.data),
                            None => Vec::new(),
                        };
                        handle.end_request();
                        let reply = Message {
                            task_id: msg.task_id,
                            kind: Kind::Result,
                            from_id: boot.id,
                            data: &result,
                        };
                        match taskq::encode(&mut out, shared.token, &reply) {
                            Ok(()) => send_reply(queue, &out, &from),
                            Err(e) => {
                                log::error(&format!("task {} result dropped: {e}", msg.task_id))
                            }
                        }
                    }
                }
            }
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

/// Sends a result, waiting up to 5 s for room in the worker's queue (it may be inside a
/// long request); a worker that has exited meanwhile simply loses its result.
fn send_reply(
    queue: &std::os::unix::net::UnixDatagram,
    out: &[u8],
    to: &std::os::unix::net::SocketAddr,
) {
    let deadline = sys::monotonic_ms() + 5000;
    loop {
        match queue.send_to_addr(out, to) {
            Ok(_) => return,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock && sys::monotonic_ms() < deadline =>
            {
                sys::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                log::debug(&format!("task result not delivered: {e}"));
                return;
            }
        }
    }
}
