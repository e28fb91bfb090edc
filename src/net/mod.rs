//! The network proxy of `proxy` mode: the agent runs in a network namespace with only `lo`, where
//! the launcher's child opened two listening sockets (HTTP on 127.0.0.1:3128, SOCKS5 on
//! 127.0.0.1:1080) and handed them over. This engine, in the launcher and so in the host's
//! network namespace, accepts on them, checks each request against the allow list ([`Policy`]),
//! resolves and connects from the host's namespace, and relays the bytes. A client that ignores
//! the proxy reaches nothing: the agent's namespace has no route. [`setup`] is the launch's side:
//! the namespaces a mode needs, the environment, the hand-off of the listeners, the statistics.
//!
//! Plain threads, no async runtime: one acceptor polling both listeners and a stop pipe, and one
//! thread per client connection; every place a thread can block (reading a request head,
//! connecting, relaying) also polls the stop pipe, so [`Proxy::stop`] returns within about
//! 200 ms whatever the peers do. The threads start after the agent is spawned and inherit the
//! launcher's blocked signal mask; nothing here touches signals.

pub mod policy;
mod proxy;
pub mod setup;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

pub use policy::{Policy, PolicyError};

/// The two listening sockets, already bound and listening in the agent's network namespace.
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP proxy's: CONNECT tunnels and plain-HTTP requests in absolute form.
    pub http: OwnedFd,
    /// The SOCKS5 proxy's (RFC 1928, CONNECT only, no authentication).
    pub socks: OwnedFd,
    /// The agent's loopback ports forwarded to the host's ([`Policy::loopback_forwards`]).
    pub forwards: Vec<Forward>,
}

/// A listener on the agent's 127.0.0.1:`port` whose connections go to `host:port` of the host's
/// namespace (the host as the allow list names it: `localhost`, `127.0.0.1`, `[::1]`), through
/// the policy and the report like any other.
#[derive(Debug)]
pub struct Forward {
    pub listener: OwnedFd,
    pub host: String,
    pub port: u16,
}

/// What the proxy did, for the run's statistics. Keys are `host:port` with the host as
/// requested: lowercased, without a trailing dot, IPv6 in brackets (`[::1]:443`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Report {
    /// Connections the policy allowed (those that then failed upstream included).
    pub allowed: BTreeMap<String, u64>,
    /// Connections the policy refused, a name that resolved only to refused link-local
    /// addresses included.
    pub denied: BTreeMap<String, u64>,
    /// Allowed connections whose name did not resolve or whose upstream connect failed.
    pub failed: BTreeMap<String, u64>,
    /// Why the proxy itself stopped serving or dropped a connection (an accept error, a thread
    /// that could not start), in one sentence; the first such error only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The running proxy. Dropping it stops the threads too, without waiting or a report.
pub struct Proxy {
    engine: proxy::Engine,
}

/// Starts the proxy on `listeners` with `policy`: the threads start and this returns at once.
/// An error only when the acceptor thread (or the stop pipe) cannot be created.
pub fn start(listeners: Listeners, policy: Policy) -> std::io::Result<Proxy> {
    let engine = proxy::Engine::start(listeners, proxy::Config::new(policy))?;
    Ok(Proxy { engine })
}

impl Proxy {
    /// Stops accepting, closes every listener and tunnel, and returns what the proxy did. Waits
    /// about 200 ms at most for the threads: one stuck in name resolution (which cannot be
    /// interrupted) is left behind, its client's connection shut down; it exits when the
    /// resolver returns.
    pub fn stop(self) -> Report {
        self.engine.stop()
    }
}
