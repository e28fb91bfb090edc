//! The allow list of the network proxy: which `host:port` the agent may reach, parsed from the
//! profile's `[network] allow` and from `--allow-host`, and the check every request goes through.
//!
//! An entry is a host name (`example.com`), a wildcard for its subdomains (`*.example.com`, which
//! does not allow `example.com` itself) or an IP literal (`10.0.0.1`, `::1`, `[::1]:8080`), with an
//! optional port; without one it allows ports 80 and 443. Names and IP literals never stand in for
//! each other: a name allows requests for that name, an address requests for that address, since
//! which addresses a name resolves to is up to a DNS server the agent may not trust.
//!
//! Names may resolve to link-local addresses, where cloud metadata services answer with the
//! host's credentials; [`Policy::filter`] refuses those unless the address itself is listed.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The ports an entry without one allows: plain HTTP and HTTPS.
const WEB_PORTS: [u16; 2] = [80, 443];

/// An allow list entry that cannot be understood; the message names it and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid allowed host \"{entry}\": an empty entry allows nothing; write a host such as \"example.com\" or \"example.com:8080\", or remove it")]
    Empty { entry: String },
    #[error("invalid allowed host \"{entry}\": the allow list takes hosts, not URLs or paths; write \"{fix}\"")]
    Url { entry: String, fix: String },
    #[error("invalid allowed host \"{entry}\": \"*\" alone would allow every host; list the hosts the agent needs, or write \"*.example.com\" for every subdomain of example.com")]
    Everything { entry: String },
    #[error("invalid allowed host \"{entry}\": a wildcard can only be a leading \"*.\" followed by a domain, as in \"*.example.com\" (every subdomain of example.com, but not example.com itself)")]
    Wildcard { entry: String },
    #[error("invalid allowed host \"{entry}\": the port must be a number from 1 to 65535, as in \"{host}:8080\", or left out to allow ports 80 and 443")]
    Port { entry: String, host: String },
    #[error("invalid allowed host \"{entry}\": \"{host}\" is neither a host name nor an IP address; write a name such as \"example.com\", an address such as \"10.0.0.1\", or an IPv6 address in brackets such as \"[::1]:8080\"")]
    Host { entry: String, host: String },
}

/// The parsed allow list. The default allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: Pattern,
    /// `None`: ports 80 and 443.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Exactly this name (lowercased, without a trailing dot).
    Name(String),
    /// Every name ending in this suffix, which starts with a dot: `.example.com`.
    Subdomains(String),
    /// Exactly this address, requested as a literal.
    Ip(IpAddr),
}

/// The host of a request, as the client named it: lowercased, without a trailing dot, an IP
/// literal parsed (IPv6 without its brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Name(String),
    Ip(IpAddr),
}

impl Target {
    /// Reads a requested host (`Example.COM.`, `10.0.0.1`, `[::1]`); `None` when it is empty or
    /// malformed brackets.
    pub(crate) fn parse(host: &str) -> Option<Target> {
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']')?;
            return inner
                .parse::<Ipv6Addr>()
                .ok()
                .map(|ip| Target::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Target::Ip(ip));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        (!name.is_empty()).then_some(Target::Name(name))
    }
}

impl fmt::Display for Target {
    /// The host as a key or a suggestion writes it: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(name) => f.write_str(name),
            Target::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Target::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
        }
    }
}

/// The report's key for a request: `host:port`, the host as requested (lowercased, without a
/// trailing dot, IPv6 in brackets).
pub fn key(host: &str, port: u16) -> String {
    match Target::parse(host) {
        Some(target) => format!("{target}:{port}"),
        None => format!("{host}:{port}"),
    }
}

/// What to add to the allow list for `host:port`: the host alone when the port is 80 or 443
/// (which an entry without a port allows), else `host:port`.
fn suggestion(target: &Target, port: u16) -> String {
    match (target, WEB_PORTS.contains(&port)) {
        (Target::Ip(IpAddr::V6(ip)), true) => ip.to_string(),
        (_, true) => target.to_string(),
        (_, false) => format!("{target}:{port}"),
    }
}

impl Policy {
    /// Parses the allow list entries (from `[network] allow` and `--allow-host`).
    pub fn parse(entries: &[String]) -> Result<Policy, PolicyError> {
        let rules = entries
            .iter()
            .map(|e| parse_entry(e))
            .collect::<Result<_, _>>()?;
        Ok(Policy { rules })
    }

    /// Whether the policy allows a connection to `host:port`; `Err` is the one-line refusal to
    /// show the agent, with the entry that would allow it.
    pub fn check(&self, host: &str, port: u16) -> Result<(), String> {
        match Target::parse(host) {
            Some(target) => self.check_target(&target, port),
            None => Err(format!(
                "synwire-run: \"{host}\" is not a host name or an IP address the network policy can allow"
            )),
        }
    }

    pub(crate) fn check_target(&self, target: &Target, port: u16) -> Result<(), String> {
        if let Target::Name(name) = target {
            // What no entry can be (`a b.example.com`, `x/.example.com`) is refused even where a
            // wildcard's suffix would match it.
            if !valid_name(name) {
                return Err(format!(
                    "synwire-run: \"{name}\" is not a host name the network policy can allow"
                ));
            }
        }
        if self.rules.iter().any(|r| r.matches(target, port)) {
            return Ok(());
        }
        let fix = suggestion(target, port);
        Err(format!(
            "synwire-run: {target}:{port} is not allowed by the network policy; add \"{fix}\" to [network] allow in the profile, or pass --allow-host {fix}"
        ))
    }

    /// The host's loopback services the allow list names (`localhost:11434`, `127.0.0.1:8080`,
    /// `[::1]:5432`; without a port, 80 and 443): each port, and the host as listed, once. The
    /// agent's own 127.0.0.1 forwards these ports to them, for the clients that connect directly
    /// because NO_PROXY names localhost. The proxy's own ports (`skip`) cannot be forwarded.
    pub fn loopback_forwards(&self, skip: &[u16]) -> Vec<(u16, String)> {
        let mut out: Vec<(u16, String)> = Vec::new();
        for rule in &self.rules {
            let host = match &rule.pattern {
                Pattern::Name(name) if name == "localhost" => name.clone(),
                Pattern::Ip(ip) if ip.is_loopback() => Target::Ip(*ip).to_string(),
                _ => continue,
            };
            let ports = match rule.port {
                Some(port) => vec![port],
                None => WEB_PORTS.to_vec(),
            };
            for port in ports {
                if !skip.contains(&port) && !out.iter().any(|(p, _)| *p == port) {
                    out.push((port, host.clone()));
                }
            }
        }
        out.sort();
        out
    }

    /// The addresses `host` resolved to that may be connected to: all but the link-local ones
    /// (169.254.0.0/16, fe80::/10, and IPv4-mapped 169.254.x.x), which only an IP literal entry
    /// with a matching port allows. `Err` when every address was refused: the one-line refusal,
    /// naming the address and how to allow it. An empty list stays empty (nothing resolved).
    pub fn filter(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
        let mut refused = None;
        let kept: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| {
                let ok =
                    !link_local(a.ip()) || self.check_target(&Target::Ip(a.ip()), a.port()).is_ok();
                if !ok && refused.is_none() {
                    refused = Some(*a);
                }
                ok
            })
            .collect();
        match refused {
            Some(addr) if kept.is_empty() => {
                let target = Target::Ip(addr.ip());
                let fix = suggestion(&target, addr.port());
                Err(format!(
                    "synwire-run: {}:{} resolves to {target}, a link-local address (where cloud metadata services answer), which the network policy refuses; if it is meant, add \"{fix}\" to [network] allow in the profile, or pass --allow-host {fix}",
                    Target::parse(host).map_or_else(|| host.to_string(), |t| t.to_string()),
                    addr.port()
                ))
            }
            _ => Ok(kept),
        }
    }
}

/// Whether `ip` is link-local: 169.254.0.0/16, fe80::/10, or the IPv4-mapped 169.254.0.0/16.
pub(crate) fn link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

impl Rule {
    fn matches(&self, target: &Target, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => WEB_PORTS.contains(&port),
        };
        port_ok
            && match (&self.pattern, target) {
                (Pattern::Name(n), Target::Name(t)) => n == t,
                (Pattern::Subdomains(suffix), Target::Name(t)) => {
                    t.len() > suffix.len() && t.ends_with(suffix.as_str())
                }
                (Pattern::Ip(ip), Target::Ip(t)) => ip == t,
                _ => false,
            }
    }
}

fn parse_entry(entry: &str) -> Result<Rule, PolicyError> {
    let e = entry.trim();
    if e.is_empty() {
        return Err(PolicyError::Empty {
            entry: entry.to_string(),
        });
    }
    // A URL or a path: suggest the authority alone.
    let authority = e.split_once("://").map_or(e, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.len() != e.len() {
        let fix = authority.rsplit('@').next().unwrap_or_default();
        return Err(PolicyError::Url {
            entry: entry.to_string(),
            fix: if fix.is_empty() {
                "example.com".to_string()
            } else {
                fix.to_string()
            },
        });
    }
    let (host, port) = split_port(e).ok_or_else(|| PolicyError::Port {
        entry: entry.to_string(),
        host: host_part(e).to_string(),
    })?;
    let pattern = parse_host(entry, host)?;
    if e.starts_with('[') && !matches!(pattern, Pattern::Ip(IpAddr::V6(_))) {
        return Err(PolicyError::Host {
            entry: entry.to_string(),
            host: host.to_string(),
        });
    }
    Ok(Rule { pattern, port })
}

/// The host part of an entry, for messages: without its port.
fn host_part(e: &str) -> &str {
    if let Some(rest) = e.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    if e.matches(':').count() == 1 {
        return e.split(':').next().unwrap_or_default();
    }
    e
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 address; `None` for a bad port.
fn split_port(e: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = e.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, "")) => (v6, None),
            Some((v6, tail)) => (v6, Some(tail.strip_prefix(':')?)),
            // No closing bracket: let the host check say so.
            None => (e, None),
        }
    } else if e.matches(':').count() == 1 {
        let (h, p) = e.split_once(':')?;
        (h, Some(p))
    } else {
        (e, None)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
                return None;
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return None,
                Ok(n) => Some(n),
            }
        }
    };
    Some((host, port))
}

fn parse_host(entry: &str, host: &str) -> Result<Pattern, PolicyError> {
    let bad = || PolicyError::Host {
        entry: entry.to_string(),
        host: host.to_string(),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Pattern::Ip(ip));
    }
    if host.contains(':') || host.contains('[') || host.contains(']') {
        return Err(bad());
    }
    if host == "*" {
        return Err(PolicyError::Everything {
            entry: entry.to_string(),
        });
    }
    let (wild, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    if name.contains('*') || (wild && name.trim_end_matches('.').is_empty()) {
        return Err(PolicyError::Wildcard {
            entry: entry.to_string(),
        });
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if !valid_name(&name) {
        return Err(bad());
    }
    // No top-level domain is numeric: `10.1` or `2852039166` is an address in a notation
    // getaddrinfo reads, which would pass for a name here.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(if wild {
        Pattern::Subdomains(format!(".{name}"))
    } else {
        Pattern::Name(name)
    })
}

/// Dot-separated labels of letters, digits, `-` and `_`, none empty.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> Policy {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        Policy::parse(&entries).unwrap()
    }

    fn error(entry: &str) -> String {
        Policy::parse(&[entry.to_string()]).unwrap_err().to_string()
    }

    #[test]
    fn matching_table() {
        let p = policy(&[
            "Example.COM.",
            "api.test:8443",
            "*.wild.test",
            "*.port.test:9000",
            "10.0.0.1",
            "10.0.0.2:8080",
            "[::1]:8080",
            "fe80::1",
            "[2001:db8::1]",
        ]);
        let table: &[(&str, u16, bool)] = &[
            ("example.com", 80, true),
            ("example.com", 443, true),
            ("EXAMPLE.com.", 443, true),
            ("example.com", 8080, false),
            ("www.example.com", 443, false),
            ("api.test", 8443, true),
            ("api.test", 443, false),
            ("a.wild.test", 443, true),
            ("a.b.c.wild.test", 80, true),
            ("wild.test", 443, false),
            ("xwild.test", 443, false),
            ("a.wild.test", 8080, false),
            ("x.port.test", 9000, true),
            ("x.port.test", 443, false),
            ("port.test", 9000, false),
            ("10.0.0.1", 80, true),
            ("10.0.0.1", 22, false),
            ("10.0.0.2", 8080, true),
            ("10.0.0.2", 80, false),
            ("[::1]", 8080, true),
            ("::1", 8080, true),
            ("[::1]", 443, false),
            ("[fe80::1]", 443, true),
            ("[2001:db8::1]", 80, true),
            ("[::ffff:10.0.0.1]", 80, false),
            ("", 80, false),
            ("[nonsense]", 80, false),
            ("x/.wild.test", 443, false),
            ("x y.wild.test", 443, false),
        ];
        for &(host, port, want) in table {
            assert_eq!(p.check(host, port).is_ok(), want, "{host}:{port}");
        }
    }

    #[test]
    fn names_and_addresses_never_stand_in_for_each_other() {
        let p = policy(&["localhost:8080", "127.0.0.1:9090"]);
        assert!(p.check("localhost", 8080).is_ok());
        assert!(p.check("127.0.0.1", 8080).is_err());
        assert!(p.check("127.0.0.1", 9090).is_ok());
        assert!(p.check("localhost", 9090).is_err());
        // A wildcard never matches an address.
        let p = policy(&["*.example.com"]);
        assert!(p.check("93.184.216.34", 443).is_err());
    }

    #[test]
    fn refusal_names_the_key_and_the_entry_to_add() {
        let p = Policy::default();
        assert_eq!(
            p.check("Evil.Example.", 443).unwrap_err(),
            "synwire-run: evil.example:443 is not allowed by the network policy; add \"evil.example\" to [network] allow in the profile, or pass --allow-host evil.example"
        );
        let msg = p.check("evil.example", 8443).unwrap_err();
        assert!(msg.contains("add \"evil.example:8443\""), "{msg}");
        assert!(msg.contains("--allow-host evil.example:8443"), "{msg}");
        let msg = p.check("::1", 8080).unwrap_err();
        assert!(msg.starts_with("synwire-run: [::1]:8080 is not"), "{msg}");
        assert!(msg.contains("--allow-host [::1]:8080"), "{msg}");
        assert_eq!(key("Example.COM.", 80), "example.com:80");
        assert_eq!(key("::1", 443), "[::1]:443");
        assert_eq!(key("[::1]", 443), "[::1]:443");
    }

    #[test]
    fn bad_entries_say_how_to_write_them() {
        let cases: &[(&str, &str)] = &[
            ("", "empty entry"),
            ("   ", "empty entry"),
            ("*", "\"*\" alone would allow every host"),
            ("*.", "leading \"*.\" followed by a domain"),
            ("*.:443", "leading \"*.\" followed by a domain"),
            ("a.*.com", "leading \"*.\""),
            ("*example.com", "leading \"*.\""),
            ("*.*.example.com", "leading \"*.\""),
            (
                "example.com:0",
                "from 1 to 65535, as in \"example.com:8080\"",
            ),
            ("example.com:65536", "from 1 to 65535"),
            ("example.com:", "from 1 to 65535"),
            ("example.com:http", "from 1 to 65535"),
            ("[::1]:0", "from 1 to 65535"),
            (
                "https://example.com",
                "not URLs or paths; write \"example.com\"",
            ),
            ("https://example.com:8443/x", "write \"example.com:8443\""),
            ("example.com/path", "write \"example.com\""),
            ("exa mple.com", "neither a host name nor an IP address"),
            ("a..b", "neither a host name"),
            ("[example.com]:80", "neither a host name"),
            ("10.1", "neither a host name"),
            ("2852039166", "neither a host name"),
        ];
        for &(entry, want) in cases {
            let msg = error(entry);
            assert!(msg.contains(want), "{entry:?}: {msg}");
            assert!(msg.contains(&format!("\"{entry}\"")), "{entry:?}: {msg}");
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn link_local_addresses_are_refused_unless_listed() {
        assert!(link_local("169.254.169.254".parse().unwrap()));
        assert!(link_local("fe80::1".parse().unwrap()));
        assert!(link_local("febf::1".parse().unwrap()));
        assert!(!link_local("fec0::1".parse().unwrap()));
        assert!(link_local("::ffff:169.254.1.1".parse().unwrap()));
        assert!(!link_local("10.0.0.1".parse().unwrap()));

        let p = policy(&["meta.test", "mixed.test"]);
        let msg = p
            .filter("Meta.Test", vec![sa("169.254.169.254:80")])
            .unwrap_err();
        assert!(
            msg.contains("meta.test:80 resolves to 169.254.169.254"),
            "{msg}"
        );
        assert!(msg.contains("--allow-host 169.254.169.254"), "{msg}");
        // The link-local address is skipped, the others kept.
        let kept = p
            .filter(
                "mixed.test",
                vec![
                    sa("[fe80::1]:443"),
                    sa("10.0.0.1:443"),
                    sa("[::ffff:169.254.1.1]:443"),
                ],
            )
            .unwrap();
        assert_eq!(kept, vec![sa("10.0.0.1:443")]);
        let msg = p.filter("x.test", vec![sa("[fe80::1]:8080")]).unwrap_err();
        assert!(msg.contains("--allow-host [fe80::1]:8080"), "{msg}");
        assert_eq!(p.filter("x.test", vec![]), Ok(vec![]));

        // Listed as an IP literal with the right port: allowed.
        let p = policy(&["meta.test", "169.254.169.254"]);
        let addrs = vec![sa("169.254.169.254:80")];
        assert_eq!(p.filter("meta.test", addrs.clone()), Ok(addrs));
        assert!(p
            .filter("meta.test", vec![sa("169.254.169.254:8080")])
            .is_err());
    }
}
