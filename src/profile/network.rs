//! `[network]`: what the agent may reach. `host` leaves it the host's network; `none` gives it a
//! network namespace of its own with only loopback; `proxy` adds, inside that namespace, the
//! HTTP and SOCKS5 proxy of [`crate::net`], which reaches only the hosts of `allow`. Every entry
//! of `allow` is checked here, so a malformed one stops synwire-run before anything is created.

use serde::Deserialize;

use super::privilege::strings;
use super::{ProfileError, Source, Val};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    mode: Val,
    allow: Val,
}

/// `[network]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub mode: Mode,
    /// `HOST`, `HOST:PORT`, `*.DOMAIN[:PORT]` or an IP literal, each checked by
    /// [`crate::net::Policy::parse`]. Used in `proxy` mode only.
    pub allow: Vec<String>,
}

/// `[network] mode` and `--network`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// The host's network, as synwire-run's own.
    #[default]
    Host,
    /// A network namespace with only `lo` up.
    None,
    /// A network namespace with only `lo` up, and a proxy in it that reaches only `allow`.
    Proxy,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &["host", "none", "proxy"];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Host => "host",
            Mode::None => "none",
            Mode::Proxy => "proxy",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "host" => Some(Mode::Host),
            "none" => Some(Mode::None),
            "proxy" => Some(Mode::Proxy),
            _ => None,
        }
    }

    /// True when the agent gets a network namespace of its own.
    pub fn isolated(self) -> bool {
        self != Mode::Host
    }
}

/// The sentence every `mode` error ends with.
pub const MODE_HELP: &str = "expected \"host\" (the host's network), \"none\" (loopback only) or \"proxy\" (only the hosts in `allow`, through a proxy)";

pub(super) fn network(src: &Source, raw: &RawNetwork) -> Result<Network, ProfileError> {
    let mut n = Network::default();
    if let Some(v) = &raw.mode {
        let m = src.string(v, "network.mode")?;
        n.mode = Mode::parse(m).ok_or_else(|| src.bad(v, "network.mode", MODE_HELP.into()))?;
    }
    if let Some(v) = &raw.allow {
        let key = "network.allow";
        if v.get_ref().is_str() {
            return Err(src.bad(
                v,
                key,
                "expected a list of hosts, such as [\"pypi.org\", \"*.pythonhosted.org\", \"localhost:11434\"]".into(),
            ));
        }
        n.allow = strings(src, v, key)?;
        for entry in &n.allow {
            if let Err(e) = crate::net::Policy::parse(std::slice::from_ref(entry)) {
                return Err(src.bad(v, key, e.to_string()));
            }
        }
    }
    Ok(n)
}
