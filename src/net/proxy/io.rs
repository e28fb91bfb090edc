//! Waiting on a socket without ever waiting past the stop pipe or a deadline, and the few reads
//! and writes built on it. Sockets are non-blocking; a read or write is tried after poll(2) says
//! it can go on, and `EAGAIN` just means poll again.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::SendFlags;

/// Why a wait, read or write did not complete.
#[derive(Debug)]
pub(super) enum Halt {
    /// The proxy is stopping.
    Stopped,
    /// The deadline passed.
    TimedOut,
    /// The peer closed before the data was complete.
    Closed,
    Failed(std::io::Error),
}

/// poll(2) on `fds` up to `deadline` (None: without one), retried on EINTR; Ok(false) when the
/// deadline passed.
pub(super) fn poll(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> std::io::Result<bool> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                Some(Timespec::try_from(left).unwrap_or(Timespec {
                    tv_sec: i64::MAX,
                    tv_nsec: 0,
                }))
            }
        };
        match rustix::event::poll(fds, timeout.as_ref()) {
            Ok(0) if deadline.is_some() => {}
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until `fd` has one of `events` (or an error or hang-up, which the next read or write
/// will tell), the proxy stops, or the deadline passes.
pub(super) fn wait(
    stop: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> Result<(), Halt> {
    let mut fds = [
        PollFd::from_borrowed_fd(stop, PollFlags::IN),
        PollFd::from_borrowed_fd(fd, events),
    ];
    match poll(&mut fds, deadline) {
        Err(e) => Err(Halt::Failed(e)),
        Ok(false) => Err(Halt::TimedOut),
        Ok(true) if !fds[0].revents().is_empty() => Err(Halt::Stopped),
        Ok(true) => Ok(()),
    }
}

/// Whether the proxy is stopping, without waiting.
pub(super) fn stopped(stop: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::from_borrowed_fd(stop, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(n) if n > 0)
}

/// Sleeps `time`, or less if the proxy stops.
pub(super) fn pause(stop: BorrowedFd<'_>, time: Duration) {
    let mut fds = [PollFd::from_borrowed_fd(stop, PollFlags::IN)];
    let _ = poll(&mut fds, Some(Instant::now() + time));
}

/// Reads what is there (at least one byte, or 0 at end of stream).
pub(super) fn read_some(
    stop: BorrowedFd<'_>,
    s: &TcpStream,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<usize, Halt> {
    loop {
        match (&*s).read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if retry(&e) => wait(stop, s.as_fd(), PollFlags::IN, deadline)?,
            Err(e) => return Err(Halt::Failed(e)),
        }
    }
}

/// Reads exactly `buf.len()` bytes: no byte more, so that nothing the client sends after a
/// SOCKS5 request is taken from the stream.
pub(super) fn read_exact(
    stop: BorrowedFd<'_>,
    s: &TcpStream,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<(), Halt> {
    let mut at = 0;
    while at < buf.len() {
        match read_some(stop, s, &mut buf[at..], deadline)? {
            0 => return Err(Halt::Closed),
            n => at += n,
        }
    }
    Ok(())
}

/// send(2) with MSG_NOSIGNAL: a peer gone is EPIPE, never SIGPIPE.
pub(super) fn send(s: impl AsFd, data: &[u8]) -> std::io::Result<usize> {
    Ok(rustix::net::send(s, data, SendFlags::NOSIGNAL)?)
}

/// Writes all of `data`.
pub(super) fn write_all(
    stop: BorrowedFd<'_>,
    s: &TcpStream,
    mut data: &[u8],
    deadline: Option<Instant>,
) -> Result<(), Halt> {
    while !data.is_empty() {
        match send(s, data) {
            Ok(n) => data = &data[n..],
            Err(e) if retry(&e) => wait(stop, s.as_fd(), PollFlags::OUT, deadline)?,
            Err(e) => return Err(Halt::Failed(e)),
        }
    }
    Ok(())
}

/// Whether an error only means "not now".
pub(super) fn retry(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

/// How long [`finish`] reads what the client still sends before closing.
const LINGER: Duration = Duration::from_secs(1);

/// Ends a client connection after the last answer: shuts down the sending side, then reads and
/// drops what the client still sends for up to a second. Closing a socket with unread data
/// sends a reset, which can make the client lose the answer (a 403 after a request body, say).
pub(super) fn finish(stop: BorrowedFd<'_>, s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
    let deadline = Some(Instant::now() + LINGER);
    let mut sink = [0u8; 4096];
    let mut total = 0usize;
    while total < (1 << 20) {
        match read_some(stop, s, &mut sink, deadline) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}
