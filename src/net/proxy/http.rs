//! The HTTP proxy: `CONNECT host:port` tunnels (what clients use for https://), and plain-HTTP
//! requests in absolute form (`GET http://host/path HTTP/1.1`), passed on in origin form with
//! `Connection: close`, one request per client connection. Bodies and responses are relayed as
//! raw bytes, never parsed or buffered whole.

use std::net::TcpStream;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::connect::{self, Failure};
use super::io::{self, Halt};
use super::relay::{self, Mode};
use super::Shared;
use crate::net::policy::Target;

/// The longest request head read.
const HEAD_LIMIT: usize = 16 * 1024;
/// How long an answer of the proxy's own (403, 502, ...) may take to send.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Headers about the connection to the proxy, not for the server; `Host` is replaced.
const DROPPED: [&str; 5] = [
    "proxy-connection",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "host",
];

/// A request the proxy understood.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub target: Target,
    pub port: u16,
    /// `None` for CONNECT; else the head to send upstream, in origin form.
    pub head: Option<Vec<u8>>,
}

/// Serves one client connection of the HTTP listener.
pub(super) fn serve(shared: &Shared, client: &TcpStream) {
    let stop = shared.stop_fd();
    let limit = shared.config.head_timeout;
    let (buf, end) = match read_head(stop, client, Instant::now() + limit) {
        Ok(read) => read,
        Err(HeadError::Halt(Halt::TimedOut)) => {
            let why = format!(
                "synwire-run: the request head did not arrive within {} s",
                limit.as_secs()
            );
            return answer(stop, client, "408 Request Timeout", &why);
        }
        Err(HeadError::TooLarge) => {
            let why = "synwire-run: the request head is larger than 16 KiB";
            return answer(stop, client, "431 Request Header Fields Too Large", why);
        }
        Err(HeadError::Halt(_)) => return,
    };
    let (head, rest) = buf.split_at(end);
    let request = match parse(head) {
        Ok(request) => request,
        Err(why) => return answer(stop, client, "400 Bad Request", &why),
    };
    let key = format!("{}:{}", request.target, request.port);
    let upstream = match connect::open(shared, &request.target, request.port) {
        Ok(upstream) => upstream,
        Err(Failure::Denied(why)) => return answer(stop, client, "403 Forbidden", &why),
        Err(Failure::Resolve(why)) => {
            return answer(
                stop,
                client,
                "502 Bad Gateway",
                &format!("synwire-run: {why}"),
            );
        }
        Err(Failure::Connect(e)) => {
            let why = format!("synwire-run: cannot connect to {key}: {e}");
            return answer(stop, client, "502 Bad Gateway", &why);
        }
        Err(Failure::TimedOut) => {
            let why = format!(
                "synwire-run: connecting to {key} timed out after {} s",
                shared.config.connect_timeout.as_secs()
            );
            return answer(stop, client, "504 Gateway Timeout", &why);
        }
        Err(Failure::Stopped) => return,
    };
    match request.head {
        None => {
            let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
            relay::relay(stop, client, &upstream, ok, rest, Mode::Tunnel);
        }
        Some(mut head) => {
            head.extend_from_slice(rest);
            relay::relay(stop, client, &upstream, b"", &head, Mode::UntilUpstreamEnds);
            drop(upstream);
            io::finish(stop, client);
        }
    }
}

/// Why no request head was read.
enum HeadError {
    /// Over [`HEAD_LIMIT`].
    TooLarge,
    Halt(Halt),
}

/// Reads up to the end of the request head: one buffer holding the head (with its blank line)
/// and whatever came after it, and where the head ends.
fn read_head(
    stop: BorrowedFd<'_>,
    client: &TcpStream,
    deadline: Instant,
) -> Result<(Vec<u8>, usize), HeadError> {
    let mut buf = vec![0u8; HEAD_LIMIT];
    let mut len = 0;
    loop {
        if len == HEAD_LIMIT {
            return Err(HeadError::TooLarge);
        }
        let n = io::read_some(stop, client, &mut buf[len..], Some(deadline))
            .map_err(HeadError::Halt)?;
        if n == 0 {
            return Err(HeadError::Halt(Halt::Closed));
        }
        let from = len.saturating_sub(3);
        len += n;
        if let Some(end) = head_end(&buf[from..len]) {
            buf.truncate(len);
            return Ok((buf, from + end));
        }
    }
}

/// Where the blank line ending a head ends in `buf`, if it is there.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Sends an answer of the proxy's own with a one-line plain-text body, then closes.
fn answer(stop: BorrowedFd<'_>, client: &TcpStream, status: &str, line: &str) {
    let body = format!("{line}\n");
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let deadline = Some(Instant::now() + ANSWER_TIMEOUT);
    if io::write_all(stop, client, text.as_bytes(), deadline).is_ok() {
        io::finish(stop, client);
    }
}

/// Reads a request head; `Err` is the line for a 400 answer.
pub(super) fn parse(head: &[u8]) -> Result<Request, String> {
    // Lines end in CRLF only: a bare CR or LF that the server would read as a line end, and the
    // proxy not, could slip a header or a second request past the proxy.
    let bare = head.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => head.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || head[i - 1] != b'\r',
        _ => false,
    });
    if bare {
        return Err("synwire-run: the request head has a line not ending in CRLF".to_string());
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let first = std::str::from_utf8(first)
        .map_err(|_| "synwire-run: the request line is not text".to_string())?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "synwire-run: cannot read the request line \"{first}\""
        ));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err(format!(
            "synwire-run: cannot read the request line \"{first}\""
        ));
    }
    if method == "CONNECT" {
        let (target, port) = authority(target, None)?;
        return Ok(Request {
            target,
            port,
            head: None,
        });
    }
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "synwire-run: {target} is an https URL: the client must open a CONNECT tunnel through the proxy for it (set HTTPS_PROXY, not only HTTP_PROXY)"
        ));
    }
    let Some(rest) = lower.starts_with("http://").then(|| &target[7..]) else {
        return Err(format!(
            "synwire-run: this is a proxy: send the request with an absolute URL (GET http://host/path) or open a tunnel with CONNECT host:port, not \"{method} {target}\""
        ));
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(split);
    let (host, port) = authority(auth, Some(80))?;
    let path = path.split('#').next().unwrap_or_default();
    let path = match path.strip_prefix('?') {
        Some(query) => format!("/?{query}"),
        None if path.is_empty() => "/".to_string(),
        None => path.to_string(),
    };
    let mut out = format!("{method} {path} {version}\r\n").into_bytes();
    for line in lines.take_while(|l| !l.is_empty()) {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return Err("synwire-run: folded header lines are not supported".to_string());
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err("synwire-run: a header line has no colon".to_string());
        };
        let name = &line[..colon];
        if DROPPED
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d.as_bytes()))
        {
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    // The Host of an absolute-form request is its URL's (RFC 9112, 3.2.2): a different Host
    // header would reach another site on the same server than the one the policy allowed.
    let host_header = if port == 80 {
        format!("Host: {host}\r\n")
    } else {
        format!("Host: {host}:{port}\r\n")
    };
    out.extend_from_slice(host_header.as_bytes());
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Request {
        target: host,
        port,
        head: Some(out),
    })
}

/// Reads `host[:port]` or `[v6][:port]`; `default` is the port when there is none (CONNECT has
/// no default).
fn authority(auth: &str, default: Option<u16>) -> Result<(Target, u16), String> {
    let bad = || {
        format!(
            "synwire-run: cannot read the host \"{auth}\"; write host:port, or [address]:port for IPv6"
        )
    };
    if auth.contains('@') {
        return Err(format!(
            "synwire-run: \"{auth}\" has credentials in the URL, which the proxy does not pass on"
        ));
    }
    let (host, port) = if auth.starts_with('[') {
        match auth.find(']') {
            Some(i) => {
                let tail = &auth[i + 1..];
                let port = if tail.is_empty() {
                    None
                } else {
                    Some(tail.strip_prefix(':').ok_or_else(bad)?)
                };
                (&auth[..=i], port)
            }
            None => return Err(bad()),
        }
    } else {
        match auth.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (auth, None),
        }
    };
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(bad()),
        },
        None => default.ok_or_else(|| {
            format!("synwire-run: CONNECT needs a port: write CONNECT {auth}:443")
        })?,
    };
    let target = Target::parse(host).ok_or_else(bad)?;
    Ok((target, port))
}
