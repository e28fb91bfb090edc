//! Relaying bytes both ways between a client and its upstream, until both directions ended, an
//! error, or the proxy stops. Each direction has one fixed buffer; a side is read only when its
//! buffer is empty, so a slow reader slows its writer (no unbounded buffering). An end of stream
//! from one side becomes a shutdown(SHUT_WR) of the other once the buffer is written, and the
//! other direction goes on: half-closed connections work.

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::os::fd::BorrowedFd;

use rustix::event::{PollFd, PollFlags};

use super::io;

/// Bytes buffered per direction.
const BUF: usize = 64 * 1024;

/// When the relay ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// When both directions ended (a CONNECT or SOCKS5 tunnel).
    Tunnel,
    /// As soon as the upstream's response is complete (plain HTTP: one request per connection).
    UntilUpstreamEnds,
}

/// One direction: bytes read from one socket, waiting to be written to the other.
struct Flow {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The source sent its end of stream.
    eof: bool,
    /// The end of stream was passed on.
    shut: bool,
}

impl Flow {
    fn new(initial: &[u8]) -> Flow {
        let mut buf = vec![0; BUF.max(initial.len())];
        buf[..initial.len()].copy_from_slice(initial);
        Flow {
            buf,
            start: 0,
            end: initial.len(),
            eof: false,
            shut: false,
        }
    }

    fn pending(&self) -> bool {
        self.start < self.end
    }

    fn wants_read(&self) -> bool {
        !self.eof && !self.pending()
    }

    fn done(&self) -> bool {
        self.shut
    }

    /// Reads from `from` into the empty buffer. Err ends the relay.
    fn fill(&mut self, from: &TcpStream) -> Result<(), ()> {
        self.start = 0;
        self.end = 0;
        match (&*from).read(&mut self.buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.end = n,
            Err(e) if io::retry(&e) => {}
            Err(_) => return Err(()),
        }
        Ok(())
    }

    /// Writes what is buffered to `to`, and passes an end of stream on once all is written.
    fn flush(&mut self, to: &TcpStream) -> Result<(), ()> {
        while self.pending() {
            match io::send(to, &self.buf[self.start..self.end]) {
                Ok(n) => self.start += n,
                Err(e) if io::retry(&e) => return Ok(()),
                Err(_) => return Err(()),
            }
        }
        if self.eof && !self.shut {
            self.shut = true;
            let _ = to.shutdown(Shutdown::Write);
        }
        Ok(())
    }
}

/// Relays between `client` and `upstream`. `to_client` and `to_upstream` are written first
/// (a CONNECT's answer, a rewritten request head and the bytes that came after it). Errors end
/// the relay quietly; the caller closes both sockets.
pub(super) fn relay(
    stop: BorrowedFd<'_>,
    client: &TcpStream,
    upstream: &TcpStream,
    to_client: &[u8],
    to_upstream: &[u8],
    mode: Mode,
) {
    let mut up = Flow::new(to_upstream);
    let mut down = Flow::new(to_client);
    let _ = run(stop, client, upstream, &mut up, &mut down, mode);
}

fn run(
    stop: BorrowedFd<'_>,
    client: &TcpStream,
    upstream: &TcpStream,
    up: &mut Flow,
    down: &mut Flow,
    mode: Mode,
) -> Result<(), ()> {
    up.flush(upstream)?;
    down.flush(client)?;
    loop {
        if up.done() && down.done() {
            return Ok(());
        }
        if mode == Mode::UntilUpstreamEnds && down.done() {
            return Ok(());
        }
        let interest = |read: &Flow, write: &Flow| {
            let mut events = PollFlags::empty();
            if read.wants_read() {
                events |= PollFlags::IN;
            }
            if write.pending() {
                events |= PollFlags::OUT;
            }
            events
        };
        let client_events = interest(up, down);
        let upstream_events = interest(down, up);
        // A side with nothing to wait for is left out: its hang-up would wake poll for nothing.
        let mut fds = [
            PollFd::from_borrowed_fd(stop, PollFlags::IN),
            PollFd::from_borrowed_fd(stop, PollFlags::IN),
            PollFd::from_borrowed_fd(stop, PollFlags::IN),
        ];
        let mut n = 1;
        if !client_events.is_empty() {
            fds[n] = PollFd::new(client, client_events);
            n += 1;
        }
        if !upstream_events.is_empty() {
            fds[n] = PollFd::new(upstream, upstream_events);
            n += 1;
        }
        if n == 1 {
            // Nothing left to do on either side, yet not done: cannot happen; end rather than spin.
            return Ok(());
        }
        let fds = &mut fds[..n];
        io::poll(fds, None).map_err(|_| ())?;
        if !fds[0].revents().is_empty() {
            return Err(());
        }
        let mut rest = fds[1..].iter().map(PollFd::revents);
        let client_ready = if client_events.is_empty() {
            PollFlags::empty()
        } else {
            rest.next().unwrap_or(PollFlags::empty())
        };
        let upstream_ready = if upstream_events.is_empty() {
            PollFlags::empty()
        } else {
            rest.next().unwrap_or(PollFlags::empty())
        };
        // Any event (readable, writable, error, hang-up) on a side: try what it waits for; the
        // read or write itself tells what happened.
        if !client_ready.is_empty() {
            if up.wants_read() {
                up.fill(client)?;
                up.flush(upstream)?;
            }
            down.flush(client)?;
        }
        if !upstream_ready.is_empty() {
            if down.wants_read() {
                down.fill(upstream)?;
                down.flush(client)?;
            }
            up.flush(upstream)?;
        }
    }
}
