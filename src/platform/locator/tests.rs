#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;

use tarsfork_tars::frame::{FrameSplitter, DEFAULT_MAX_FRAME};
use tarsfork_tars::framework::tars::{QueryFServant, QueryFServer};
use tarsfork_tars::packet::RequestPacket;
use tarsfork_tars::proxy::{Current, Dispatch, ServantError};

use super::*;

type Answer = (i32, Vec<EndpointF>, Vec<EndpointF>);

/// What the fake registry answers and what it was asked.
#[derive(Default)]
struct Book {
    answers: HashMap<String, (Vec<EndpointF>, Vec<EndpointF>)>,
    /// (function, id, set) per call.
    asked: Vec<(String, String, String)>,
}

struct FakeQuery(Arc<Mutex<Book>>);

impl FakeQuery {
    fn answer(&self, func: &str, id: &str, set: &str) -> Answer {
        let mut b = self.0.lock().unwrap();
        b.asked.push((func.into(), id.into(), set.into()));
        match b.answers.get(id) {
            Some((a, i)) => (0, a.clone(), i.clone()),
            None => (0, Vec::new(), Vec::new()),
        }
    }
}

impl QueryFServant for FakeQuery {
    fn find_object_by_id(
        &mut self,
        _: &Current<'_>,
        id: &str,
    ) -> Result<Vec<EndpointF>, ServantError> {
        Ok(self.answer("findObjectById", id, "").1)
    }

    fn find_object_by_id4_any(
        &mut self,
        _: &Current<'_>,
        id: &str,
    ) -> Result<Answer, ServantError> {
        Ok(self.answer("findObjectById4Any", id, ""))
    }

    fn find_object_by_id4_all(
        &mut self,
        _: &Current<'_>,
        id: &str,
    ) -> Result<Answer, ServantError> {
        Ok(self.answer("findObjectById4All", id, ""))
    }

    fn find_object_by_id_in_same_group(
        &mut self,
        _: &Current<'_>,
        id: &str,
    ) -> Result<Answer, ServantError> {
        Ok(self.answer("findObjectByIdInSameGroup", id, ""))
    }

    fn find_object_by_id_in_same_station(
        &mut self,
        _: &Current<'_>,
        id: &str,
        station: &str,
    ) -> Result<Answer, ServantError> {
        Ok(self.answer("findObjectByIdInSameStation", id, station))
    }

    fn find_object_by_id_in_same_set(
        &mut self,
        _: &Current<'_>,
        id: &str,
        set: &str,
    ) -> Result<Answer, ServantError> {
        Ok(self.answer("findObjectByIdInSameSet", id, set))
    }
}

/// A fake registry on a loopback port, served by a thread until stopped or dropped.
struct FakeRegistry {
    port: u16,
    book: Arc<Mutex<Book>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let book = Arc::new(Mutex::new(Book::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (book, stop) = (book.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut server = QueryFServer(FakeQuery(book));
                let mut conns = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((s, _)) = listener.accept() {
                        s.set_nonblocking(true).unwrap();
                        conns.push((s, FrameSplitter::new(DEFAULT_MAX_FRAME)));
                    }
                    for (s, splitter) in &mut conns {
                        let _ = splitter.read_from(s);
                        while let Ok(Some(body)) = splitter.next_frame() {
                            let request = RequestPacket::decode(body).unwrap();
                            let reply = server.dispatch(&request).encode_frame().unwrap();
                            if let Some(frame) = reply {
                                s.set_nonblocking(false).unwrap();
                                s.write_all(&frame).unwrap();
                                s.set_nonblocking(true).unwrap();
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        FakeRegistry {
            port,
            book,
            stop,
            thread: Some(thread),
        }
    }

    /// The registry lists `active` (port, istcp) and `inactive` ports for `id`.
    fn set(&self, id: &str, active: &[(u16, i32)], inactive: &[u16]) {
        let ep = |port: u16, istcp: i32| EndpointF {
            host: "127.0.0.1".into(),
            port: i32::from(port),
            timeout: 3000,
            istcp,
            ..EndpointF::default()
        };
        self.book.lock().unwrap().answers.insert(
            id.into(),
            (
                active.iter().map(|(p, t)| ep(*p, *t)).collect(),
                inactive.iter().map(|p| ep(*p, 1)).collect(),
            ),
        );
    }

    fn asked(&self) -> Vec<(String, String, String)> {
        self.book.lock().unwrap().asked.clone()
    }

    /// Stops serving: the port then refuses connections.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn settings(registry_port: Option<u16>) -> Settings {
    let mut s = Settings::embedded_default();
    s.client.locator = registry_port.map(|p| {
        ObjectRef::parse(&format!(
            "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p {p}"
        ))
        .unwrap()
    });
    s.client.refresh_endpoint_interval = MIN_REFRESH;
    s.client.sync_invoke_timeout = Duration::from_millis(500);
    s
}

fn ports(set: &EndpointSet) -> Vec<(u16, bool)> {
    set.status()
        .iter()
        .map(|e| (e.endpoint.port, e.active))
        .collect()
}

const OBJ: &str = "TestApp.HelloServer.HelloObj";

#[test]
fn a_bare_name_resolves_through_find_object_by_id4_any_and_is_cached() {
    let reg = FakeRegistry::start();
    reg.set(OBJ, &[(1001, 1), (1002, 1), (1003, 0)], &[1004]);
    let mut loc = Locator::new(&settings(Some(reg.port)));
    let set = loc.endpoints(&ObjectRef::parse(OBJ).unwrap()).unwrap();
    // The udp endpoint (istcp 0) is left out; the inactive one is kept.
    assert_eq!(ports(&set), vec![(1001, true), (1002, true), (1004, false)]);
    let again = loc.named_proxy(OBJ).unwrap();
    assert!(Arc::ptr_eq(again.endpoints(), &set), "cached per process");
    assert_eq!(
        reg.asked(),
        vec![(
            "findObjectById4Any".to_string(),
            OBJ.to_string(),
            String::new()
        )]
    );
}

#[test]
fn with_enableset_the_set_aware_query_names_the_set() {
    let reg = FakeRegistry::start();
    reg.set(OBJ, &[(1001, 1)], &[]);
    let mut s = settings(Some(reg.port));
    s.enableset = true;
    s.setdivision = Some("app.sz.1".into());
    let mut loc = Locator::new(&s);
    loc.named_proxy(OBJ).unwrap();
    assert_eq!(
        reg.asked(),
        vec![(
            "findObjectByIdInSameSet".to_string(),
            OBJ.to_string(),
            "app.sz.1".to_string()
        )]
    );
}

#[test]
fn refresh_takes_the_new_list_and_a_down_registry_leaves_the_cached_one() {
    let mut reg = FakeRegistry::start();
    reg.set(OBJ, &[(1001, 1)], &[]);
    let mut loc = Locator::new(&settings(Some(reg.port)));
    let set = loc.endpoints(&ObjectRef::parse(OBJ).unwrap()).unwrap();
    assert!(!set.refresh_if_due(), "not due before the interval");
    reg.set(OBJ, &[(1001, 1), (1002, 1)], &[]);
    std::thread::sleep(MIN_REFRESH);
    assert!(set.refresh_if_due());
    assert_eq!(ports(&set), vec![(1001, true), (1002, true)]);

    // An answer without active endpoints is not taken.
    reg.set(OBJ, &[], &[1001]);
    std::thread::sleep(MIN_REFRESH);
    assert!(set.refresh_if_due());
    assert_eq!(ports(&set), vec![(1001, true), (1002, true)]);

    reg.stop();
    std::thread::sleep(MIN_REFRESH);
    assert!(set.refresh_if_due());
    assert_eq!(ports(&set), vec![(1001, true), (1002, true)]);
    let cached = loc.endpoints(&ObjectRef::parse(OBJ).unwrap()).unwrap();
    assert!(Arc::ptr_eq(&cached, &set));
}

#[test]
fn written_out_endpoints_need_no_registry_and_keep_only_tcp() {
    let mut loc = Locator::new(&settings(None));
    let text =
        format!("{OBJ}@tcp -h 127.0.0.1 -p 2001:udp -h 127.0.0.1 -p 2002:tcp -h 127.0.0.1 -p 2003");
    let set = loc.endpoints(&ObjectRef::parse(&text).unwrap()).unwrap();
    assert_eq!(ports(&set), vec![(2001, true), (2003, true)]);
    assert!(!set.is_weighted());

    let text = format!("{OBJ}@tcp -h 127.0.0.1 -p 2001 -v 1 -w 30:tcp -h 127.0.0.1 -p 2003 -v 1");
    let weighted = loc.endpoints(&ObjectRef::parse(&text).unwrap()).unwrap();
    assert!(weighted.is_weighted());
    let weights: Vec<Option<u32>> = weighted
        .status()
        .iter()
        .map(|e| e.endpoint.weight)
        .collect();
    assert_eq!(weights, vec![Some(30), Some(100)]);

    match loc.named_proxy(&format!("{OBJ}@ssl -h 127.0.0.1 -p 2004")) {
        Err(LocateError::NoEndpoint { skipped: 1, .. }) => {}
        other => panic!("want no tcp endpoint, got {other:?}"),
    }
}

#[test]
fn unresolvable_names_are_clear_errors() {
    let mut loc = Locator::new(&settings(None));
    assert!(matches!(
        loc.named_proxy(OBJ),
        Err(LocateError::NoLocator { .. })
    ));
    assert!(matches!(
        loc.named_proxy("bad name@"),
        Err(LocateError::BadObject { .. })
    ));

    let reg = FakeRegistry::start();
    let mut loc = Locator::new(&settings(Some(reg.port)));
    let nobody = "TestApp.Nobody.NoObj";
    match loc.named_proxy(nobody) {
        Err(e @ LocateError::NoEndpoint { .. }) => assert!(e.to_string().contains(nobody)),
        other => panic!("want no endpoint, got {other:?}"),
    }
    // Asked again only after a while.
    assert!(loc.named_proxy(nobody).is_err());
    assert_eq!(reg.asked().len(), 1);

    // A registry port that refuses connections (bound, not listening).
    let refusing =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    refusing
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = refusing.local_addr().unwrap().as_socket().unwrap().port();
    let mut loc = Locator::new(&settings(Some(port)));
    match loc.named_proxy(OBJ) {
        Err(LocateError::Registry { message, .. }) => {
            assert!(message.contains("connect"), "{message}")
        }
        other => panic!("want a registry error, got {other:?}"),
    }
}
