//! A fake Tars servant for tests: any tars2rs-generated `XxxServer` (a `Dispatch`)
//! served on a free loopback port, one thread per connection, until dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tarsfork_tars::frame::FrameSplitter;
use tarsfork_tars::packet::RequestPacket;
use tarsfork_tars::proxy::Dispatch;

/// A running fake; stops accepting and serving when dropped.
pub struct FakeServant {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeServant {
    pub fn start(servant: Arc<Mutex<dyn Dispatch + Send>>) -> FakeServant {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (sv, st) = (servant.clone(), st.clone());
                        std::thread::spawn(move || serve(conn, sv, st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeServant { port, stop }
    }
}

impl Drop for FakeServant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: TcpStream, servant: Arc<Mutex<dyn Dispatch + Send>>, stop: Arc<AtomicBool>) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut frames = FrameSplitter::new(16 << 20);
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => frames.feed(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => return,
        }
        while let Ok(Some(frame)) = frames.next_frame() {
            let Ok(req) = RequestPacket::decode(frame) else {
                return;
            };
            let reply = servant.lock().map(|mut s| s.dispatch(&req));
            if let Ok(reply) = reply {
                if let Ok(Some(bytes)) = reply.encode_frame() {
                    if conn.write_all(&bytes).is_err() {
                        return;
                    }
                }
            }
        }
    }
}
