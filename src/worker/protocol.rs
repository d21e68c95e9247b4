//! The seam between the event worker and the protocols it serves.
//!
//! The worker owns sockets, the connection table, output flushing, timeouts and the
//! drain; a [`Protocol`] owns one connection's input state and turns bytes into
//! answers. The worker never names a protocol: an adapter's `protocol=` setting picks
//! an [`Opener`] in `opener`, the one registration point, and every later call goes
//! through the trait.
//!
//! What the seam admits beyond HTTP and Tars:
//! - A protocol switch (a WebSocket upgrade): [`Protocol::on_input`] returns a
//!   [`Switch`] with the next protocol object and the bytes that arrived after the
//!   handshake; [`switching`] installs it and hands those bytes over in the same turn.
//! - Output from outside a read (a push from another worker): output is the
//!   connection's [`Output`] queue, not a return value of a read, and every protocol
//!   call (on input, on drain, on a deadline) goes through one path that lends the
//!   [`Host`], installs switches and then writes the queue (`Conn::call` outside a
//!   read); a push is one more such call.
//! - Deadlines: [`Protocol::deadline`] asks for a check, which the worker's sweep
//!   turns into [`Protocol::on_deadline`].

use std::rc::Rc;
use std::time::SystemTime;

use crate::platform::callstats::Call;
use crate::process::Shared;
use crate::service::{Ctx, Service};
use crate::settings;

use super::requests::Requests;

/// Unsent output past this makes a protocol stop serving and the worker stop reading
/// from the client until the client has read some (backpressure).
const MAX_OUTPUT: usize = 1 << 20;

/// One connection's protocol state. Implementations never touch the socket: they get
/// the bytes read and queue what goes back into [`Output`].
pub(crate) trait Protocol {
    /// Serves `input`, the bytes just read (empty: serve what is already buffered, e.g.
    /// after output backpressure paused reading). Answers go into `out`; a protocol
    /// stops serving once `out` [`is_full`](Output::is_full) or
    /// [`is_closing`](Output::is_closing) and is called again later. `Some(Switch)`: the
    /// connection continues under another protocol from now on.
    fn on_input(
        &mut self,
        input: &[u8],
        out: &mut Output,
        host: &mut Host<'_, '_>,
    ) -> Option<Switch>;

    /// True when closing the connection now cannot cut a request: nothing of a next
    /// one has arrived and none is being answered. A draining worker closes idle
    /// connections only at such a moment.
    fn is_idle(&self) -> bool;

    /// The worker began draining. HTTP and Tars need nothing here: HTTP answers its
    /// next request with `Connection: close` (told by [`Host::end`]); Tars finishes
    /// what it was sent. A protocol whose peer must be told to go (WebSocket's close
    /// 1001) writes that here or arms a [`Protocol::deadline`].
    fn on_drain(&mut self, _out: &mut Output, _host: &mut Host<'_, '_>) {}

    /// When this connection next needs [`Protocol::on_deadline`] (monotonic ms), e.g.
    /// a request head that must be complete by then. `None`: no deadline. Checked by
    /// the worker's sweep, so it fires up to one sweep period late.
    fn deadline(&self) -> Option<i64> {
        None
    }

    /// The time returned by [`Protocol::deadline`] has come: answer (e.g. a 408) or
    /// [`Output::close`].
    fn on_deadline(&mut self, _out: &mut Output, _host: &mut Host<'_, '_>) {}
}

/// A connection changing protocol (e.g. HTTP → WebSocket after a `101`).
pub(crate) struct Switch {
    /// The protocol that serves the connection from now on.
    pub next: Box<dyn Protocol>,
    /// Bytes the old protocol received after its last message: the new one's first
    /// input.
    pub leftover: Vec<u8>,
}

/// Runs `serve` (one call of the connection's protocol) and installs every switch it
/// asks for, handing each new protocol the bytes its predecessor left, in this turn.
pub(crate) fn switching(
    slot: &mut Box<dyn Protocol>,
    out: &mut Output,
    host: &mut Host<'_, '_>,
    serve: impl FnOnce(&mut dyn Protocol, &mut Output, &mut Host<'_, '_>) -> Option<Switch>,
) {
    let mut next = serve(slot.as_mut(), out, host);
    while let Some(Switch {
        next: protocol,
        leftover,
    }) = next
    {
        *slot = protocol;
        next = slot.on_input(&leftover, out, host);
    }
}

/// A connection's output queue: protocols append, the worker writes it to the socket.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Queued bytes; `buf[written..]` is still to send.
    pub(super) buf: Vec<u8>,
    pub(super) written: usize,
    closing: bool,
}

impl Output {
    /// Where answers are appended.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Send what is queued, then close the connection; nothing more is read or served.
    pub(crate) fn close(&mut self) {
        self.closing = true;
    }

    /// True once [`Output::close`] was called.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    /// True when so much is queued that serving more must wait for the client to read.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() > MAX_OUTPUT
    }

    /// True when everything queued has been written.
    pub(crate) fn is_sent(&self) -> bool {
        self.written == self.buf.len()
    }
}

/// What the worker lends a protocol for one call: the application, the clock and the
/// request accounting, and which client on which port the connection is.
pub(crate) struct Host<'h, 'w> {
    /// The worker's application state (the service, its context, the accounting).
    pub(super) app: &'h mut App<'w>,
    /// The client's IP.
    pub(super) peer: &'h str,
    /// The adapter's port.
    pub(super) port: i32,
}

/// The part of the worker that protocols use, borrowed as a whole by [`Host`].
pub(crate) struct App<'w> {
    /// The application's callbacks.
    pub(super) service: &'w Service,
    /// The context handed to the application's callbacks.
    pub(super) ctx: Ctx,
    /// The request accounting and the clock.
    pub(super) requests: Requests<'w>,
    /// The wall clock, read once per loop turn (for `Date` headers and the like).
    pub(super) wall: SystemTime,
}

impl<'w> Host<'_, 'w> {
    /// The application's callbacks.
    pub(crate) fn service(&self) -> &'w Service {
        self.app.service
    }

    /// The context for the application's callbacks.
    pub(crate) fn ctx(&mut self) -> &mut Ctx {
        &mut self.app.ctx
    }

    /// The wall clock as of this loop turn.
    pub(crate) fn wall(&self) -> SystemTime {
        self.app.wall
    }

    /// A request starts; returns its start time for [`Host::end`].
    pub(crate) fn begin(&mut self) -> i64 {
        self.app.requests.begin()
    }

    /// The request begun at `started` was served; `call` describes it for the call
    /// statistics (built only when they are on). True when the worker is draining or
    /// has served its `max_request`: answer this one, then let the connection close.
    pub(crate) fn end<'c>(&mut self, started: i64, call: impl FnOnce() -> Call<'c>) -> bool {
        self.app.requests.end(started, self.peer, self.port, call)
    }
}

/// Makes the protocol object of each new connection on an adapter (shared by the
/// adapters of one protocol).
pub(crate) type Opener = Rc<dyn Fn() -> Box<dyn Protocol>>;

/// The registration of every protocol: the opener for adapters with `protocol=kind`.
/// A new protocol is one module plus one arm here; the match has no catch-all, so a
/// new `settings::Protocol` cannot be served as another.
fn opener(kind: settings::Protocol, shared: &Shared, service: &Service) -> Opener {
    match kind {
        settings::Protocol::Tars => super::tars::opener(shared, service),
        settings::Protocol::NotTars => super::http::opener(shared.http_limits),
    }
}

/// The openers of one worker, each made once, on the first adapter of its protocol:
/// per-worker protocol state (the Tars servants, the HTTP `Date`) lives in them and is
/// shared by every adapter of that protocol.
pub(super) struct Openers<'s> {
    shared: &'s Shared,
    service: &'s Service,
    made: Vec<(settings::Protocol, Opener)>,
}

impl<'s> Openers<'s> {
    /// No opener made yet.
    pub(super) fn new(shared: &'s Shared, service: &'s Service) -> Self {
        Openers {
            shared,
            service,
            made: Vec::new(),
        }
    }

    /// The opener for adapters with `protocol=kind`.
    pub(super) fn get(&mut self, kind: settings::Protocol) -> Opener {
        if let Some((_, open)) = self.made.iter().find(|(k, _)| *k == kind) {
            return Rc::clone(open);
        }
        let open = opener(kind, self.shared, self.service);
        self.made.push((kind, Rc::clone(&open)));
        open
    }
}
