//! The engine on the host's loopback: listeners and upstream servers on 127.0.0.1:0, a policy
//! allowing their ports, a resolver standing in for DNS where a test needs other names.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::http::parse;
use super::{Config, Engine};
use crate::net::{Listeners, Policy};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Running {
    engine: Engine,
    http: SocketAddr,
    socks: SocketAddr,
}

fn config(entries: &[String]) -> Config {
    Config::new(Policy::parse(entries).unwrap())
}

fn start(config: Config) -> Running {
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let socks = TcpListener::bind("127.0.0.1:0").unwrap();
    let (http_addr, socks_addr) = (http.local_addr().unwrap(), socks.local_addr().unwrap());
    let listeners = Listeners {
        http: http.into(),
        socks: socks.into(),
        forwards: Vec::new(),
    };
    Running {
        engine: Engine::start(listeners, config).unwrap(),
        http: http_addr,
        socks: socks_addr,
    }
}

fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Whether the proxy closed `s` (end of stream or reset), as opposed to a read timing out.
fn closed(s: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    s.read_exact(&mut out).unwrap();
    out
}

/// An upstream that echoes every connection, half-closing after the client's end of stream.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// An upstream for one plain-HTTP request: sends the head it received, answers "hi" and closes.
fn http_server() -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        tx.send(String::from_utf8(head).unwrap()).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
            .unwrap();
    });
    (port, rx)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn socks_request(addr: SocketAddr, target: &[u8], port: u16) -> (TcpStream, [u8; 10]) {
    let mut s = client(addr);
    s.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_n(&mut s, 2), [5, 0]);
    let mut req = vec![5, 1, 0];
    req.extend_from_slice(target);
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    (s, reply)
}

fn domain(name: &str) -> Vec<u8> {
    let mut v = vec![3, name.len() as u8];
    v.extend_from_slice(name.as_bytes());
    v
}

fn counts(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

#[test]
fn plain_http_reaches_the_server_in_origin_form_with_connection_close() {
    let (port, heads) = http_server();
    let key = format!("127.0.0.1:{port}");
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let socks = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = http.local_addr().unwrap();
    let listeners = Listeners {
        http: http.into(),
        socks: socks.into(),
        forwards: Vec::new(),
    };
    let proxy = crate::net::start(
        listeners,
        Policy::parse(std::slice::from_ref(&key)).unwrap(),
    )
    .unwrap();

    let mut c = client(addr);
    write!(
        c,
        "GET http://127.0.0.1:{port}/path?q=1#frag HTTP/1.1\r\nHost: other.example\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\nUser-Agent: t\r\n\r\n"
    )
    .unwrap();
    let head = heads.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(
        head,
        format!("GET /path?q=1 HTTP/1.1\r\nUser-Agent: t\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
    );
    // The proxy closes once the upstream has.
    let response = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nhi"), "{response}");

    let report = proxy.stop();
    assert_eq!(report.allowed, counts(&[(&key, 1)]));
    assert!(report.denied.is_empty() && report.failed.is_empty() && report.error.is_none());
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        format!("{{\"allowed\":{{\"{key}\":1}},\"denied\":{{}},\"failed\":{{}}}}")
    );
}

#[test]
fn connect_tunnels_and_forwards_what_came_after_the_head() {
    let port = echo_server();
    let p = start(config(&[format!("127.0.0.1:{port}")]));
    let mut c = client(p.http);
    write!(
        c,
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\nearly"
    )
    .unwrap();
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(read_n(&mut c, ok.len()), ok);
    assert_eq!(read_n(&mut c, 5), b"early");
    c.write_all(b"more").unwrap();
    assert_eq!(read_n(&mut c, 4), b"more");
    // Half-close: our end of stream reaches the server, whose own comes back.
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"");
    let report = p.engine.stop();
    assert_eq!(report.allowed, counts(&[(&format!("127.0.0.1:{port}"), 1)]));
}

#[test]
fn socks5_connects_to_a_domain_and_to_an_ipv4_address() {
    let port = echo_server();
    let p = start(config(&[
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
    ]));
    for target in [domain("localhost"), vec![1, 127, 0, 0, 1]] {
        let (mut s, reply) = socks_request(p.socks, &target, port);
        assert_eq!(reply, [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        s.write_all(b"ping").unwrap();
        assert_eq!(read_n(&mut s, 4), b"ping");
    }
    let report = p.engine.stop();
    assert_eq!(
        report.allowed,
        counts(&[
            (&format!("localhost:{port}"), 1),
            (&format!("127.0.0.1:{port}"), 1)
        ])
    );
}

#[test]
fn refusals_name_the_host_and_what_to_allow() {
    let resolved = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&resolved);
    let mut cfg = config(&[]);
    cfg.resolve = Arc::new(move |_, _| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(vec![])
    });
    let p = start(cfg);

    let mut c = client(p.http);
    c.write_all(b"GET http://Evil.Example./x HTTP/1.1\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_all(&mut c)).unwrap();
    let body = "synwire-run: evil.example:80 is not allowed by the network policy; add \"evil.example\" to [network] allow in the profile, or pass --allow-host evil.example\n";
    assert_eq!(
        text,
        format!("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    );

    let mut c = client(p.http);
    c.write_all(b"CONNECT evil.example:8443 HTTP/1.1\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
    assert!(text.contains("--allow-host evil.example:8443\n"), "{text}");

    let (mut s, reply) = socks_request(p.socks, &domain("evil.example"), 443);
    assert_eq!(reply[..2], [5, 2]);
    assert_eq!(read_all(&mut s), b"");

    let report = p.engine.stop();
    assert_eq!(
        report.denied,
        counts(&[
            ("evil.example:80", 1),
            ("evil.example:8443", 1),
            ("evil.example:443", 1)
        ])
    );
    assert!(report.allowed.is_empty());
    // A refused name is never resolved.
    assert_eq!(resolved.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn names_resolving_to_link_local_addresses_are_refused_unless_listed() {
    let port = echo_server();
    let mut cfg = config(&[
        "meta.test".to_string(),
        format!("mixed.test:{port}"),
        format!("listed.test:{port}"),
        format!("169.254.169.254:{port}"),
    ]);
    cfg.resolve = Arc::new(move |host, p| {
        let meta: SocketAddr = SocketAddr::new([169, 254, 169, 254].into(), p);
        let local: SocketAddr = SocketAddr::new([127, 0, 0, 1].into(), p);
        Ok(match host {
            "meta.test" => vec![meta],
            "mixed.test" => vec![meta, local],
            _ => vec![meta],
        })
    });
    let p = start(cfg);

    let mut c = client(p.http);
    c.write_all(b"GET http://meta.test/latest/meta-data HTTP/1.1\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(
        text.contains("meta.test:80 resolves to 169.254.169.254, a link-local address"),
        "{text}"
    );
    assert!(text.contains("--allow-host 169.254.169.254\n"), "{text}");

    // The link-local address is skipped, the loopback one connected to.
    let (mut s, reply) = socks_request(p.socks, &domain("mixed.test"), port);
    assert_eq!(reply[..2], [5, 0]);
    s.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut s, 1), b"x");

    let report = p.engine.stop();
    assert_eq!(report.denied, counts(&[("meta.test:80", 1)]));
    assert_eq!(
        report.allowed,
        counts(&[(&format!("mixed.test:{port}"), 1)])
    );
}

#[test]
fn report_counts_failures_apart_from_refusals() {
    let closed = closed_port();
    let mut cfg = config(&["nowhere.test".to_string(), format!("127.0.0.1:{closed}")]);
    cfg.resolve = Arc::new(|host, _| Err(std::io::Error::other(format!("no such host {host}"))));
    let p = start(cfg);

    let mut c = client(p.http);
    c.write_all(b"GET http://nowhere.test/ HTTP/1.1\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
    assert!(
        text.ends_with("cannot resolve nowhere.test: no such host nowhere.test\n"),
        "{text}"
    );

    let mut c = client(p.http);
    write!(c, "CONNECT 127.0.0.1:{closed} HTTP/1.1\r\n\r\n").unwrap();
    let text = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
    assert!(
        text.contains(&format!("cannot connect to 127.0.0.1:{closed}")),
        "{text}"
    );

    let (_, reply) = socks_request(p.socks, &[1, 127, 0, 0, 1], closed);
    assert_eq!(reply[..2], [5, 5]);
    let (_, reply) = socks_request(p.socks, &domain("nowhere.test"), 443);
    assert_eq!(reply[..2], [5, 4]);
    let (_, reply) = socks_request(p.socks, &domain("denied.test"), 443);
    assert_eq!(reply[..2], [5, 2]);

    let report = p.engine.stop();
    let closed_key = format!("127.0.0.1:{closed}");
    let both = counts(&[
        ("nowhere.test:80", 1),
        ("nowhere.test:443", 1),
        (&closed_key, 2),
    ]);
    assert_eq!(report.allowed, both);
    assert_eq!(report.failed, both);
    assert_eq!(report.denied, counts(&[("denied.test:443", 1)]));
    assert_eq!(report.error, None);
}

#[test]
fn bad_requests_get_a_line_saying_what_to_do() {
    let mut cfg = config(&[]);
    cfg.head_timeout = Duration::from_millis(300);
    let p = start(cfg);
    let ask = |request: &[u8]| {
        let mut c = client(p.http);
        c.write_all(request).unwrap();
        String::from_utf8(read_all(&mut c)).unwrap()
    };
    let text = ask(b"GET https://example.com/ HTTP/1.1\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("CONNECT tunnel"), "{text}");
    let text = ask(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("absolute URL"), "{text}");
    let text = ask(b"CONNECT example.com HTTP/1.1\r\n\r\n");
    assert!(text.contains("CONNECT example.com:443"), "{text}");
    let mut big = b"GET http://example.com/ HTTP/1.1\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 17 * 1024));
    let text = ask(&big);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    // A head that never ends: 408 once the (shortened) timeout passes.
    let text = ask(b"GET http://example.com/ HTTP/1.1\r\n");
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    let (_, reply) = {
        let mut s = client(p.socks);
        s.write_all(&[5, 1, 0]).unwrap();
        assert_eq!(read_n(&mut s, 2), [5, 0]);
        s.write_all(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).unwrap();
        let mut reply = [0u8; 10];
        s.read_exact(&mut reply).unwrap();
        (s, reply)
    };
    assert_eq!(reply[..2], [5, 7]);
    // No method the proxy takes: 0xFF, then the end.
    let mut s = client(p.socks);
    s.write_all(&[5, 1, 2]).unwrap();
    assert_eq!(read_all(&mut s), [5, 0xff]);
    let report = p.engine.stop();
    assert!(report.allowed.is_empty() && report.denied.is_empty());
}

#[test]
fn request_heads_are_read_as_a_proxy_reads_them() {
    let r = parse(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(r.target.to_string(), "[::1]");
    assert_eq!((r.port, r.head), (8443, None));
    let r = parse(b"POST http://Example.COM?x HTTP/1.0\r\nhost: a\r\nContent-Length: 3\r\n\r\n")
        .unwrap();
    assert_eq!(r.port, 80);
    assert_eq!(
        String::from_utf8(r.head.unwrap()).unwrap(),
        "POST /?x HTTP/1.0\r\nContent-Length: 3\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    );
    let r = parse(b"GET http://[::1]:8080/ HTTP/1.1\r\n\r\n").unwrap();
    assert!(String::from_utf8(r.head.unwrap())
        .unwrap()
        .contains("Host: [::1]:8080\r\n"));
    for bad in [
        &b"GET http://user@host/ HTTP/1.1\r\n\r\n"[..],
        b"GET http://host:0/ HTTP/1.1\r\n\r\n",
        b"GET http://host:x/ HTTP/1.1\r\n\r\n",
        b"GET http:///x HTTP/1.1\r\n\r\n",
        b"GET http://host/ HTTP/2\r\n\r\n",
        b"GET http://host/ HTTP/1.1\r\n folded\r\n\r\n",
        b"CONNECT ::1:443 HTTP/1.1\r\n\r\n",
        b"GET http://host/ HTTP/1.1\r\nA: b\rC: d\r\n\r\n",
        b"GET http://host/ HTTP/1.1\r\nA: b\nC: d\r\n\r\n",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn fifty_concurrent_transfers_of_one_mib_arrive_intact() {
    const SIZE: usize = 1 << 20;
    let port = echo_server();
    let p = start(config(&[format!("127.0.0.1:{port}")]));
    let pattern = |i: usize| -> Vec<u8> {
        (0..SIZE)
            .map(|j| (j.wrapping_mul(31) ^ i.wrapping_mul(7919) ^ (j >> 11)) as u8)
            .collect()
    };
    let (http, socks) = (p.http, p.socks);
    let clients: Vec<_> = (0..50)
        .map(|i| {
            thread::spawn(move || {
                let mut s = if i % 2 == 0 {
                    let mut c = client(http);
                    write!(c, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").unwrap();
                    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
                    assert_eq!(read_n(&mut c, ok.len()), ok);
                    c
                } else {
                    let (c, reply) = socks_request(socks, &[1, 127, 0, 0, 1], port);
                    assert_eq!(reply[..2], [5, 0]);
                    c
                };
                let data = pattern(i);
                let mut w = s.try_clone().unwrap();
                let sent = data.clone();
                let writer = thread::spawn(move || {
                    w.write_all(&sent).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let back = read_all(&mut s);
                writer.join().unwrap();
                assert!(back == data, "connection {i}: {} bytes back", back.len());
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let report = p.engine.stop();
    assert_eq!(
        report.allowed,
        counts(&[(&format!("127.0.0.1:{port}"), 50)])
    );
}

#[test]
fn stop_is_prompt_with_an_idle_tunnel_and_a_silent_client() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = upstream.local_addr().unwrap().port();
    let (eof_tx, eof) = mpsc::channel();
    thread::spawn(move || {
        let (mut s, _) = upstream.accept().unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(usize::MAX);
        eof_tx.send(n).unwrap();
    });
    let p = start(config(&[format!("127.0.0.1:{port}")]));
    let mut tunnel = client(p.http);
    write!(tunnel, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").unwrap();
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(read_n(&mut tunnel, ok.len()), ok);
    let mut silent = client(p.http);
    let mut silent_socks = client(p.socks);

    let t = Instant::now();
    let report = p.engine.stop();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(500), "stop took {took:?}");
    assert_eq!(
        eof.recv_timeout(TIMEOUT).unwrap(),
        0,
        "the upstream saw no EOF"
    );
    assert_eq!(read_all(&mut tunnel), b"");
    assert!(closed(&mut silent));
    assert!(closed(&mut silent_socks));
    // The listeners are closed.
    assert!(TcpStream::connect(p.http).is_err());
    assert!(TcpStream::connect(p.socks).is_err());
    assert_eq!(report.allowed.len(), 1);
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let mut cfg = config(&[]);
    cfg.max_connections = 1;
    let p = start(cfg);
    let first = client(p.http);
    let mut second = client(p.http);
    assert!(closed(&mut second));
    drop(first);
    let report = p.engine.stop();
    assert_eq!(report, crate::net::Report::default());
}

#[test]
fn an_accept_error_is_reported_and_ends_accepting() {
    // A socket that is not listening: poll reports it hung up, accept(2) fails with EINVAL.
    let not_listening = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    let socks = TcpListener::bind("127.0.0.1:0").unwrap();
    let listeners = Listeners {
        http: not_listening,
        socks: socks.into(),
        forwards: Vec::new(),
    };
    let engine = Engine::start(listeners, config(&[])).unwrap();
    // The acceptor ends by itself; stop still returns its report.
    let mut live = super::lock(&engine.shared.live);
    while live.acceptor {
        live = engine.shared.ended.wait_timeout(live, TIMEOUT).unwrap().0;
    }
    drop(live);
    let report = engine.stop();
    let error = report.error.unwrap();
    assert!(
        error.starts_with(
            "the network proxy stopped accepting connections: accept on its HTTP listener failed:"
        ),
        "{error}"
    );
}

#[test]
fn stop_leaves_a_thread_stuck_resolving_but_ends_its_client() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let mut cfg = config(&["slow.test".to_string()]);
    cfg.resolve = Arc::new(move |_, _| {
        entered_tx.send(()).unwrap();
        // Like getaddrinfo on a dead DNS server: deaf to the stop pipe.
        let _ = released.lock().unwrap().recv();
        Err(std::io::Error::other("gave up"))
    });
    let p = start(cfg);
    let mut c = client(p.http);
    c.write_all(b"GET http://slow.test/ HTTP/1.1\r\n\r\n")
        .unwrap();
    entered.recv_timeout(TIMEOUT).unwrap();

    let t = Instant::now();
    let report = p.engine.stop();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(800), "stop took {took:?}");
    assert!(closed(&mut c));
    // Nothing was counted: the resolution had not ended; when it does, nothing is answered.
    assert_eq!(report, crate::net::Report::default());
    release.send(()).unwrap();
}

#[test]
fn a_connect_that_does_not_complete_in_time_is_a_504() {
    // A listener whose accept queue is full drops further SYNs: connecting to it hangs.
    let fd = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    rustix::net::bind(&fd, &any).unwrap();
    rustix::net::listen(&fd, 0).unwrap();
    let full = TcpListener::from(fd);
    let port = full.local_addr().unwrap().port();
    let mut queued = Vec::new();
    // Fill the queue: connects complete until it is full; the next one would hang.
    for _ in 0..4 {
        let fd = rustix::net::socket_with(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        let _ = rustix::net::connect(&fd, &full.local_addr().unwrap());
        queued.push(fd);
    }
    let mut cfg = config(&[format!("127.0.0.1:{port}")]);
    cfg.connect_timeout = Duration::from_millis(300);
    let p = start(cfg);
    let mut c = client(p.http);
    write!(c, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").unwrap();
    let text = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("timed out"), "{text}");
    let report = p.engine.stop();
    assert_eq!(report.failed, counts(&[(&format!("127.0.0.1:{port}"), 1)]));
}

#[test]
fn a_forwarded_loopback_port_goes_to_the_listed_host_and_is_counted() {
    let port = echo_server();
    let entries = [format!("127.0.0.1:{port}"), "localhost:11434".to_string()];
    let policy = Policy::parse(&entries).unwrap();
    // The proxy's own ports are never forwarded; each port once, sorted.
    assert_eq!(
        policy.loopback_forwards(&[11434]),
        [(port, "127.0.0.1".to_string())]
    );
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let socks = TcpListener::bind("127.0.0.1:0").unwrap();
    let forwarded = TcpListener::bind("127.0.0.1:0").unwrap();
    let forwarded_addr = forwarded.local_addr().unwrap();
    let listeners = Listeners {
        http: http.into(),
        socks: socks.into(),
        forwards: vec![crate::net::Forward {
            listener: forwarded.into(),
            host: "127.0.0.1".into(),
            port,
        }],
    };
    let engine = Engine::start(listeners, Config::new(policy)).unwrap();
    let mut c = client(forwarded_addr);
    c.write_all(b"straight through").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"straight through");
    let report = engine.stop();
    assert_eq!(report.allowed, counts(&[(&format!("127.0.0.1:{port}"), 1)]));
    assert!(report.denied.is_empty() && report.failed.is_empty());
}
