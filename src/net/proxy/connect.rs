//! From a requested `host:port` to a connected upstream socket: the policy check, resolution in
//! the host's namespace, the link-local filter, and a non-blocking connect to each address in
//! turn. Every outcome is counted in the report here, in one place.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::io::{self, Halt};
use super::{Count, Shared};
use crate::net::policy::Target;

/// Why no upstream connection was made.
#[derive(Debug)]
pub(super) enum Failure {
    /// The policy refused (the one-line refusal).
    Denied(String),
    /// The name did not resolve (or to no address).
    Resolve(String),
    /// Every address failed; the last error.
    Connect(std::io::Error),
    /// The connect timeout passed.
    TimedOut,
    /// The proxy is stopping: say nothing, close.
    Stopped,
}

/// Opens a connection to `host:port` for a client, if the policy allows it.
pub(super) fn open(shared: &Shared, target: &Target, port: u16) -> Result<TcpStream, Failure> {
    let key = format!("{target}:{port}");
    let policy = &shared.config.policy;
    if let Err(refusal) = policy.check_target(target, port) {
        shared.count(Count::Denied, &key);
        return Err(Failure::Denied(refusal));
    }
    let addrs = match target {
        Target::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Target::Name(name) => {
            // getaddrinfo cannot be interrupted; stop does not wait for it.
            let resolved = (shared.config.resolve)(name, port);
            if io::stopped(shared.stop_fd()) {
                return Err(Failure::Stopped);
            }
            match resolved {
                Ok(addrs) if !addrs.is_empty() => addrs,
                Ok(_) => return Err(failed(shared, &key, format!("{name} has no address"))),
                Err(e) => return Err(failed(shared, &key, format!("cannot resolve {name}: {e}"))),
            }
        }
    };
    let addrs = match policy.filter(&target.to_string(), addrs) {
        Ok(addrs) => addrs,
        Err(refusal) => {
            shared.count(Count::Denied, &key);
            return Err(Failure::Denied(refusal));
        }
    };
    shared.count(Count::Allowed, &key);
    match connect_any(shared, &addrs) {
        Ok(stream) => Ok(stream),
        Err(Failure::Stopped) => Err(Failure::Stopped),
        Err(e) => {
            shared.count(Count::Failed, &key);
            Err(e)
        }
    }
}

/// A resolution failure: allowed by the policy, then failed.
fn failed(shared: &Shared, key: &str, why: String) -> Failure {
    shared.count(Count::Allowed, key);
    shared.count(Count::Failed, key);
    Failure::Resolve(why)
}

/// Tries each address in turn. The connect timeout covers them all: each gets an equal share of
/// what is left, so that one address that drops packets does not use up the time of the others.
fn connect_any(shared: &Shared, addrs: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let deadline = Instant::now() + shared.config.connect_timeout;
    let mut last = Failure::TimedOut;
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        match connect(shared, *addr, Instant::now() + share) {
            Ok(stream) => return Ok(stream),
            Err(Failure::Stopped) => return Err(Failure::Stopped),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A non-blocking connect to one address, waiting for it up to `deadline`.
fn connect(shared: &Shared, addr: SocketAddr, deadline: Instant) -> Result<TcpStream, Failure> {
    let family = match addr.ip() {
        IpAddr::V4(_) => AddressFamily::INET,
        IpAddr::V6(_) => AddressFamily::INET6,
    };
    let fail = |e: Errno| Failure::Connect(e.into());
    let fd: OwnedFd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(fail)?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => {}
        Err(Errno::INPROGRESS | Errno::INTR) => {
            match io::wait(shared.stop_fd(), fd.as_fd(), PollFlags::OUT, Some(deadline)) {
                Ok(()) => {}
                Err(Halt::Stopped) => return Err(Failure::Stopped),
                Err(Halt::TimedOut) => return Err(Failure::TimedOut),
                Err(Halt::Failed(e)) => return Err(Failure::Connect(e)),
                Err(Halt::Closed) => return Err(fail(Errno::CONNRESET)),
            }
            match rustix::net::sockopt::socket_error(&fd) {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => return Err(fail(e)),
            }
        }
        Err(e) => return Err(fail(e)),
    }
    let stream = TcpStream::from(fd);
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
