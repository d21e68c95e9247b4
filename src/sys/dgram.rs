//! Unix datagram socketpairs, and descriptors passed over them (`SCM_RIGHTS`).
//!
//! A socketpair has no name: nobody can reach it but the processes that inherit one of
//! its ends, so the task channel needs no rendezvous, no token and no credentials check.
//! Several processes share one end (every event worker holds the queue's sending end,
//! every task worker its receiving end), so no call here changes the descriptor's
//! `O_NONBLOCK` flag (shared by every holder): each send and receive says `MSG_DONTWAIT`
//! itself.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

fn nix_err(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A connected pair of unix datagram sockets, close-on-exec: (one end, the other).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::Datagram,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(nix_err)
}

/// Sends one datagram without waiting: `WouldBlock` when the receiver's queue is full,
/// `ConnectionRefused` when its end is closed.
pub fn send_now(sock: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    send_with(sock, buf, None)
}

/// Sends one datagram carrying a duplicate of `fd`, without waiting (as [`send_now`]).
/// `TooManyReferences` (`ETOOMANYREFS`) means too many descriptors are in flight for
/// this user: a full queue too, for the caller.
pub fn send_now_with_fd(sock: BorrowedFd<'_>, buf: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    send_with(sock, buf, Some(fd))
}

fn send_with(sock: BorrowedFd<'_>, buf: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<usize> {
    let iov = [IoSlice::new(buf)];
    let fds = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> = fds
        .as_ref()
        .map(|f| ControlMessage::ScmRights(f))
        .into_iter()
        .collect();
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    loop {
        match socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, flags, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map_err(nix_err),
        }
    }
}

/// Receives one datagram without waiting, with the descriptor it carried if any
/// (close-on-exec). A datagram cut short (bigger than `buf`) or carrying more than one
/// descriptor is reported as `InvalidData`, its descriptors closed. `WouldBlock` when
/// nothing is queued.
pub fn recv_now(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    let (n, truncated, received) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match socket::recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(nix_err(e)),
            Ok(msg) => {
                let mut received = Vec::new();
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            received.extend(fds);
                        }
                    }
                }
                let truncated = msg
                    .flags
                    .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                break (msg.bytes, truncated, received);
            }
        }
    };
    let mut owned: Vec<OwnedFd> = received
        .into_iter()
        // SAFETY: the kernel installed these descriptors in this process for this
        // message alone; nothing else refers to them, so each gets one owner here.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if truncated || owned.len() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram cut short or carrying more than one descriptor",
        ));
    }
    Ok((n, owned.pop()))
}

/// Waits until `sock` can take a datagram, or `timeout` passes; true when it can.
pub fn wait_writable(sock: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfd` is one live pollfd for the whole call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(pfd.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0)
}

/// Whether `fd` is a unix socket (what a task's reply descriptor must be).
pub fn is_socket(fd: BorrowedFd<'_>) -> bool {
    super::fs::fstat(fd).is_ok_and(|st| st.kind == libc::S_IFSOCK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_datagram_carries_one_descriptor_and_a_full_queue_does_not_block() {
        let (a, b) = socketpair().unwrap();
        let (ra, rb) = socketpair().unwrap();
        send_now_with_fd(a.as_fd(), b"task", rb.as_fd()).unwrap();
        let mut buf = [0u8; 64];
        let (n, fd) = recv_now(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"task");
        let fd = fd.expect("a descriptor");
        assert!(is_socket(fd.as_fd()));
        send_now(fd.as_fd(), b"reply").unwrap();
        let (n, none) = recv_now(ra.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], none.is_none()), (&b"reply"[..], true));
        assert_eq!(
            recv_now(ra.as_fd(), &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // Fill the receiver without reading: sends fail at once instead of waiting.
        let big = vec![7u8; 32 * 1024];
        let err = loop {
            if let Err(e) = send_now(fd.as_fd(), &big) {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(!wait_writable(fd.as_fd(), Duration::from_millis(10)).unwrap());
        drop(ra);
        // Another test's fork may hold `ra` open until its exec: look for a while.
        let started = std::time::Instant::now();
        let err = loop {
            let e = send_now(fd.as_fd(), b"x").unwrap_err();
            if e.kind() != io::ErrorKind::WouldBlock || started.elapsed().as_secs() > 5 {
                break e;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
    }
}
