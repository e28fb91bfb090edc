//! The launch's side of `[network]`: the namespaces a mode needs, the proxy variables in the
//! agent's environment, the hand-off of the proxy's listeners from the agent's network namespace
//! to synwire-run, and what the statistics say. The proxy itself is [`crate::net`].
//!
//! How `proxy` mode is put together: the agent's child creates, in its new network namespace once
//! `lo` is up, two listening sockets (127.0.0.1:3128 for HTTP, 127.0.0.1:1080 for SOCKS5) and
//! sends them over a socket pair (SCM_RIGHTS) before it execs. A socket stays in the namespace it
//! was created in, whoever holds it: synwire-run, still in the host's namespace, accepts on them
//! and connects out with sockets of its own. The agent's namespace has only `lo`, so the proxy is
//! the one way out. The ports are fixed (the namespace is the agent's alone, so they are always
//! free) because the environment is built before fork.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use serde::Serialize;

use crate::ns::Namespaces;
use crate::profile::network::{Mode, Network};

/// The HTTP proxy's port on the agent's 127.0.0.1.
pub const HTTP_PORT: u16 = 3128;
/// The SOCKS5 proxy's port on the agent's 127.0.0.1.
pub const SOCKS_PORT: u16 = 1080;

/// How `none` and `proxy` keep the agent off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A network namespace of its own, with only `lo`.
    Namespace,
    /// No namespace (user namespaces are refused to this caller here, and nothing else asks for
    /// one): Landlock denies TCP where it can (ABI 4+), and a seccomp filter every socket family
    /// but AF_UNIX and AF_NETLINK. `none` only: the proxy needs the namespace.
    Filters,
}

/// Adds to `ns` what `network` needs: a network namespace for `none` and `proxy`, and, for a
/// caller without CAP_SYS_ADMIN (`privileged` says), the user namespace to create it in. Where
/// `userns_refused` says that user namespace cannot be had and nothing else asks for a namespace,
/// `none` is enforced by [`Via::Filters`] instead. None for `host`.
pub fn resolve(
    network: &Network,
    ns: &mut Namespaces,
    privileged: impl Fn() -> bool,
    userns_refused: impl Fn() -> bool,
) -> Option<Via> {
    if !network.mode.isolated() {
        return None;
    }
    if !privileged() && !ns.user {
        if network.mode == Mode::None && !ns.any() && userns_refused() {
            tracing::debug!(
                "[network] mode = \"none\" without a network namespace (no user namespace here): Landlock and seccomp cut the network"
            );
            return Some(Via::Filters);
        }
        tracing::debug!(
            "[network] mode = \"{}\": the network namespace is created in a user namespace",
            network.mode.name()
        );
        ns.user = true;
    }
    ns.net = true;
    Some(Via::Namespace)
}

/// The proxy's variables, upper and lower case, as curl, pip, npm, git, Python's and Node's
/// HTTP clients read them. Set after `[env]` (`clear = true` keeps them).
pub fn proxy_env() -> Vec<(OsString, OsString)> {
    let http = format!("http://127.0.0.1:{HTTP_PORT}");
    let socks = format!("socks5h://127.0.0.1:{SOCKS_PORT}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let mut env = Vec::new();
    for (name, value) in [
        ("HTTP_PROXY", &http),
        ("HTTPS_PROXY", &http),
        ("ALL_PROXY", &socks),
        ("NO_PROXY", &no_proxy),
    ] {
        env.push((name.into(), value.into()));
        env.push((name.to_lowercase().into(), value.into()));
    }
    env
}

/// Replaces (or adds) the proxy's variables in `env`.
pub fn set_proxy_env(env: &mut Vec<(OsString, OsString)>) {
    let vars = proxy_env();
    env.retain(|(k, _)| !vars.iter().any(|(name, _)| name == k));
    env.extend(vars);
}

/// synwire-run's end of the socket pair the child sends the listeners over.
pub struct Handoff {
    ours: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot create the socket pair for the proxy's listeners: {0}")]
    SocketPair(io::Error),
    #[error("the proxy's listeners did not arrive from the agent's network namespace ({0}); this is a bug in synwire-run")]
    Receive(String),
    #[error("cannot start the network proxy: {0}")]
    Start(io::Error),
}

impl Handoff {
    /// The socket pair: our end, and the child's, which goes into its namespace plan (and is
    /// closed in synwire-run after the spawn).
    pub fn new() -> Result<(Handoff, OwnedFd), NetworkError> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| NetworkError::SocketPair(e.into()))?;
        Ok((Handoff { ours }, theirs))
    }

    /// The listeners the child sent before it exec'd: HTTP and SOCKS5 in one message, then one
    /// per forwarded port of `forwards` (the port as its data). The agent has started, so the
    /// messages are there: this does not wait.
    pub fn receive(
        self,
        forwards: &[(u16, String)],
    ) -> Result<crate::net::Listeners, NetworkError> {
        let bad = |what: String| NetworkError::Receive(what);
        let mut byte = [0u8; 1];
        let (mut fds, _) =
            crate::sys::recv_fds(self.ours.as_fd(), &mut byte).map_err(|e| bad(e.to_string()))?;
        if fds.len() != 2 {
            return Err(bad(format!("{} descriptors instead of 2", fds.len())));
        }
        let socks = fds.pop().expect("two");
        let http = fds.pop().expect("two");
        let mut listeners = crate::net::Listeners {
            http,
            socks,
            forwards: Vec::new(),
        };
        for (port, host) in forwards {
            let mut data = [0u8; 2];
            let (mut fds, len) = crate::sys::recv_fds(self.ours.as_fd(), &mut data)
                .map_err(|e| bad(format!("forwarded port {port}: {e}")))?;
            if fds.len() != 1 || len != 2 || u16::from_ne_bytes(data) != *port {
                return Err(bad(format!("forwarded port {port}: an unexpected message")));
            }
            listeners.forwards.push(crate::net::Forward {
                listener: fds.pop().expect("one"),
                host: host.clone(),
                port: *port,
            });
        }
        Ok(listeners)
    }
}

/// The `network` key of the statistics: the mode, and in `proxy` mode what the proxy allowed,
/// denied and failed to reach.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub mode: &'static str,
    /// How `none` and `proxy` are enforced: `["namespace"]`, or without a network namespace
    /// `["landlock", "seccomp"]` (`["seccomp"]` where Landlock cannot restrict TCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Vec<&'static str>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<crate::net::Report>,
}

impl Status {
    pub fn new(mode: Mode) -> Status {
        Status {
            mode: mode.name(),
            via: None,
            proxy: (mode == Mode::Proxy).then(crate::net::Report::default),
        }
    }

    /// The summary's line in `proxy` mode, e.g. `network: 14 connections to 2 hosts allowed, 3
    /// denied (evil.example:443)`; None in the other modes.
    pub fn line(&self) -> Option<String> {
        if let Some(via) = self.via.as_ref().filter(|v| !v.contains(&"namespace")) {
            return Some(format!(
                "  network: none, through {} (no user namespace for a network namespace here)\n",
                via.join(" and ")
            ));
        }
        let r = self.proxy.as_ref()?;
        let allowed: u64 = r.allowed.values().sum();
        let denied: u64 = r.denied.values().sum();
        let failed: u64 = r.failed.values().sum();
        let hosts = r.allowed.len();
        let mut line = format!(
            "  network: {allowed} connection{} to {hosts} host{} allowed, {denied} denied{}",
            plural(allowed),
            plural(hosts as u64),
            some_keys(&r.denied)
        );
        if failed > 0 {
            line.push_str(&format!(
                ", {failed} could not be reached{}",
                some_keys(&r.failed)
            ));
        }
        line.push('\n');
        if let Some(e) = &r.error {
            line.push_str(&format!("  network proxy failed: {e}\n"));
        }
        Some(line)
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// ` (a:443, b:80, …)`: the first three keys, or nothing for none.
fn some_keys(m: &std::collections::BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let mut keys: Vec<&str> = m.keys().take(3).map(String::as_str).collect();
    if m.len() > 3 {
        keys.push("…");
    }
    format!(" ({})", keys.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(mode: Mode) -> Network {
        Network {
            mode,
            allow: Vec::new(),
        }
    }

    #[test]
    fn isolated_modes_add_a_network_namespace_and_a_user_one_without_privilege() {
        let mut ns = Namespaces::default();
        assert_eq!(resolve(&net(Mode::Host), &mut ns, || false, || false), None);
        assert_eq!(ns, Namespaces::default());
        let via = resolve(&net(Mode::None), &mut ns, || true, || true);
        assert!(ns.net && !ns.user && via == Some(Via::Namespace));
        let mut ns = Namespaces::default();
        resolve(&net(Mode::Proxy), &mut ns, || false, || false);
        assert!(ns.net && ns.user);
    }

    #[test]
    fn without_user_namespaces_none_falls_back_to_filters_and_proxy_does_not() {
        let mut ns = Namespaces::default();
        let via = resolve(&net(Mode::None), &mut ns, || false, || true);
        assert_eq!(
            (via, ns.clone()),
            (Some(Via::Filters), Namespaces::default())
        );
        // The proxy needs its namespace: the launch then refuses with the user namespace's fix.
        let via = resolve(&net(Mode::Proxy), &mut ns, || false, || true);
        assert!(via == Some(Via::Namespace) && ns.net && ns.user);
        // Other namespaces need the user namespace anyway: no fallback for the network alone.
        let mut ns = Namespaces {
            pid: true,
            ..Namespaces::default()
        };
        resolve(&net(Mode::None), &mut ns, || false, || true);
        assert!(ns.net && ns.user);
        let mut s = Status::new(Mode::None);
        s.via = Some(vec!["landlock", "seccomp"]);
        assert_eq!(
            s.line().unwrap(),
            "  network: none, through landlock and seccomp (no user namespace for a network namespace here)\n"
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"mode": "none", "via": ["landlock", "seccomp"]})
        );
    }

    #[test]
    fn proxy_variables_replace_the_callers_in_both_cases() {
        let mut env: Vec<(OsString, OsString)> = vec![
            ("https_proxy".into(), "http://corp:8080".into()),
            ("PATH".into(), "/bin".into()),
        ];
        set_proxy_env(&mut env);
        let get = |k: &str| {
            let v: Vec<_> = env.iter().filter(|(n, _)| n == k).collect();
            assert_eq!(v.len(), 1, "{k} once");
            v[0].1.to_string_lossy().into_owned()
        };
        assert_eq!(get("https_proxy"), "http://127.0.0.1:3128");
        assert_eq!(get("HTTP_PROXY"), "http://127.0.0.1:3128");
        assert_eq!(get("ALL_PROXY"), "socks5h://127.0.0.1:1080");
        assert_eq!(get("all_proxy"), "socks5h://127.0.0.1:1080");
        assert_eq!(get("no_proxy"), "localhost,127.0.0.1,::1");
        assert_eq!(get("PATH"), "/bin");
    }

    #[test]
    fn the_summary_line_counts_connections_and_names_denials() {
        let mut s = Status::new(Mode::Proxy);
        let r = s.proxy.as_mut().unwrap();
        r.allowed.insert("pypi.org:443".into(), 10);
        r.allowed.insert("files.pythonhosted.org:443".into(), 4);
        r.denied.insert("evil.example:443".into(), 3);
        assert_eq!(
            s.line().unwrap(),
            "  network: 14 connections to 2 hosts allowed, 3 denied (evil.example:443)\n"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["mode"], "proxy");
        assert_eq!(json["allowed"]["pypi.org:443"], 10);
        assert_eq!(json["denied"]["evil.example:443"], 3);
        let none = serde_json::to_value(Status::new(Mode::None)).unwrap();
        assert_eq!(none, serde_json::json!({"mode": "none"}));
        assert!(Status::new(Mode::Host).line().is_none());
    }
}
