//! Helper programs for the `[network]` tests, run as agent commands. Each prints one line per
//! attempt and exits 0: the lines are the result. The proxies' addresses come from the
//! environment synwire-run gives the agent (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY), never from a
//! fixed port.
//!
//! - `net-get http|connect|socks URL`: one fetch of `http://HOST:PORT/PATH` through the HTTP proxy
//!   in absolute form, through a CONNECT tunnel, or through SOCKS5 with the name (ATYP 3). Prints
//!   `status 200 bytes N fnv=HEX`, `status CODE body FIRST-LINE` (any other status, from the
//!   proxy or the server), `socks-reply N` (a SOCKS refusal), or an error: an errno name
//!   (`ECONNREFUSED`), `timeout`, `eof` (closed before a complete answer), `no-proxy-env VAR`,
//!   `error TEXT`.
//! - `net-stream URL`: through a CONNECT tunnel, GETs an endless body; prints `ready` after the
//!   first 64 KiB and reads on until the connection ends (`ended bytes N`) or it is killed.
//! - `net-many N BYTES URL`: N concurrent fetches of URL (which serves BYTES of `pattern`) through
//!   CONNECT tunnels, one thread each; prints `fail I: REASON` for each one that did not arrive
//!   intact, then `intact K/N`.
//! - `net-tput connect|socks|direct N BYTES URL`: the same N checked fetches through CONNECT
//!   tunnels, SOCKS5, or straight to the server ignoring every proxy (under `--network host`, for
//!   comparison); prints the same `fail` lines, then `intact K/N bytes B secs S`: B the bytes of
//!   the intact fetches, S the seconds from the first connect to the last byte of any fetch, so
//!   the figure is the transfer's alone, not synwire-run's launch.
//! - `net-direct PROBE...`, ignoring every proxy: `tcp HOST PORT` (HOST resolved with
//!   getaddrinfo) prints `tcp HOST:PORT ok` or the errno name, `timeout`, `resolve-failed …`,
//!   `is-proxy-port` (127.x or localhost at a port a proxy of the environment listens on);
//!   `dns` sends a query over UDP to the first nameserver of /etc/resolv.conf and waits up to 1 s
//!   for any answer: `dns ADDR ok`, `dns ADDR timeout` or the errno name.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// How long a client waits for any byte before giving up (`timeout`): longer than any test's
/// `--timeout`, shorter than the harness's deadline.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a direct connect may take before it counts as `timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Byte `i` of every body the test server serves from `/bytes/N` and `/endless`: deterministic,
/// with a period (251 * 256) that no buffer size divides, so a misplaced chunk shows. This is the
/// definition; the programs use `fill_pattern`, which the tests check against it.
#[cfg(test)]
pub fn pattern(i: u64) -> u8 {
    ((i % 251) as u8) ^ ((i / 251) as u8)
}

/// Fills `buf` with bytes `at..at + buf.len()` of `pattern`, without a division per byte (the
/// VMs emulate every instruction: 100 MiB of `%` and `/` would take long).
pub fn fill_pattern(at: u64, buf: &mut [u8]) {
    let (mut q, mut r) = (at / 251, at % 251);
    for b in buf {
        *b = (r as u8) ^ (q as u8);
        r += 1;
        if r == 251 {
            r = 0;
            q += 1;
        }
    }
}

/// 64-bit FNV-1a, offset basis and prime as published.
pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The FNV-1a of the first `n` bytes of `pattern`, as `net-get` prints it.
pub fn pattern_fnv(n: u64) -> String {
    let mut h = Fnv::new();
    let mut buf = Vec::with_capacity(65536);
    let mut i = 0;
    while i < n {
        let end = n.min(i + 65536);
        buf.resize((end - i) as usize, 0);
        fill_pattern(i, &mut buf);
        h.update(&buf);
        i = end;
    }
    format!("{:016x}", h.0)
}

/// An errno's name for the errors these probes meet; `errno N` otherwise.
pub fn errno_name(e: &io::Error) -> String {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return "timeout".into();
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return "eof".into();
    }
    match e.raw_os_error() {
        Some(n) => crate::errno::name(n).map_or_else(|| format!("errno {n}"), str::to_string),
        None => format!("error {e}"),
    }
}

/// `http://HOST:PORT/PATH` (the port defaults to 80) as (host, port, path).
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url}"))?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// The proxy address in environment variable `var` (`http://127.0.0.1:PORT`,
/// `socks5h://127.0.0.1:PORT`, with or without a trailing slash).
fn proxy_addr(var: &str) -> Result<SocketAddr, String> {
    let v = std::env::var(var).map_err(|_| format!("no-proxy-env {var}"))?;
    let rest = v.split_once("://").map_or(v.as_str(), |(_, r)| r);
    let rest = rest.trim_end_matches('/');
    rest.parse()
        .map_err(|_| format!("error {var}={v:?} is not IP:PORT"))
}

/// The outcome of one fetch, printed as one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// 200 with the whole body: its length and FNV-1a.
    Ok {
        bytes: u64,
        fnv: String,
    },
    /// Any other status, with the first line of its body (maybe empty).
    Status {
        code: u16,
        first_line: String,
    },
    SocksReply(u8),
    Failed(String),
}

impl std::fmt::Display for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Got::Ok { bytes, fnv } => write!(f, "status 200 bytes {bytes} fnv={fnv}"),
            Got::Status { code, first_line } => write!(f, "status {code} body {first_line}"),
            Got::SocksReply(n) => write!(f, "socks-reply {n}"),
            Got::Failed(why) => f.write_str(why),
        }
    }
}

fn io_failed(e: io::Error) -> Got {
    Got::Failed(errno_name(&e))
}

fn connect_proxy(var: &str) -> Result<TcpStream, Got> {
    let addr = proxy_addr(var).map_err(Got::Failed)?;
    let s = TcpStream::connect(addr).map_err(io_failed)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(io_failed)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(io_failed)?;
    Ok(s)
}

/// A response's status code and headers (names lowercased); the reader is left at the body.
fn read_head<R: BufRead>(r: &mut R) -> Result<(u16, Vec<(String, String)>), Got> {
    let mut line = String::new();
    if r.read_line(&mut line).map_err(io_failed)? == 0 {
        return Err(Got::Failed("eof".into()));
    }
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Got::Failed(format!("error bad status line {:?}", line.trim_end())))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(io_failed)? == 0 {
            return Err(Got::Failed("eof".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((code, headers));
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

fn content_length(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
}

/// Reads a response (status, headers, body by Content-Length or to EOF; no chunked encoding:
/// the test server never uses it, nor should a proxy's own answers).
pub fn read_response<R: Read>(r: R) -> Got {
    let mut r = BufReader::with_capacity(65536, r);
    let (code, headers) = match read_head(&mut r) {
        Ok(h) => h,
        Err(g) => return g,
    };
    let len = content_length(&headers);
    if code != 200 {
        // The first line of the body, however it ends (a refusal may close at once).
        let mut body = Vec::new();
        let limit = len.unwrap_or(4096).min(4096);
        let _ = r.take(limit).read_to_end(&mut body);
        let text = String::from_utf8_lossy(&body);
        let first_line = text.lines().next().unwrap_or("").trim().to_string();
        return Got::Status { code, first_line };
    }
    let mut fnv = Fnv::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 65536];
    loop {
        let want = match len {
            Some(l) if bytes >= l => break,
            Some(l) => buf.len().min((l - bytes) as usize),
            None => buf.len(),
        };
        match r.read(&mut buf[..want]) {
            Ok(0) if len.is_some() => {
                return Got::Failed(format!("eof after {bytes} of {} bytes", len.unwrap_or(0)))
            }
            Ok(0) => break,
            Ok(n) => {
                fnv.update(&buf[..n]);
                bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Got::Failed(format!("{} after {bytes} bytes", errno_name(&e))),
        }
    }
    Got::Ok {
        bytes,
        fnv: format!("{:016x}", fnv.0),
    }
}

/// Sends `GET PATH` for `host:port` on `s` (origin form, as inside a tunnel).
fn origin_request(s: &mut TcpStream, host: &str, port: u16, path: &str) -> Result<(), Got> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: synwire-vmtest\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(io_failed)
}

/// Opens a CONNECT tunnel to host:port through HTTPS_PROXY. Err: the proxy's refusal or an error.
pub fn connect_tunnel(host: &str, port: u16) -> Result<TcpStream, Got> {
    let mut s = connect_proxy("HTTPS_PROXY")?;
    let req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(io_failed)?;
    // Byte by byte up to the blank line, so nothing of the tunnel's data is read here.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) if head.is_empty() => return Err(Got::Failed("eof".into())),
            Ok(0) => break,
            Ok(_) => head.push(b[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failed(e)),
        }
        if head.len() > 16384 {
            return Err(Got::Failed("error CONNECT answer head too long".into()));
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Got::Failed(format!("error bad CONNECT answer {:?}", text.trim_end())))?;
    if code == 200 {
        return Ok(s);
    }
    // A refusal: read its body the same way as any response.
    let rest = std::io::Cursor::new(head).chain(s);
    Err(match read_response(rest) {
        Got::Status { code, first_line } => Got::Status { code, first_line },
        other => other,
    })
}

/// A SOCKS5 CONNECT to host:port by name through ALL_PROXY. Err(SocksReply(n)) for a refusal.
pub fn socks_connect(host: &str, port: u16) -> Result<TcpStream, Got> {
    let mut s = connect_proxy("ALL_PROXY")?;
    s.write_all(&[5, 1, 0]).map_err(io_failed)?;
    let mut hello = [0u8; 2];
    s.read_exact(&mut hello).map_err(io_failed)?;
    if hello != [5, 0] {
        return Err(Got::Failed(format!("error socks method answer {hello:?}")));
    }
    let name = host.as_bytes();
    if name.len() > 255 {
        return Err(Got::Failed("error name too long".into()));
    }
    let mut req = vec![5, 1, 0, 3, name.len() as u8];
    req.extend_from_slice(name);
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).map_err(io_failed)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).map_err(io_failed)?;
    if head[0] != 5 {
        return Err(Got::Failed(format!(
            "error socks reply version {}",
            head[0]
        )));
    }
    if head[1] != 0 {
        return Err(Got::SocksReply(head[1]));
    }
    // BND.ADDR and BND.PORT, which we do not need.
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l).map_err(io_failed)?;
            usize::from(l[0])
        }
        t => return Err(Got::Failed(format!("error socks address type {t}"))),
    };
    let mut skip = vec![0u8; addr_len + 2];
    s.read_exact(&mut skip).map_err(io_failed)?;
    Ok(s)
}

/// One fetch of `url` by `how` (`http`, `connect`, `socks`).
pub fn fetch(how: &str, url: &str) -> Got {
    let (host, port, path) = match parse_url(url) {
        Ok(u) => u,
        Err(e) => return Got::Failed(format!("error {e}")),
    };
    let stream = match how {
        "http" => connect_proxy("HTTP_PROXY").and_then(|mut s| {
            let req = format!(
                "GET http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: synwire-vmtest\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).map_err(io_failed)?;
            Ok(s)
        }),
        "connect" => connect_tunnel(&host, port).and_then(|mut s| {
            origin_request(&mut s, &host, port, &path)?;
            Ok(s)
        }),
        "socks" => socks_connect(&host, port).and_then(|mut s| {
            origin_request(&mut s, &host, port, &path)?;
            Ok(s)
        }),
        other => return Got::Failed(format!("error unknown method {other}")),
    };
    match stream {
        Ok(s) => read_response(s),
        Err(g) => g,
    }
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `net-get http|connect|socks URL`.
pub fn net_get(args: &[String]) -> Result<(), String> {
    let [how, url] = args else {
        return Err("usage: net-get http|connect|socks URL".into());
    };
    say(&fetch(how, url).to_string());
    Ok(())
}

/// `net-stream URL`: an endless body through a CONNECT tunnel; `ready` once 64 KiB arrived.
pub fn net_stream(args: &[String]) -> Result<(), String> {
    let [url] = args else {
        return Err("usage: net-stream URL".into());
    };
    let (host, port, path) = parse_url(url)?;
    let mut s = match connect_tunnel(&host, port).and_then(|mut s| {
        origin_request(&mut s, &host, port, &path)?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(g) => {
            say(&g.to_string());
            return Ok(());
        }
    };
    let mut buf = vec![0u8; 65536];
    let mut total = 0u64;
    let mut ready = false;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if !ready && total >= 65536 {
                    ready = true;
                    say("ready");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                say(&format!("{} after {total} bytes", errno_name(&e)));
                return Ok(());
            }
        }
    }
    say(&format!("ended bytes {total}"));
    Ok(())
}

/// A stream to host:port by `how`: `connect` (a CONNECT tunnel through HTTPS_PROXY), `socks`
/// (SOCKS5 through ALL_PROXY) or `direct` (the name resolved here and a plain connect, ignoring
/// every proxy).
fn open_stream(how: &str, host: &str, port: u16) -> Result<TcpStream, Got> {
    match how {
        "connect" => connect_tunnel(host, port),
        "socks" => socks_connect(host, port),
        "direct" => {
            let s = TcpStream::connect((host, port)).map_err(io_failed)?;
            s.set_read_timeout(Some(IO_TIMEOUT)).map_err(io_failed)?;
            s.set_write_timeout(Some(IO_TIMEOUT)).map_err(io_failed)?;
            Ok(s)
        }
        other => Err(Got::Failed(format!("error unknown method {other}"))),
    }
}

/// One of `net-many`'s or `net-tput`'s fetches, opened by `how` (see `open_stream`): the body
/// must be exactly `bytes` of `pattern`.
fn fetch_checked(how: &str, host: &str, port: u16, path: &str, bytes: u64) -> Result<(), String> {
    let mut s = open_stream(how, host, port).map_err(|g| g.to_string())?;
    origin_request(&mut s, host, port, path).map_err(|g| g.to_string())?;
    let mut r = BufReader::with_capacity(65536, s);
    let (code, headers) = read_head(&mut r).map_err(|g| g.to_string())?;
    if code != 200 {
        return Err(format!("status {code}"));
    }
    if let Some(l) = content_length(&headers) {
        if l != bytes {
            return Err(format!("content-length {l}"));
        }
    }
    let mut buf = vec![0u8; 65536];
    let mut want = vec![0u8; 65536];
    let mut at = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{} after {at} bytes", errno_name(&e))),
        };
        if at + n as u64 > bytes {
            return Err(format!("more than {bytes} bytes"));
        }
        fill_pattern(at, &mut want[..n]);
        if buf[..n] != want[..n] {
            let k = (0..n).find(|&k| buf[k] != want[k]).unwrap_or(0);
            return Err(format!("byte {} differs", at + k as u64));
        }
        at += n as u64;
    }
    if at == bytes {
        Ok(())
    } else {
        Err(format!("{at} of {bytes} bytes"))
    }
}

/// What `fetch_all` saw: how many fetches arrived intact, why each other one did not (by index),
/// and the seconds from the first connect to the last byte of any fetch.
struct Fetched {
    intact: usize,
    fails: Vec<(usize, String)>,
    secs: f64,
}

/// N concurrent checked fetches of `url` (which serves `bytes` of `pattern`) by `how`, one
/// thread each.
fn fetch_all(how: &str, n: usize, bytes: u64, url: &str) -> Result<Fetched, String> {
    let (host, port, path) = parse_url(url)?;
    // Every thread connects at once, so the proxy really carries N tunnels together.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (how, host, path, barrier) =
                (how.to_string(), host.clone(), path.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    barrier.wait();
                    let t0 = Instant::now();
                    let r = fetch_checked(&how, &host, port, &path, bytes);
                    (t0, Instant::now(), r)
                })
        })
        .collect();
    let mut got = Fetched {
        intact: 0,
        fails: Vec::new(),
        secs: 0.0,
    };
    let mut span: Option<(Instant, Instant)> = None;
    for (i, t) in threads.into_iter().enumerate() {
        let r = match t {
            Ok(h) => match h.join() {
                Ok((t0, t1, r)) => {
                    span = Some(span.map_or((t0, t1), |(a, b)| (a.min(t0), b.max(t1))));
                    r
                }
                Err(_) => Err("thread panicked".into()),
            },
            Err(e) => Err(format!("spawn: {e}")),
        };
        match r {
            Ok(()) => got.intact += 1,
            Err(e) => got.fails.push((i, e)),
        }
    }
    got.secs = span.map_or(0.0, |(a, b)| (b - a).as_secs_f64());
    Ok(got)
}

fn parse_n_bytes(n: &str, bytes: &str) -> Result<(usize, u64), String> {
    let n = n.parse().map_err(|_| format!("bad N {n}"))?;
    let bytes = bytes.parse().map_err(|_| format!("bad BYTES {bytes}"))?;
    Ok((n, bytes))
}

/// `net-many N BYTES URL`.
pub fn net_many(args: &[String]) -> Result<(), String> {
    let [n, bytes, url] = args else {
        return Err("usage: net-many N BYTES URL".into());
    };
    let (n, bytes) = parse_n_bytes(n, bytes)?;
    let got = fetch_all("connect", n, bytes, url)?;
    for (i, e) in &got.fails {
        say(&format!("fail {i}: {e}"));
    }
    say(&format!("intact {}/{n}", got.intact));
    Ok(())
}

/// `net-tput connect|socks|direct N BYTES URL`.
pub fn net_tput(args: &[String]) -> Result<(), String> {
    let [how, n, bytes, url] = args else {
        return Err("usage: net-tput connect|socks|direct N BYTES URL".into());
    };
    if !matches!(how.as_str(), "connect" | "socks" | "direct") {
        return Err(format!("unknown method {how}"));
    }
    let (n, bytes) = parse_n_bytes(n, bytes)?;
    let got = fetch_all(how, n, bytes, url)?;
    for (i, e) in &got.fails {
        say(&format!("fail {i}: {e}"));
    }
    say(&format!(
        "intact {}/{n} bytes {} secs {:.6}",
        got.intact,
        got.intact as u64 * bytes,
        got.secs
    ));
    Ok(())
}

/// The first `nameserver` of a resolv.conf.
pub fn nameserver(resolv_conf: &str) -> Option<std::net::IpAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next().and_then(|a| a.parse().ok()))
            .flatten()
    })
}

/// A DNS query for `name`'s A record, with id `id`.
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    // Recursion desired; one question.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The ports of the proxies named in the environment (in the agent's own namespace).
fn proxy_ports() -> Vec<u16> {
    ["HTTP_PROXY", "ALL_PROXY"]
        .iter()
        .filter_map(|v| proxy_addr(v).ok())
        .map(|a| a.port())
        .collect()
}

pub fn probe_tcp(host: &str, port: u16) -> String {
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return format!("resolve-failed {e}"),
    };
    let Some(addr) = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) else {
        return "resolve-failed no address".into();
    };
    match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(&e),
    }
}

pub fn probe_dns(resolv_path: &str) -> String {
    let text = match std::fs::read_to_string(resolv_path) {
        Ok(t) => t,
        Err(e) => return format!("- error {resolv_path}: {e}"),
    };
    let Some(ns) = nameserver(&text) else {
        return format!("- error no nameserver in {resolv_path}");
    };
    let bind: SocketAddr = if ns.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let r = UdpSocket::bind(bind).and_then(|s| {
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.send_to(&dns_query(0x5157, "allowed.test"), (ns, 53))?;
        let mut buf = [0u8; 512];
        s.recv_from(&mut buf).map(drop)
    });
    match r {
        Ok(()) => format!("{ns} ok"),
        Err(e) => format!("{ns} {}", errno_name(&e)),
    }
}

/// `net-direct PROBE...`: `tcp HOST PORT` and `dns` (optionally `dns RESOLV_CONF`, for testing
/// outside the VM), each printing one line.
pub fn net_direct(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("usage: net-direct (tcp HOST PORT | dns [RESOLV_CONF])...".into());
    }
    let mut it = args.iter().peekable();
    while let Some(kind) = it.next() {
        match kind.as_str() {
            "tcp" => {
                let (Some(host), Some(port)) = (it.next(), it.next()) else {
                    return Err("tcp needs HOST PORT".into());
                };
                let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
                // The server's port number may, by chance, be a proxy's in the agent's own
                // namespace: reaching the proxy there is no bypass.
                let on_lo = host == "localhost" || host.starts_with("127.");
                let result = if on_lo && proxy_ports().contains(&port) {
                    "is-proxy-port".to_string()
                } else {
                    probe_tcp(host, port)
                };
                say(&format!("tcp {host}:{port} {result}"));
            }
            "dns" => {
                let path = match it.peek() {
                    Some(p) if p.starts_with('/') => it.next().map(String::as_str),
                    _ => None,
                };
                say(&format!(
                    "dns {}",
                    probe_dns(path.unwrap_or("/etc/resolv.conf"))
                ));
            }
            other => return Err(format!("unknown probe {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://a.test:8080/bytes/5").unwrap(),
            ("a.test".into(), 8080, "/bytes/5".into())
        );
        assert_eq!(
            parse_url("http://a.test").unwrap(),
            ("a.test".into(), 80, "/".into())
        );
        assert!(parse_url("https://a.test/").is_err());
    }

    #[test]
    fn fill_matches_pattern() {
        for at in [0u64, 250, 251, 64_255, 1 << 20] {
            let mut buf = vec![0u8; 70_000];
            fill_pattern(at, &mut buf);
            assert!(buf
                .iter()
                .enumerate()
                .all(|(k, &b)| b == pattern(at + k as u64)));
        }
    }

    #[test]
    fn fnv_known_value() {
        // FNV-1a 64 of "a".
        let mut h = Fnv::new();
        h.update(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn resolv_conf() {
        assert_eq!(
            nameserver("# x\nsearch a\nnameserver 10.77.0.1\nnameserver 1.1.1.1\n"),
            Some("10.77.0.1".parse().unwrap())
        );
        assert_eq!(nameserver("search a\n"), None);
    }

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        let mut h = Fnv::new();
        h.update(b"abc");
        assert_eq!(
            read_response(&ok[..]),
            Got::Ok {
                bytes: 3,
                fnv: format!("{:016x}", h.0)
            }
        );
        let denied = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 40\r\n\r\nevil.test:443 is not in [network] allow\n";
        assert_eq!(
            read_response(&denied[..]).to_string(),
            "status 403 body evil.test:443 is not in [network] allow"
        );
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc";
        assert!(matches!(read_response(&short[..]), Got::Failed(_)));
    }

    /// A stand-in for synwire-run's proxies, just enough to exercise the clients: HTTP (absolute
    /// form and CONNECT) and SOCKS5, refusing every host named `denied.test`, sending the rest to
    /// 127.0.0.1.
    mod fake_proxy {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};

        fn pipe(a: TcpStream, b: TcpStream) {
            let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
            let t = std::thread::spawn(move || {
                let _ = std::io::copy(&mut a2, &mut b2);
                let _ = b2.shutdown(Shutdown::Write);
            });
            let (mut a, mut b) = (a, b);
            let _ = std::io::copy(&mut b, &mut a);
            let _ = a.shutdown(Shutdown::Write);
            let _ = t.join();
        }

        fn refusal(host: &str, port: u16) -> String {
            let body = format!("{host}:{port} is not in [network] allow\n");
            format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }

        fn http(c: TcpStream) {
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap() == 0 || l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let mut w = c;
            let mut words = head.split_whitespace();
            let (method, target) = (words.next().unwrap(), words.next().unwrap());
            let (authority, path) = match target.strip_prefix("http://") {
                Some(rest) => {
                    let i = rest.find('/').unwrap();
                    (&rest[..i], &rest[i..])
                }
                None => (target, ""),
            };
            let (host, port) = authority.rsplit_once(':').unwrap();
            let port: u16 = port.parse().unwrap();
            if host == "denied.test" {
                w.write_all(refusal(host, port).as_bytes()).unwrap();
                return;
            }
            let mut up = TcpStream::connect(("127.0.0.1", port)).unwrap();
            if method == "CONNECT" {
                w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
            } else {
                let rest = head.split_once("\r\n").unwrap().1;
                write!(up, "{method} {path} HTTP/1.1\r\n{rest}\r\n").unwrap();
            }
            // Whatever the reader buffered belongs upstream.
            up.write_all(r.buffer()).unwrap();
            pipe(w, up);
        }

        fn socks(mut c: TcpStream) {
            let mut b = [0u8; 3];
            c.read_exact(&mut b).unwrap();
            c.write_all(&[5, 0]).unwrap();
            let mut h = [0u8; 5];
            c.read_exact(&mut h).unwrap();
            assert_eq!(h[3], 3, "the client must send the name");
            let mut name = vec![0u8; h[4] as usize + 2];
            c.read_exact(&mut name).unwrap();
            let port = u16::from_be_bytes([name[name.len() - 2], name[name.len() - 1]]);
            let host = String::from_utf8_lossy(&name[..name.len() - 2]).to_string();
            if host == "denied.test" {
                c.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
                return;
            }
            let up = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).unwrap();
            pipe(c, up);
        }

        /// Starts both; returns (http port, socks port).
        pub fn start() -> (u16, u16) {
            let h = TcpListener::bind("127.0.0.1:0").unwrap();
            let s = TcpListener::bind("127.0.0.1:0").unwrap();
            let ports = (
                h.local_addr().unwrap().port(),
                s.local_addr().unwrap().port(),
            );
            std::thread::spawn(move || {
                for c in h.incoming().flatten() {
                    std::thread::spawn(move || http(c));
                }
            });
            std::thread::spawn(move || {
                for c in s.incoming().flatten() {
                    std::thread::spawn(move || socks(c));
                }
            });
            ports
        }
    }

    #[test]
    fn clients_through_a_proxy() {
        let srv = crate::net_fixtures::Server::start(std::net::Ipv4Addr::LOCALHOST).unwrap();
        let (hp, sp) = fake_proxy::start();
        // The only test that sets these.
        for v in ["HTTP_PROXY", "HTTPS_PROXY"] {
            std::env::set_var(v, format!("http://127.0.0.1:{hp}"));
        }
        std::env::set_var("ALL_PROXY", format!("socks5h://127.0.0.1:{sp}/"));
        let n = 1_000_003;
        let url_base = format!("http://allowed.test:{}", srv.port);
        let url = format!("{url_base}/bytes/{n}");
        let want = format!("status 200 bytes {n} fnv={}", pattern_fnv(n));
        for how in ["http", "connect", "socks"] {
            assert_eq!(fetch(how, &url).to_string(), want, "{how}");
        }
        let bad = format!("http://denied.test:{}/hello", srv.port);
        let refused = format!(
            "status 403 body denied.test:{} is not in [network] allow",
            srv.port
        );
        assert_eq!(fetch("http", &bad).to_string(), refused);
        assert_eq!(fetch("connect", &bad).to_string(), refused);
        assert_eq!(fetch("socks", &bad).to_string(), "socks-reply 2");
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let port = srv.port;
                std::thread::spawn(move || {
                    fetch_checked("connect", "allowed.test", port, "/bytes/300000", 300_000)
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert!(fetch_checked(
            "connect",
            "allowed.test",
            srv.port,
            "/bytes/300000",
            299_999
        )
        .is_err());
        // net-tput's ways through the proxies, with its span.
        for how in ["connect", "socks"] {
            let got = fetch_all(how, 5, 200_000, &format!("{url_base}/bytes/200000")).unwrap();
            assert_eq!(
                (got.intact, got.fails.len()),
                (5, 0),
                "{how}: {:?}",
                got.fails
            );
            assert!(got.secs > 0.0, "{how}");
        }
    }

    /// `direct` ignores the proxies (none is set here) and checks every byte; a wrong length,
    /// a refused connect and an unknown way are failures with a reason.
    #[test]
    fn direct_fetches() {
        let srv = crate::net_fixtures::Server::start(std::net::Ipv4Addr::LOCALHOST).unwrap();
        let base = format!("http://127.0.0.1:{}", srv.port);
        let got = fetch_all("direct", 20, 300_000, &format!("{base}/bytes/300000")).unwrap();
        assert_eq!((got.intact, got.fails.len()), (20, 0), "{:?}", got.fails);
        assert!(got.secs > 0.0);
        let got = fetch_all("direct", 2, 300_001, &format!("{base}/bytes/300000")).unwrap();
        assert_eq!(got.intact, 0);
        assert!(
            got.fails.iter().all(|(_, e)| e == "content-length 300000"),
            "{:?}",
            got.fails
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(
            fetch_checked("direct", "127.0.0.1", port, "/bytes/1", 1),
            Err("ECONNREFUSED".into())
        );
        assert!(fetch_checked("nowhere", "127.0.0.1", srv.port, "/bytes/1", 1).is_err());
    }
}
