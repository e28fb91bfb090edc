//! The engine: the acceptor thread, one thread per client connection, the state they share (the
//! report, the live connections, the stop pipe) and stopping them all.
//!
//! Stopping is closing the write end of a pipe: its read end then polls as hung up for good, so
//! every thread sees it in whichever poll it sits, and no thread has to be woken one by one.

mod connect;
mod http;
mod io;
mod relay;
mod socks;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use super::{Listeners, Policy, Report};
use crate::net::policy::Target;

/// Client connections served at once; beyond, new ones are closed at once.
const MAX_CONNECTIONS: usize = 1024;
/// How long [`Engine::stop`] waits for the threads to finish.
const STOP_WAIT: Duration = Duration::from_millis(200);
/// Stack of every proxy thread: enough for getaddrinfo; the buffers are on the heap.
const STACK_SIZE: usize = 256 * 1024;
const THREAD_NAME: &str = "synwire-proxy";

/// Resolves a name to the addresses to try, in order (getaddrinfo outside tests).
pub(super) type Resolver = Arc<dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>> + Send + Sync>;

/// What the engine runs with: the policy, the resolver and the time limits (which tests shorten).
pub(super) struct Config {
    pub policy: Policy,
    pub resolve: Resolver,
    /// For a request head (HTTP) or the greeting and request (SOCKS5) to arrive.
    pub head_timeout: Duration,
    /// For connecting upstream, over all the addresses a name resolved to.
    pub connect_timeout: Duration,
    pub max_connections: usize,
}

impl Config {
    pub(super) fn new(policy: Policy) -> Config {
        Config {
            policy,
            resolve: Arc::new(|host, port| Ok((host, port).to_socket_addrs()?.collect())),
            head_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// What every thread shares.
pub(super) struct Shared {
    pub config: Config,
    /// The read end of the stop pipe: readable (hung up) once stopping.
    pub stop: OwnedFd,
    report: Mutex<Report>,
    live: Mutex<Live>,
    /// Signalled whenever a thread ends.
    ended: Condvar,
}

/// The threads still running.
#[derive(Default)]
struct Live {
    acceptor: bool,
    /// Every client connection being served, so that stop can shut down those whose thread is
    /// stuck in getaddrinfo.
    clients: HashMap<u64, Arc<TcpStream>>,
    next_id: u64,
}

/// Which count of the report a connection goes to.
#[derive(Clone, Copy)]
pub(super) enum Count {
    Allowed,
    Denied,
    Failed,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked holding it left plain counters behind: still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn count(&self, count: Count, key: &str) {
        let mut report = lock(&self.report);
        let map = match count {
            Count::Allowed => &mut report.allowed,
            Count::Denied => &mut report.denied,
            Count::Failed => &mut report.failed,
        };
        *map.entry(key.to_string()).or_default() += 1;
    }

    fn error(&self, sentence: String) {
        lock(&self.report).error.get_or_insert(sentence);
    }

    pub(super) fn stop_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stop.as_fd()
    }
}

/// The running engine, owned by [`crate::net::Proxy`].
pub(super) struct Engine {
    shared: Arc<Shared>,
    /// The write end of the stop pipe: closing it stops everything.
    stop_tx: Option<OwnedFd>,
    acceptor: Option<JoinHandle<()>>,
}

impl Engine {
    pub(super) fn start(listeners: Listeners, config: Config) -> std::io::Result<Engine> {
        let mut served = vec![
            (listener(listeners.http)?, Kind::Http),
            (listener(listeners.socks)?, Kind::Socks),
        ];
        for f in listeners.forwards {
            let target = Target::parse(&f.host).ok_or_else(|| {
                std::io::Error::other(format!("{} is not a host to forward to", f.host))
            })?;
            served.push((
                listener(f.listener)?,
                Kind::Forward(Arc::new(target), f.port),
            ));
        }
        let (stop, stop_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let shared = Arc::new(Shared {
            config,
            stop,
            report: Mutex::new(Report::default()),
            live: Mutex::new(Live {
                acceptor: true,
                ..Live::default()
            }),
            ended: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name(THREAD_NAME.to_string())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                accept_loop(&for_thread, &served);
                // The listeners close here, before the acceptor counts as ended.
                drop(served);
                lock(&for_thread.live).acceptor = false;
                for_thread.ended.notify_all();
            })?;
        Ok(Engine {
            shared,
            stop_tx: Some(stop_tx),
            acceptor: Some(acceptor),
        })
    }

    pub(super) fn stop(mut self) -> Report {
        drop(self.stop_tx.take());
        let deadline = Instant::now() + STOP_WAIT;
        let mut live = lock(&self.shared.live);
        while live.acceptor || !live.clients.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            live = self
                .shared
                .ended
                .wait_timeout(live, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        // Threads still here are resolving a name: their clients see the end now.
        for client in live.clients.values() {
            let _ = client.shutdown(std::net::Shutdown::Both);
        }
        let acceptor_done = !live.acceptor;
        drop(live);
        if let Some(handle) = self.acceptor.take() {
            if acceptor_done {
                let _ = handle.join();
            }
        }
        lock(&self.shared.report).clone()
    }
}

/// Makes a handed-over listening socket non-blocking, for the acceptor's poll loop.
fn listener(fd: OwnedFd) -> std::io::Result<TcpListener> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    Ok(TcpListener::from(fd))
}

/// What a listener serves.
#[derive(Clone)]
enum Kind {
    Http,
    Socks,
    /// A forwarded loopback port: every connection goes to this host and port.
    Forward(Arc<Target>, u16),
}

fn accept_loop(shared: &Arc<Shared>, served: &[(TcpListener, Kind)]) {
    loop {
        let mut fds = vec![rustix::event::PollFd::new(&shared.stop, PollFlags::IN)];
        fds.extend(
            served
                .iter()
                .map(|(l, _)| rustix::event::PollFd::new(l, PollFlags::IN)),
        );
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                shared.error(format!(
                    "the network proxy stopped accepting connections: poll failed: {e}"
                ));
                return;
            }
        }
        if !fds[0].revents().is_empty() {
            return;
        }
        let ready: Vec<bool> = fds[1..].iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        for ((listener, kind), ready) in served.iter().zip(ready) {
            if ready && !accept_one(shared, listener, kind.clone()) {
                return;
            }
        }
    }
}

/// Accepts one connection and starts its thread; false when accepting failed for good (the
/// error is in the report).
fn accept_one(shared: &Arc<Shared>, listener: &TcpListener, kind: Kind) -> bool {
    let stream = match listener.accept() {
        Ok((stream, _)) => stream,
        Err(e) => return accept_error(shared, kind, &e),
    };
    let client = Arc::new(stream);
    let id = {
        let mut live = lock(&shared.live);
        if live.clients.len() >= shared.config.max_connections {
            // Over the cap: closed at once, counted nowhere.
            return true;
        }
        if client.set_nonblocking(true).is_err() {
            return true;
        }
        let _ = client.set_nodelay(true);
        let id = live.next_id;
        live.next_id += 1;
        live.clients.insert(id, Arc::clone(&client));
        id
    };
    let for_thread = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name(THREAD_NAME.to_string())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let _done = Done {
                shared: &for_thread,
                id,
            };
            // Moved here so that this reference is gone before Done drops the last one.
            let client = client;
            match kind {
                Kind::Http => http::serve(&for_thread, &client),
                Kind::Socks => socks::serve(&for_thread, &client),
                Kind::Forward(target, port) => forward(&for_thread, &client, &target, port),
            }
        });
    if let Err(e) = spawned {
        lock(&shared.live).clients.remove(&id);
        shared.error(format!(
            "the network proxy dropped a connection: cannot start its thread: {e}"
        ));
    }
    true
}

/// What to do about an accept error: true to go on (after a pause when out of descriptors or
/// memory), false to stop accepting (recorded in the report).
fn accept_error(shared: &Shared, kind: Kind, e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    let transient = [
        Errno::AGAIN,
        Errno::INTR,
        Errno::CONNABORTED,
        // Errors pending on the new connection, which accept(2) says to treat as EAGAIN.
        Errno::NETDOWN,
        Errno::PROTO,
        Errno::NOPROTOOPT,
        Errno::HOSTDOWN,
        Errno::NONET,
        Errno::HOSTUNREACH,
        Errno::OPNOTSUPP,
        Errno::NETUNREACH,
    ];
    let exhausted = [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM];
    match errno {
        Some(n) if transient.contains(&n) => true,
        Some(n) if exhausted.contains(&n) => {
            // The connection stays queued: wait a little rather than spin on it.
            io::pause(shared.stop_fd(), Duration::from_millis(100));
            true
        }
        _ => {
            let which = match kind {
                Kind::Http => "its HTTP listener".to_string(),
                Kind::Socks => "its SOCKS5 listener".to_string(),
                Kind::Forward(_, port) => format!("the forwarded port {port}"),
            };
            shared.error(format!(
                "the network proxy stopped accepting connections: accept on {which} failed: {e}"
            ));
            false
        }
    }
}

/// A connection to a forwarded loopback port: no handshake, straight to `target:port` (which the
/// policy allows, as it listed it), then relayed.
fn forward(shared: &Shared, client: &TcpStream, target: &Target, port: u16) {
    if let Ok(upstream) = connect::open(shared, target, port) {
        relay::relay(
            shared.stop_fd(),
            client,
            &upstream,
            b"",
            b"",
            relay::Mode::Tunnel,
        );
    }
}

/// Unregisters a connection when its thread ends, however it ends.
struct Done<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        lock(&self.shared.live).clients.remove(&self.id);
        self.shared.ended.notify_all();
    }
}
