//! The network tests' side of the wire, in the suite's own process (root, the VM's root network
//! namespace): an HTTP/1.1 server on threads, a UDP "DNS" responder, an extra address on `lo`,
//! and /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf entries naming it. `Net::setup` builds
//! all of it for one test; dropping it stops the threads and restores everything, also when the
//! test failed.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::net_helpers::fill_pattern;

/// The VM's extra address, on `lo`: what the test names resolve to.
pub const ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The label of the alias that carries ADDR.
const ALIAS: &str = "lo:synnet";

/// /etc/hosts while a test runs.
pub const HOSTS: &str = "127.0.0.1 localhost\n\
    10.77.0.1 allowed.test denied.test sub.wild.test wild.test\n\
    169.254.169.254 meta.test\n";
/// Files before DNS, so the names above never depend on the responder (glibc's default without
/// nsswitch.conf is `dns [!UNAVAIL=return] files`: an answering server would hide the files).
pub const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";

/// How one connection to the server ended, sent when its thread is done with it.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The request's path, empty when none arrived.
    pub path: String,
    /// Body bytes written.
    pub sent: u64,
    /// `eof`, `done` (answered in full), `stopped` (the fixture ended) or an errno name.
    pub how: String,
}

/// The HTTP server: `/hello`, `/bytes/N` (N bytes of `pattern`), `/endless` (`pattern` until
/// the peer goes), `/slow` (reads the request and never answers). Listens on 0.0.0.0:PORT, so on
/// 127.0.0.1 and ADDR.
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
    closed: mpsc::Receiver<Closed>,
}

impl Server {
    pub fn start(ip: Ipv4Addr) -> Result<Server, String> {
        let listener = TcpListener::bind((ip, 0)).map_err(|e| format!("bind {ip}:0: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("local_addr: {e}"))?
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, closed) = mpsc::channel();
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let accept = std::thread::spawn(move || {
            loop {
                // An error (ECONNABORTED and the like): the next accept goes on.
                let accepted = listener.accept();
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok((s, _)) = accepted {
                    accepted2.fetch_add(1, Ordering::Relaxed);
                    let (stop, tx) = (stop2.clone(), tx.clone());
                    let _ = std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn(move || {
                            let c = serve(s, &stop);
                            let _ = tx.send(c);
                        });
                }
            }
        });
        Ok(Server {
            port,
            stop,
            accepted,
            accept: Some(accept),
            closed,
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Waits until a connection whose request was `path` ends, at most `within`.
    pub fn wait_closed(&self, path: &str, within: Duration) -> Result<Closed, String> {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.closed.recv_timeout(left) {
                Ok(c) if c.path == path => return Ok(c),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "the server saw no connection for {path} end within {within:?}"
                    ))
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Connection threads notice within their 200 ms timeouts and end by themselves; only the
        // accept loop is waited for.
        self.stop.store(true, Ordering::Relaxed);
        // The accept loop blocks in accept: one connection of our own wakes it to see the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Writes all of `buf`, retrying timeouts until `stop`.
fn write_all(s: &mut TcpStream, mut buf: &[u8], stop: &AtomicBool) -> Result<(), String> {
    while !buf.is_empty() {
        if stop.load(Ordering::Relaxed) {
            return Err("stopped".into());
        }
        match s.write(buf) {
            Ok(0) => return Err("eof".into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(crate::net_helpers::errno_name(&e)),
        }
    }
    Ok(())
}

/// Reads the request head; Err(how it ended) when none came.
fn read_request(s: &mut TcpStream, stop: &AtomicBool) -> Result<String, String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let until = Instant::now() + Duration::from_secs(60);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if stop.load(Ordering::Relaxed) {
            return Err("stopped".into());
        }
        if Instant::now() > until || head.len() > 65536 {
            return Err("no request".into());
        }
        match s.read(&mut buf) {
            Ok(0) => return Err("eof".into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(crate::net_helpers::errno_name(&e)),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or("").to_string();
    // An absolute-form target (a proxy passing it on unchanged) still names the path.
    Ok(match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => target,
    })
}

/// Streams bytes [from, to) of `pattern` (to = None: forever); returns the count written and
/// how it ended.
fn stream_pattern(s: &mut TcpStream, to: Option<u64>, stop: &AtomicBool) -> (u64, String) {
    let mut buf = vec![0u8; 65536];
    let mut at = 0u64;
    loop {
        let n = match to {
            Some(t) if at >= t => return (at, "done".into()),
            Some(t) => buf.len().min((t - at) as usize),
            None => buf.len(),
        };
        fill_pattern(at, &mut buf[..n]);
        if let Err(how) = write_all(s, &buf[..n], stop) {
            return (at, how);
        }
        at += n as u64;
    }
}

/// Serves one connection.
fn serve(mut s: TcpStream, stop: &AtomicBool) -> Closed {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let path = match read_request(&mut s, stop) {
        Ok(p) => p,
        Err(how) => {
            return Closed {
                path: String::new(),
                sent: 0,
                how,
            }
        }
    };
    let head = |len: Option<u64>| {
        match len {
        Some(l) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {l}\r\nConnection: close\r\n\r\n"
        ),
        None => "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n".into(),
    }
    };
    let (sent, how) = if path == "/hello" {
        let r = write_all(
            &mut s,
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n",
            stop,
        );
        (6, r.err().unwrap_or_else(|| "done".into()))
    } else if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse().ok()) {
        match write_all(&mut s, head(Some(n)).as_bytes(), stop) {
            Ok(()) => stream_pattern(&mut s, Some(n), stop),
            Err(how) => (0, how),
        }
    } else if path == "/endless" {
        match write_all(&mut s, head(None).as_bytes(), stop) {
            Ok(()) => stream_pattern(&mut s, None, stop),
            Err(how) => (0, how),
        }
    } else if path == "/slow" {
        // Never answers; waits for the peer to go (or the fixture to end).
        let mut buf = [0u8; 1024];
        let how = loop {
            if stop.load(Ordering::Relaxed) {
                break "stopped".to_string();
            }
            match s.read(&mut buf) {
                Ok(0) => break "eof".into(),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => break crate::net_helpers::errno_name(&e),
            }
        };
        (0, how)
    } else {
        let r = write_all(
            &mut s,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n",
            stop,
        );
        (0, r.err().unwrap_or_else(|| "done".into()))
    };
    if how == "done" {
        // Let the peer read everything before the socket goes: a close with unread input would
        // reset the connection.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 1024];
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
    }
    Closed { path, sent, how }
}

/// A UDP responder on ADDR:53 that answers every datagram that looks like a DNS query with
/// NXDOMAIN, and counts them.
pub struct Dns {
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    pub fn start(ip: Ipv4Addr, port: u16) -> Result<Dns, String> {
        let sock = UdpSocket::bind((ip, port)).map_err(|e| format!("bind udp {ip}:{port}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (stop2, queries2) = (stop.clone(), queries.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                queries2.fetch_add(1, Ordering::Relaxed);
                let mut answer = buf[..n].to_vec();
                // QR, the query's opcode and RD, RA, NXDOMAIN; no answer records.
                answer[2] = 0x80 | (buf[2] & 0x79);
                answer[3] = 0x80 | 3;
                answer[6..12].fill(0);
                let _ = sock.send_to(&answer, from);
            }
        });
        Ok(Dns {
            stop,
            queries,
            thread: Some(thread),
        })
    }

    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A file replaced for the test's duration: restored (or removed, if it did not exist) on drop.
pub struct Replaced {
    path: String,
    old: Option<Vec<u8>>,
}

impl Replaced {
    pub fn new(path: &str, text: &str) -> Result<Replaced, String> {
        let old = match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("read {path}: {e}")),
        };
        let guard = Replaced {
            path: path.to_string(),
            old,
        };
        std::fs::write(path, text).map_err(|e| format!("write {path}: {e}"))?;
        Ok(guard)
    }
}

impl Drop for Replaced {
    fn drop(&mut self) {
        let _ = match &self.old {
            Some(b) => std::fs::write(&self.path, b),
            None => std::fs::remove_file(&self.path),
        };
    }
}

/// struct ifreq: the name, then a 24-byte union (flags, or a struct sockaddr).
fn ifreq(name: &str) -> [u8; 40] {
    let mut req = [0u8; 40];
    req[..name.len()].copy_from_slice(name.as_bytes());
    req
}

fn inet_socket() -> Result<OwnedFd, String> {
    // SAFETY: socket(2) with constant arguments; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(sock: &OwnedFd, what: &str, req: libc::c_ulong, ifr: &mut [u8; 40]) -> Result<(), String> {
    // SAFETY: every request used here reads or writes a struct ifreq, which is 40 bytes on Linux.
    if unsafe { libc::ioctl(sock.as_raw_fd(), req, ifr.as_mut_ptr()) } != 0 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

fn get_flags(sock: &OwnedFd, name: &str) -> Result<i16, String> {
    let mut r = ifreq(name);
    ioctl(
        sock,
        &format!("SIOCGIFFLAGS {name}"),
        libc::SIOCGIFFLAGS,
        &mut r,
    )?;
    Ok(i16::from_ne_bytes([r[16], r[17]]))
}

fn set_flags(sock: &OwnedFd, name: &str, flags: i16) -> Result<(), String> {
    let mut r = ifreq(name);
    r[16..18].copy_from_slice(&flags.to_ne_bytes());
    ioctl(
        sock,
        &format!("SIOCSIFFLAGS {name}"),
        libc::SIOCSIFFLAGS,
        &mut r,
    )
}

/// A struct sockaddr_in for `ip` in an ifreq's union.
fn set_sockaddr(r: &mut [u8; 40], ip: Ipv4Addr) {
    r[16..18].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    r[20..24].copy_from_slice(&ip.octets());
}

/// `lo` up (the VM's init leaves it down) with ADDR/32 as the alias `lo:synnet`; dropping it
/// removes the alias and puts `lo` back as it was.
pub struct LoAddr {
    lo_was_up: bool,
}

impl LoAddr {
    pub fn add(ip: Ipv4Addr) -> Result<LoAddr, String> {
        let sock = inet_socket()?;
        let flags = get_flags(&sock, "lo")?;
        let lo_was_up = flags & libc::IFF_UP as i16 != 0;
        let guard = LoAddr { lo_was_up };
        if !lo_was_up {
            set_flags(&sock, "lo", flags | libc::IFF_UP as i16)?;
        }
        let mut r = ifreq(ALIAS);
        set_sockaddr(&mut r, ip);
        ioctl(
            &sock,
            &format!("SIOCSIFADDR {ALIAS} {ip}"),
            libc::SIOCSIFADDR,
            &mut r,
        )?;
        let mut r = ifreq(ALIAS);
        set_sockaddr(&mut r, Ipv4Addr::BROADCAST);
        ioctl(
            &sock,
            &format!("SIOCSIFNETMASK {ALIAS}"),
            libc::SIOCSIFNETMASK,
            &mut r,
        )?;
        Ok(guard)
    }
}

impl Drop for LoAddr {
    fn drop(&mut self) {
        let Ok(sock) = inet_socket() else { return };
        // An alias set down loses its address (devinet_ioctl), and with it the alias.
        if let Ok(flags) = get_flags(&sock, ALIAS) {
            let _ = set_flags(&sock, ALIAS, flags & !(libc::IFF_UP as i16));
        }
        if !self.lo_was_up {
            if let Ok(flags) = get_flags(&sock, "lo") {
                let _ = set_flags(&sock, "lo", flags & !(libc::IFF_UP as i16));
            }
        }
    }
}

/// Everything one network test needs. Fields drop in order: the servers before the address.
pub struct Net {
    pub server: Server,
    pub dns: Dns,
    _files: Vec<Replaced>,
    _addr: LoAddr,
}

impl Net {
    /// The fixture with its files in `etc` (/etc in the VM; a scratch directory elsewhere).
    pub fn setup_in(etc: &str) -> Result<Net, String> {
        let files = vec![
            Replaced::new(&format!("{etc}/hosts"), HOSTS)?,
            Replaced::new(&format!("{etc}/nsswitch.conf"), NSSWITCH)?,
            Replaced::new(
                &format!("{etc}/resolv.conf"),
                &format!("nameserver {ADDR}\n"),
            )?,
        ];
        let addr = LoAddr::add(ADDR)?;
        let server = Server::start(Ipv4Addr::UNSPECIFIED)?;
        let dns = Dns::start(ADDR, 53)?;
        Ok(Net {
            server,
            dns,
            _files: files,
            _addr: addr,
        })
    }

    pub fn setup() -> Result<Net, String> {
        Self::setup_in("/etc")
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `http://HOST:PORT/PATH` on the server.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.server.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net_helpers::{pattern_fnv, read_response, Got};

    fn get(port: u16, path: &str) -> Got {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_response(s)
    }

    #[test]
    fn server_paths() {
        let srv = Server::start(Ipv4Addr::LOCALHOST).unwrap();
        assert_eq!(get(srv.port, "/hello").to_string(), {
            let mut h = crate::net_helpers::Fnv::new();
            h.update(b"hello\n");
            format!("status 200 bytes 6 fnv={:016x}", h.0)
        });
        let n = 3 * 1024 * 1024 + 17;
        assert_eq!(
            get(srv.port, &format!("/bytes/{n}")),
            Got::Ok {
                bytes: n,
                fnv: pattern_fnv(n)
            }
        );
        assert!(matches!(
            get(srv.port, "/nothing"),
            Got::Status { code: 404, .. }
        ));
        // /endless: read some, hang up, and the server says so promptly.
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        write!(s, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = vec![0u8; 200_000];
        s.read_exact(&mut buf).unwrap();
        drop(s);
        let c = srv.wait_closed("/endless", Duration::from_secs(5)).unwrap();
        assert!(c.sent >= 100_000, "{c:?}");
        // /slow answers nothing; the close is seen.
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        write!(s, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert!(s.read(&mut buf).is_err());
        drop(s);
        let c = srv.wait_closed("/slow", Duration::from_secs(5)).unwrap();
        assert_eq!(c.how, "eof");
        assert!(srv.accepted() >= 5);
    }

    #[test]
    fn dns_answers() {
        let d = Dns::start(Ipv4Addr::LOCALHOST, 53530).unwrap();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let q = crate::net_helpers::dns_query(7, "a.test");
        s.send_to(&q, "127.0.0.1:53530").unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 7]);
        assert_eq!(buf[3] & 0x0f, 3);
        assert!(n >= 12);
        assert_eq!(d.queries(), 1);
    }

    #[test]
    fn replaced_restores() {
        let dir = std::env::temp_dir().join(format!("synnet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("hosts");
        let p = p.to_str().unwrap();
        std::fs::write(p, "old\n").unwrap();
        {
            let _r = Replaced::new(p, "new\n").unwrap();
            assert_eq!(std::fs::read_to_string(p).unwrap(), "new\n");
        }
        assert_eq!(std::fs::read_to_string(p).unwrap(), "old\n");
        let q = dir.join("resolv.conf");
        let q = q.to_str().unwrap();
        {
            let _r = Replaced::new(q, "x\n").unwrap();
        }
        assert!(!std::path::Path::new(q).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Needs root: run with `--ignored` inside `unshare -n` (it changes the namespace's `lo`).
    /// The whole fixture with its files in a scratch directory, and the direct probes against it.
    #[test]
    #[ignore]
    fn whole_fixture_in_netns() {
        use crate::net_helpers::{probe_dns, probe_tcp};
        let dir = std::env::temp_dir().join(format!("synnet-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let etc = dir.to_str().unwrap().to_string();
        let resolv = format!("{etc}/resolv.conf");
        std::fs::write(&resolv, "nameserver 192.0.2.1\n").unwrap();
        {
            let net = Net::setup_in(&etc).unwrap();
            assert_eq!(
                std::fs::read_to_string(format!("{etc}/hosts")).unwrap(),
                HOSTS
            );
            let p = net.port();
            assert_eq!(probe_tcp("10.77.0.1", p), "ok");
            assert_eq!(probe_tcp("127.0.0.1", p), "ok");
            assert_eq!(probe_tcp("127.0.0.1", 1), "ECONNREFUSED");
            assert_eq!(probe_tcp("192.0.2.7", p), "ENETUNREACH");
            assert_eq!(probe_dns(&resolv), "10.77.0.1 ok");
            assert_eq!(net.dns.queries(), 1);
            let mut s = TcpStream::connect((ADDR, p)).unwrap();
            write!(s, "GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            assert_eq!(
                read_response(s),
                Got::Ok {
                    bytes: 1000,
                    fnv: pattern_fnv(1000)
                }
            );
        }
        // Everything undone: the old resolv.conf back, no hosts file, no address, lo down.
        assert_eq!(
            std::fs::read_to_string(&resolv).unwrap(),
            "nameserver 192.0.2.1\n"
        );
        assert!(!std::path::Path::new(&format!("{etc}/hosts")).exists());
        assert!(TcpListener::bind((ADDR, 0)).is_err());
        let sock = inet_socket().unwrap();
        assert_eq!(get_flags(&sock, "lo").unwrap() & libc::IFF_UP as i16, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
