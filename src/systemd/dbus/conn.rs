//! Reaching a bus: its address, SASL EXTERNAL authentication, and one blocking connection that
//! sends calls and reads their replies and the signals that come meanwhile.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::decode::{decode, message_len, Message};
use super::encode::{encode_call, Call};
use super::{DbusError, ERROR, METHOD_RETURN, SIGNAL};

/// Where a bus listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Path(p) => write!(f, "{}", p.display()),
            Addr::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

/// Parses a D-Bus server address list (`unix:path=/run/user/1000/bus;…`): the Unix addresses in
/// order. `%XX` escapes are decoded; other transports are skipped.
pub fn parse_address(text: &str) -> Vec<Addr> {
    let mut out = Vec::new();
    for entry in text.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            match kv.split_once('=') {
                Some(("path", v)) => {
                    use std::os::unix::ffi::OsStringExt;
                    let bytes = unescape(v);
                    out.push(Addr::Path(PathBuf::from(std::ffi::OsString::from_vec(
                        bytes,
                    ))));
                }
                Some(("abstract", v)) => out.push(Addr::Abstract(unescape(v))),
                _ => {}
            }
        }
    }
    out
}

fn unescape(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(Ok(x)) = v.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The SASL EXTERNAL exchange as one write: the NUL byte, our uid in hex of its decimal digits,
/// and BEGIN right away (sd-bus pipelines it the same way; servers answer OK before BEGIN counts).
pub fn auth_bytes(uid: u32) -> Vec<u8> {
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").into_bytes()
}

/// An authenticated connection.
pub struct Conn {
    sock: UnixStream,
    addr: String,
    serial: u32,
    buf: Vec<u8>,
    /// Messages read while waiting for something else (signals that came first).
    pending: Vec<Message>,
    /// A bus daemon sits between us and the manager (not a private socket).
    pub via_daemon: bool,
    /// The server's OK has been read.
    authed: bool,
}

pub const DBUS: &str = "org.freedesktop.DBus";

impl Conn {
    /// Connects to `addr` and authenticates as `uid`; says `Hello` when `via_daemon` (its reply,
    /// the unique name, is not needed and is skipped like any other reply nobody waits for).
    pub fn open(
        addr: &Addr,
        uid: u32,
        via_daemon: bool,
        timeout: Duration,
    ) -> Result<Conn, DbusError> {
        let name = addr.to_string();
        let sock = match addr {
            Addr::Path(p) => UnixStream::connect(p),
            Addr::Abstract(n) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(n)
                    .and_then(|a| UnixStream::connect_addr(&a))
            }
        }
        .map_err(|source| DbusError::Connect {
            addr: name.clone(),
            source,
        })?;
        let io = |source| DbusError::Io {
            addr: name.clone(),
            source,
        };
        sock.set_read_timeout(Some(timeout)).map_err(io)?;
        sock.set_write_timeout(Some(timeout)).map_err(io)?;
        let mut c = Conn {
            sock,
            addr: name,
            serial: 0,
            buf: Vec::new(),
            pending: Vec::new(),
            via_daemon,
            authed: false,
        };
        let mut out = auth_bytes(uid);
        let hello = via_daemon.then(|| {
            c.serial += 1;
            encode_call(&hello_call(), c.serial)
        });
        if let Some(h) = &hello {
            out.extend_from_slice(h);
        }
        // The calls that follow go out without waiting for the server's OK (it reads them after
        // BEGIN; dbus-daemon and sd-bus both keep what follows BEGIN): one round trip less.
        c.write(&out)?;
        Ok(c)
    }

    /// Reads the server's answer to our authentication, once, before the first message.
    fn authenticated(&mut self) -> Result<(), DbusError> {
        if self.authed {
            return Ok(());
        }
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth {
                addr: self.addr.clone(),
                line,
            });
        }
        self.authed = true;
        Ok(())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), DbusError> {
        self.sock.write_all(bytes).map_err(|source| DbusError::Io {
            addr: self.addr.clone(),
            source,
        })
    }

    fn fill(&mut self) -> Result<(), DbusError> {
        let mut chunk = [0u8; 4096];
        let n = loop {
            match self.sock.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(DbusError::Io {
                        addr: self.addr.clone(),
                        source,
                    })
                }
            }
        };
        if n == 0 {
            return Err(DbusError::Io {
                addr: self.addr.clone(),
                source: io::ErrorKind::UnexpectedEof.into(),
            });
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_line(&mut self) -> Result<String, DbusError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > 4096 {
                return Err(self.malformed("authentication line too long"));
            }
            self.fill()?;
        }
    }

    fn malformed(&self, what: &'static str) -> DbusError {
        DbusError::Malformed {
            addr: self.addr.clone(),
            what,
        }
    }

    /// Reads the next message.
    pub fn read_message(&mut self) -> Result<Message, DbusError> {
        self.authenticated()?;
        loop {
            if let Some(n) = message_len(&self.buf).map_err(|w| self.malformed(w))? {
                if self.buf.len() >= n {
                    let m = decode(&self.buf[..n]).map_err(|w| self.malformed(w))?;
                    self.buf.drain(..n);
                    return Ok(m);
                }
            }
            self.fill()?;
        }
    }

    /// Sends a call without waiting; returns its serial.
    pub fn send(&mut self, call: &Call) -> Result<u32, DbusError> {
        self.serial += 1;
        let bytes = encode_call(call, self.serial);
        self.write(&bytes)?;
        Ok(self.serial)
    }

    /// Waits for the reply to `serial`, keeping signals that arrive meanwhile; an error reply
    /// becomes [`DbusError::Call`].
    pub fn reply(&mut self, serial: u32) -> Result<Message, DbusError> {
        loop {
            let m = self.read_message()?;
            if m.reply_serial == Some(serial) && (m.kind == METHOD_RETURN || m.kind == ERROR) {
                if m.kind == ERROR {
                    return Err(DbusError::Call {
                        name: m.error_name.clone().unwrap_or_default(),
                        message: m.str_at(0).unwrap_or("").to_string(),
                    });
                }
                return Ok(m);
            }
            if m.kind == SIGNAL {
                self.pending.push(m);
            }
        }
    }

    /// A call and its reply.
    pub fn call(&mut self, call: &Call) -> Result<Message, DbusError> {
        let serial = self.send(call)?;
        self.reply(serial)
    }

    /// The next signal, first from those kept while waiting for replies.
    pub fn next_signal(&mut self) -> Result<Message, DbusError> {
        if !self.pending.is_empty() {
            return Ok(self.pending.remove(0));
        }
        loop {
            let m = self.read_message()?;
            if m.kind == SIGNAL {
                return Ok(m);
            }
        }
    }
}

/// The Hello a client of the bus daemon sends first (not on a manager's private socket).
pub fn hello_call() -> Call<'static> {
    Call {
        destination: Some(DBUS),
        path: "/org/freedesktop/DBus",
        interface: DBUS,
        member: "Hello",
        args: vec![],
    }
}
