//! Tars RPC on `protocol=tars` adapters: length-prefixed frames, each a request packet
//! (iVersion 1 or 3, pipelined, oneway) for the servant it names. A call for a servant
//! this server does not have is answered -4 here; the servant's generated dispatcher
//! answers -3 (no such function) and -1 (undecodable arguments) itself. A garbage or
//! oversized frame closes that one connection, after the answers already queued.
//! Draining needs nothing of its own: a Tars connection finishes what it was sent.

use std::cell::RefCell;
use std::rc::Rc;

use tarsfork_tars::frame::{FrameSplitter, DEFAULT_MAX_FRAME};
use tarsfork_tars::packet::{
    RequestPacket, ResponsePacket, TupData, TARSSERVERNOSERVANTERR, VERSION_TARS,
};
use tarsfork_tars::proxy::{Dispatch, Reply};

use crate::log;
use crate::platform::callstats::Call;
use crate::process::Shared;
use crate::service::Service;
use crate::settings::Protocol as Kind;

use super::protocol::{Host, Opener, Output, Protocol, Switch};

/// Largest Tars frame accepted; a longer one closes the connection.
const MAX_FRAME: usize = DEFAULT_MAX_FRAME;

/// What every Tars connection of a worker shares.
struct Servants {
    /// This worker's servants by full name (`App.Server.Obj`).
    by_name: Vec<(String, Box<dyn Dispatch>)>,
    /// The request being served, reused from one request to the next: its strings and
    /// buffer keep their allocations.
    request: RequestPacket,
}

/// One Tars connection.
struct Tars {
    frames: FrameSplitter,
    servants: Rc<RefCell<Servants>>,
}

/// The opener of Tars connections, with this worker's servants made from the
/// service's factories.
pub(super) fn opener(shared: &Shared, service: &Service) -> Opener {
    let servants = Rc::new(RefCell::new(Servants {
        by_name: make_servants(shared, service),
        request: RequestPacket::default(),
    }));
    Rc::new(move || Box::new(Tars::new(&servants)))
}

impl Tars {
    fn new(servants: &Rc<RefCell<Servants>>) -> Self {
        Tars {
            frames: FrameSplitter::new(MAX_FRAME),
            servants: Rc::clone(servants),
        }
    }
}

impl Protocol for Tars {
    fn on_input(
        &mut self,
        input: &[u8],
        out: &mut Output,
        host: &mut Host<'_, '_>,
    ) -> Option<Switch> {
        if !input.is_empty() {
            self.frames.feed(input);
        }
        // Not borrowed elsewhere while a connection is served: the worker serves one
        // connection at a time and servants cannot reach the worker.
        let mut servants = self.servants.borrow_mut();
        let Servants { by_name, request } = &mut *servants;
        while !out.is_closing() && !out.is_full() {
            match self.frames.next_frame() {
                Ok(Some(frame)) => {
                    if let Err(e) = request.decode_reusing(frame) {
                        log::debug(&format!(
                            "closing a Tars connection: bad request packet: {e}"
                        ));
                        out.close();
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::debug(&format!("closing a Tars connection: {e}"));
                    out.close();
                    break;
                }
            }
            let started = host.begin();
            // A handful of servants: comparing bytes beats hashing every name.
            let servant = by_name
                .iter_mut()
                .find(|(name, _)| name.as_bytes() == request.servant_name.as_bytes());
            let reply = match servant {
                Some((_, servant)) => servant.dispatch(request),
                None => no_such_servant(request),
            };
            // Draining changes nothing for Tars: every request sent is answered.
            host.end(started, || {
                Call::tars(
                    request.version,
                    request.is_oneway(),
                    &request.func_name,
                    reply.ret().unwrap_or(0),
                )
            });
            if let Err(e) = reply.append_frame(out.buf()) {
                log::error(&format!(
                    "cannot encode the reply to {}.{}: {e}",
                    request.servant_name, request.func_name
                ));
            }
        }
        None
    }

    fn is_idle(&self) -> bool {
        !self.frames.has_partial()
    }
}

/// Each Tars adapter's servant, made for this worker from the service's factories.
fn make_servants(shared: &Shared, service: &Service) -> Vec<(String, Box<dyn Dispatch>)> {
    let mut out: Vec<(String, Box<dyn Dispatch>)> = Vec::new();
    for a in shared
        .settings
        .adapters
        .iter()
        .filter(|a| a.protocol == Kind::Tars)
    {
        let object = a.servant.rsplit('.').next().unwrap_or(&a.servant);
        match service.servants.iter().find(|(name, _)| name == object) {
            Some((_, make)) => {
                if !out.iter().any(|(name, _)| *name == a.servant) {
                    out.push((a.servant.clone(), make()));
                }
            }
            None => log::warn(&format!(
                "no servant registered for object {object} (adapter {}); its calls get {TARSSERVERNOSERVANTERR}",
                a.name
            )),
        }
    }
    out
}

/// The reply to a call for a servant this server does not have (iRet -4), in the
/// request's encoding: a ResponsePacket for iVersion 1, a TUP packet with the code in
/// its status otherwise; nothing for a oneway call.
fn no_such_servant(request: &RequestPacket) -> Reply {
    if request.is_oneway() {
        return Reply::None;
    }
    let desc = format!("no servant {:?} here", request.servant_name);
    if request.version == VERSION_TARS {
        let mut r = ResponsePacket::reply_to(request, TARSSERVERNOSERVANTERR, Vec::new());
        r.result_desc = Some(desc);
        Reply::Tars(r)
    } else {
        Reply::Tup(request.tup_reply(TARSSERVERNOSERVANTERR, &desc, &TupData::new()))
    }
}

#[cfg(test)]
mod tests {
    use tarsfork_tars::codec::Bytes;
    use tarsfork_tars::packet::{PACKET_ONEWAY, VERSION_TUP};

    use super::*;
    use crate::worker::tests::{app, hello, host};

    /// A Tars connection of a worker with one servant, `App.Server.Obj`, that answers
    /// every call with iRet 7.
    fn conn() -> Tars {
        struct Seven;
        impl Dispatch for Seven {
            fn dispatch(&mut self, request: &RequestPacket) -> Reply {
                Reply::Tars(ResponsePacket::reply_to(request, 7, Vec::new()))
            }
        }
        let servants = Rc::new(RefCell::new(Servants {
            by_name: vec![("App.Server.Obj".to_string(), Box::new(Seven))],
            request: RequestPacket::default(),
        }));
        Tars::new(&servants)
    }

    fn call(version: i16, servant: &str, id: i32) -> RequestPacket {
        RequestPacket {
            version,
            request_id: id,
            servant_name: servant.into(),
            func_name: "hello".into(),
            buffer: Bytes(Vec::new()),
            ..RequestPacket::default()
        }
    }

    /// Serves `frames` (sent in one read) and returns the answers' bodies.
    fn serve(frames: &[u8]) -> (Vec<Vec<u8>>, Output) {
        let service = hello();
        let mut app = app(&service, 0);
        let mut out = Output::default();
        assert!(conn()
            .on_input(frames, &mut out, &mut host(&mut app))
            .is_none());
        let mut answers = Vec::new();
        let mut splitter = FrameSplitter::new(MAX_FRAME);
        splitter.feed(out.buf());
        while let Some(body) = splitter.next_frame().unwrap() {
            answers.push(body.to_vec());
        }
        assert!(!splitter.has_partial());
        (answers, out)
    }

    #[test]
    fn an_unknown_servant_is_answered_minus_4_in_v1_and_v3_and_known_ones_are_dispatched() {
        let mut frames = Vec::new();
        call(VERSION_TARS, "App.Server.Nope", 1)
            .append_frame(&mut frames)
            .unwrap();
        call(VERSION_TUP, "App.Server.Nope", 2)
            .append_frame(&mut frames)
            .unwrap();
        call(VERSION_TARS, "App.Server.Obj", 3)
            .append_frame(&mut frames)
            .unwrap();
        let (answers, out) = serve(&frames);
        assert_eq!(answers.len(), 3);
        let v1 = ResponsePacket::decode(&answers[0]).unwrap();
        assert_eq!((v1.request_id, v1.ret), (1, TARSSERVERNOSERVANTERR));
        assert!(v1.result_desc.unwrap().contains("App.Server.Nope"));
        let v3 = RequestPacket::decode(&answers[1]).unwrap();
        assert_eq!((v3.version, v3.request_id), (VERSION_TUP, 2));
        let (code, desc) = v3.tup_result().unwrap();
        assert_eq!(code, TARSSERVERNOSERVANTERR);
        assert!(desc.contains("App.Server.Nope"));
        let known = ResponsePacket::decode(&answers[2]).unwrap();
        assert_eq!((known.request_id, known.ret), (3, 7));
        assert!(!out.is_closing());
    }

    #[test]
    fn a_oneway_call_for_an_unknown_servant_gets_no_answer() {
        let mut oneway = call(VERSION_TARS, "App.Server.Nope", 1);
        oneway.packet_type = PACKET_ONEWAY;
        let mut frames = Vec::new();
        oneway.append_frame(&mut frames).unwrap();
        call(VERSION_TARS, "App.Server.Obj", 2)
            .append_frame(&mut frames)
            .unwrap();
        let (answers, _) = serve(&frames);
        assert_eq!(answers.len(), 1);
        assert_eq!(ResponsePacket::decode(&answers[0]).unwrap().request_id, 2);
    }

    #[test]
    fn a_bad_frame_closes_after_the_answers_before_it() {
        let mut frames = Vec::new();
        call(VERSION_TARS, "App.Server.Obj", 1)
            .append_frame(&mut frames)
            .unwrap();
        // A length below the 4-byte prefix itself.
        frames.extend_from_slice(&[0, 0, 0, 2]);
        let (answers, out) = serve(&frames);
        assert_eq!(answers.len(), 1);
        assert!(out.is_closing());
    }

    #[test]
    fn a_partial_frame_is_not_idle_and_is_answered_once_complete() {
        let service = hello();
        let mut app = app(&service, 0);
        let mut frames = Vec::new();
        call(VERSION_TARS, "App.Server.Obj", 1)
            .append_frame(&mut frames)
            .unwrap();
        let (head, tail) = frames.split_at(frames.len() / 2);
        let mut tars = conn();
        let mut out = Output::default();
        assert!(tars.is_idle());
        tars.on_input(head, &mut out, &mut host(&mut app));
        assert!(!tars.is_idle());
        assert!(out.buf().is_empty());
        tars.on_input(tail, &mut out, &mut host(&mut app));
        assert!(tars.is_idle());
        assert!(!out.buf().is_empty());
    }
}
