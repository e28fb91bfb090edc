//! A minimal D-Bus client: enough to ask a systemd manager for a transient scope and to read one
//! unit property, and nothing more. One blocking Unix socket, no threads (it runs before fork),
//! no C library. It speaks the wire protocol of the D-Bus specification
//! (<https://dbus.freedesktop.org/doc/dbus-specification.html>): SASL EXTERNAL authentication, then
//! little-endian messages with the few types a call to systemd needs.
//!
//! A connection to a bus daemon (the system or a session bus) starts with `Hello`; a direct
//! connection to a manager's private socket (`/run/systemd/private`) has no daemon and no `Hello`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong talking to a bus, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("{addr}: {source}")]
    Io { addr: String, source: io::Error },
    #[error("{addr}: authentication refused ({line})")]
    Auth { addr: String, line: String },
    #[error("{addr}: malformed message ({what})")]
    Malformed { addr: String, what: &'static str },
    #[error("{name}: {message}")]
    Call { name: String, message: String },
    #[error("no usable address in `{0}` (only unix:path= and unix:abstract= are supported)")]
    Address(String),
}

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

/// A value of the few D-Bus types the calls here send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Path(String),
    U32(u32),
    U64(u64),
    Bool(bool),
    /// `au`
    U32s(Vec<u32>),
    /// `as`
    Strs(Vec<String>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Str(_) => "s",
            Value::Path(_) => "o",
            Value::U32(_) => "u",
            Value::U64(_) => "t",
            Value::Bool(_) => "b",
            Value::U32s(_) => "au",
            Value::Strs(_) => "as",
        }
    }
}

/// An argument of a method call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Val(Value),
    /// `a(sv)`: unit properties.
    Props(Vec<(String, Value)>),
    /// `a(sa(sv))`: auxiliary units (always empty here, but typed).
    AuxUnits(Vec<(String, Vec<(String, Value)>)>),
}

impl Arg {
    fn signature(&self) -> String {
        match self {
            Arg::Val(v) => v.signature().into(),
            Arg::Props(_) => "a(sv)".into(),
            Arg::AuxUnits(_) => "a(sa(sv))".into(),
        }
    }
}

/// The marshalling buffer. Offsets are relative to its start, which is 8-aligned in the message
/// (the header and the body both start at a multiple of 8).
#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array whose elements align to `align`: the length counts from the first element.
    fn array(&mut self, align: usize, body: impl FnOnce(&mut Enc)) {
        self.pad(4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.pad(align);
        let start = self.buf.len();
        body(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Str(s) => self.str(s),
            Value::Path(s) => self.str(s),
            Value::U32(u) => self.u32(*u),
            Value::U64(u) => self.u64(*u),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32s(list) => self.array(4, |e| list.iter().for_each(|u| e.u32(*u))),
            Value::Strs(list) => self.array(4, |e| list.iter().for_each(|s| e.str(s))),
        }
    }
    fn variant(&mut self, v: &Value) {
        self.sig(v.signature());
        self.value(v);
    }
    fn props(&mut self, props: &[(String, Value)]) {
        self.array(8, |e| {
            for (name, v) in props {
                e.pad(8);
                e.str(name);
                e.variant(v);
            }
        });
    }
    fn arg(&mut self, a: &Arg) {
        match a {
            Arg::Val(v) => self.value(v),
            Arg::Props(p) => self.props(p),
            Arg::AuxUnits(list) => self.array(8, |e| {
                for (name, props) in list {
                    e.pad(8);
                    e.str(name);
                    e.props(props);
                }
            }),
        }
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// A method call to send.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub destination: Option<&'a str>,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub args: Vec<Arg>,
}

/// Marshals a method call with `serial` (little-endian, protocol version 1).
pub fn encode_call(call: &Call, serial: u32) -> Vec<u8> {
    let mut body = Enc::default();
    let mut signature = String::new();
    for a in &call.args {
        signature.push_str(&a.signature());
        body.arg(a);
    }
    let mut h = Enc::default();
    h.u8(b'l');
    h.u8(METHOD_CALL);
    h.u8(0);
    h.u8(1);
    h.u32(body.buf.len() as u32);
    h.u32(serial);
    let field = |e: &mut Enc, code: u8, sig: &str, write: &dyn Fn(&mut Enc)| {
        e.pad(8);
        e.u8(code);
        e.sig(sig);
        write(e);
    };
    h.array(8, |e| {
        field(e, 1, "o", &|e| e.str(call.path));
        field(e, 2, "s", &|e| e.str(call.interface));
        field(e, 3, "s", &|e| e.str(call.member));
        if let Some(d) = call.destination {
            field(e, 6, "s", &|e| e.str(d));
        }
        if !signature.is_empty() {
            field(e, 8, "g", &|e| e.sig(&signature));
        }
    });
    h.pad(8);
    h.buf.extend_from_slice(&body.buf);
    h.buf
}

/// A value read from a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Str(String),
    U32(u32),
    Bool(bool),
    /// Any other type, skipped.
    Other,
}

/// A received message, with the header fields and the body values this client reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub kind: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub signature: String,
    /// The body's top-level values (a variant is unwrapped to its value).
    pub body: Vec<Got>,
}

impl Message {
    pub fn is_signal(&self, interface: &str, member: &str) -> bool {
        self.kind == SIGNAL
            && self.interface.as_deref() == Some(interface)
            && self.member.as_deref() == Some(member)
    }
    fn str_at(&self, i: usize) -> Option<&str> {
        match self.body.get(i) {
            Some(Got::Str(s)) => Some(s),
            _ => None,
        }
    }
}

struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

type DecResult<T> = Result<T, &'static str>;

impl Dec<'_> {
    fn align(&mut self, n: usize) -> DecResult<()> {
        let p = self.pos.div_ceil(n) * n;
        if p > self.buf.len() {
            return Err("truncated");
        }
        self.pos = p;
        Ok(())
    }
    fn take(&mut self, n: usize) -> DecResult<&[u8]> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("truncated")?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> DecResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> DecResult<u32> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "truncated")?;
        Ok(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn str(&mut self) -> DecResult<String> {
        let n = self.u32()? as usize;
        let s = self.take(n)?.to_vec();
        self.take(1)?;
        String::from_utf8(s).map_err(|_| "invalid UTF-8")
    }
    fn sig(&mut self) -> DecResult<String> {
        let n = self.u8()? as usize;
        let s = self.take(n)?.to_vec();
        self.take(1)?;
        String::from_utf8(s).map_err(|_| "invalid signature")
    }
    /// Reads one complete type from the front of `sig`, returning the value and the rest.
    fn value<'s>(&mut self, sig: &'s str) -> DecResult<(Got, &'s str)> {
        let (ty, rest) = split_type(sig)?;
        let got = match ty.as_bytes()[0] {
            b'y' => {
                self.u8()?;
                Got::Other
            }
            b'b' => Got::Bool(self.u32()? != 0),
            b'u' => Got::U32(self.u32()?),
            b'i' | b'h' => {
                self.u32()?;
                Got::Other
            }
            b'n' | b'q' => {
                self.align(2)?;
                self.take(2)?;
                Got::Other
            }
            b't' | b'x' | b'd' => {
                self.align(8)?;
                self.take(8)?;
                Got::Other
            }
            b's' | b'o' => Got::Str(self.str()?),
            b'g' => Got::Str(self.sig()?),
            b'v' => {
                let inner = self.sig()?;
                let (v, left) = self.value(&inner)?;
                if !left.is_empty() {
                    return Err("variant holds more than one type");
                }
                v
            }
            b'a' => {
                let len = self.u32()? as usize;
                let elem = &ty[1..];
                self.align(type_align(elem))?;
                let end = self.pos.checked_add(len).ok_or("length overflow")?;
                if end > self.buf.len() {
                    return Err("truncated");
                }
                while self.pos < end {
                    self.value(elem)?;
                }
                Got::Other
            }
            b'(' | b'{' => {
                self.align(8)?;
                let mut inner = &ty[1..ty.len() - 1];
                while !inner.is_empty() {
                    inner = self.value(inner)?.1;
                }
                Got::Other
            }
            _ => return Err("unsupported type"),
        };
        Ok((got, rest))
    }
}

/// The first complete type of a signature and the rest.
fn split_type(sig: &str) -> DecResult<(&str, &str)> {
    let b = sig.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'a') {
        i += 1;
    }
    match b.get(i) {
        None => Err("empty signature"),
        Some(b'(') | Some(b'{') => {
            let mut depth = 0usize;
            for (j, c) in b.iter().enumerate().skip(i) {
                match c {
                    b'(' | b'{' => depth += 1,
                    b')' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(sig.split_at(j + 1));
                        }
                    }
                    _ => {}
                }
            }
            Err("unbalanced signature")
        }
        Some(_) => Ok(sig.split_at(i + 1)),
    }
}

fn type_align(ty: &str) -> usize {
    match ty.as_bytes().first() {
        Some(b'y' | b'g' | b'v') => 1,
        Some(b'n' | b'q') => 2,
        Some(b't' | b'x' | b'd' | b'(' | b'{') => 8,
        _ => 4,
    }
}

/// The length of the message that starts `buf`, once its fixed 16 bytes are there.
fn message_len(buf: &[u8]) -> DecResult<Option<usize>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let big = match buf[0] {
        b'l' => false,
        b'B' => true,
        _ => return Err("bad endianness byte"),
    };
    let word = |at: usize| {
        let b: [u8; 4] = buf[at..at + 4].try_into().expect("4 bytes");
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let body = word(4) as usize;
    let fields = word(12) as usize;
    let total = (16 + fields).div_ceil(8) * 8 + body;
    if total > 128 << 20 {
        return Err("message too long");
    }
    Ok(Some(total))
}

/// Unmarshals one complete message.
pub fn decode(buf: &[u8]) -> Result<Message, &'static str> {
    let mut d = Dec {
        buf,
        pos: 0,
        big: buf.first() == Some(&b'B'),
    };
    d.u8()?;
    let mut m = Message {
        kind: d.u8()?,
        ..Message::default()
    };
    d.u8()?;
    if d.u8()? != 1 {
        return Err("protocol version is not 1");
    }
    let body_len = d.u32()? as usize;
    m.serial = d.u32()?;
    let fields_len = d.u32()? as usize;
    let fields_end = d.pos.checked_add(fields_len).ok_or("length overflow")?;
    if fields_end > buf.len() {
        return Err("truncated");
    }
    while d.pos < fields_end {
        d.align(8)?;
        let code = d.u8()?;
        let sig = d.sig()?;
        let (v, _) = d.value(&sig)?;
        let s = match &v {
            Got::Str(s) => Some(s.clone()),
            _ => None,
        };
        match (code, v) {
            (1, _) => m.path = s,
            (2, _) => m.interface = s,
            (3, _) => m.member = s,
            (4, _) => m.error_name = s,
            (5, Got::U32(u)) => m.reply_serial = Some(u),
            (8, _) => m.signature = s.unwrap_or_default(),
            _ => {}
        }
    }
    d.align(8)?;
    let body_start = d.pos;
    if body_start + body_len > buf.len() {
        return Err("truncated body");
    }
    // The body aligns relative to its own start, which is 8-aligned.
    let mut b = Dec {
        buf: &buf[body_start..body_start + body_len],
        pos: 0,
        big: d.big,
    };
    let sig = m.signature.clone();
    let mut rest = sig.as_str();
    while !rest.is_empty() {
        let (v, r) = b.value(rest)?;
        m.body.push(v);
        rest = r;
    }
    Ok(m)
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
            encode_call(
                &Call {
                    destination: Some(DBUS),
                    path: "/org/freedesktop/DBus",
                    interface: DBUS,
                    member: "Hello",
                    args: vec![],
                },
                c.serial,
            )
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

/// The first string of a reply body (a `s` or `o` return value).
pub fn first_str(m: &Message) -> Option<&str> {
    m.str_at(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hello_is_marshalled_byte_for_byte() {
        // The Hello every bus client sends first, as dbus-send and sd-bus write it.
        let m = encode_call(
            &Call {
                destination: Some(DBUS),
                path: "/org/freedesktop/DBus",
                interface: DBUS,
                member: "Hello",
                args: vec![],
            },
            1,
        );
        let want = concat!(
            "6c010001",
            "00000000",
            "01000000",
            "6d000000",
            // PATH
            "01016f00",
            "15000000",
            "2f6f72672f667265656465736b746f702f4442757300",
            "0000",
            // INTERFACE
            "02017300",
            "14000000",
            "6f72672e667265656465736b746f702e4442757300",
            "000000",
            // MEMBER
            "03017300",
            "05000000",
            "48656c6c6f00",
            "0000",
            // DESTINATION (the fields array's length, 0x6d, ends here)
            "06017300",
            "14000000",
            "6f72672e667265656465736b746f702e4442757300",
            // pad to 8 before the (empty) body: 128 bytes in all
            "000000"
        );
        assert_eq!(m.len(), 128);
        assert_eq!(hex(&m), want);
        let d = decode(&m).unwrap();
        assert_eq!(d.member.as_deref(), Some("Hello"));
        assert_eq!(d.serial, 1);
        assert_eq!(message_len(&m).unwrap(), Some(m.len()));
    }

    #[test]
    fn variants_arrays_and_structs_align_as_the_spec_says() {
        let mut e = Enc::default();
        e.props(&[
            ("PIDs".into(), Value::U32s(vec![42])),
            ("Delegate".into(), Value::Bool(true)),
            ("X".into(), Value::U64(7)),
        ]);
        let want = concat!(
            "48000000",
            "00000000", // array length 72, pad to the first struct at 8
            "04000000",
            "5049447300",
            "02617500",
            "000000",
            "04000000",
            "2a000000", // PIDs au [42]
            "08000000",
            "44656c656761746500",
            "016200",
            "01000000", // Delegate b true
            "00000000", // pad to the next struct
            "01000000",
            "5800",
            "017400",
            "00000000000000",
            "0700000000000000" // X t 7 at 72
        );
        assert_eq!(hex(&e.buf), want);
        let mut empty = Enc::default();
        empty.u32(1);
        empty.u32(2);
        empty.props(&[]);
        // An empty array still pads to its element alignment; the length excludes that padding.
        assert_eq!(hex(&empty.buf), "01000000020000000000000000000000");
    }

    #[test]
    fn start_transient_unit_round_trips_through_the_decoder() {
        let call = Call {
            destination: Some("org.freedesktop.systemd1"),
            path: "/org/freedesktop/systemd1",
            interface: "org.freedesktop.systemd1.Manager",
            member: "StartTransientUnit",
            args: vec![
                Arg::Val(Value::Str("synwire-0123abcd.scope".into())),
                Arg::Val(Value::Str("fail".into())),
                Arg::Props(vec![
                    ("PIDs".into(), Value::U32s(vec![1234])),
                    ("Delegate".into(), Value::Bool(true)),
                    ("Slice".into(), Value::Str("synwire.slice".into())),
                    ("Tags".into(), Value::Strs(vec!["a".into(), "bc".into()])),
                ]),
                Arg::AuxUnits(vec![]),
            ],
        };
        let bytes = encode_call(&call, 7);
        assert_eq!(
            bytes.len() % 8,
            0,
            "the fields pad to 8 and this body ends aligned"
        );
        let m = decode(&bytes).unwrap();
        assert_eq!(m.signature, "ssa(sv)a(sa(sv))");
        assert_eq!(m.member.as_deref(), Some("StartTransientUnit"));
        assert_eq!(
            m.body,
            vec![
                Got::Str("synwire-0123abcd.scope".into()),
                Got::Str("fail".into()),
                Got::Other,
                Got::Other
            ]
        );
    }

    #[test]
    fn a_job_removed_signal_is_read_with_its_arguments() {
        // JobRemoved(uoss) as systemd sends it, built by hand.
        let mut body = Enc::default();
        body.u32(17);
        body.str("/org/freedesktop/systemd1/job/17");
        body.str("synwire-0123abcd.scope");
        body.str("done");
        let mut h = Enc::default();
        h.buf.extend_from_slice(&[b'l', SIGNAL, 1, 1]);
        h.u32(body.buf.len() as u32);
        h.u32(9);
        h.array(8, |e| {
            e.pad(8);
            e.u8(1);
            e.sig("o");
            e.str("/org/freedesktop/systemd1");
            e.pad(8);
            e.u8(2);
            e.sig("s");
            e.str("org.freedesktop.systemd1.Manager");
            e.pad(8);
            e.u8(3);
            e.sig("s");
            e.str("JobRemoved");
            e.pad(8);
            e.u8(8);
            e.sig("g");
            e.sig("uoss");
        });
        h.pad(8);
        h.buf.extend_from_slice(&body.buf);
        let m = decode(&h.buf).unwrap();
        assert!(m.is_signal("org.freedesktop.systemd1.Manager", "JobRemoved"));
        assert_eq!(
            m.body,
            vec![
                Got::U32(17),
                Got::Str("/org/freedesktop/systemd1/job/17".into()),
                Got::Str("synwire-0123abcd.scope".into()),
                Got::Str("done".into())
            ]
        );
    }

    #[test]
    fn an_error_reply_and_a_variant_return_are_decoded() {
        let mut body = Enc::default();
        body.variant(&Value::Bool(true));
        let mut h = Enc::default();
        h.buf.extend_from_slice(&[b'l', METHOD_RETURN, 1, 1]);
        h.u32(body.buf.len() as u32);
        h.u32(3);
        h.array(8, |e| {
            e.pad(8);
            e.u8(5);
            e.sig("u");
            e.u32(2);
            e.pad(8);
            e.u8(8);
            e.sig("g");
            e.sig("v");
        });
        h.pad(8);
        h.buf.extend_from_slice(&body.buf);
        let m = decode(&h.buf).unwrap();
        assert_eq!(m.reply_serial, Some(2));
        assert_eq!(m.body, vec![Got::Bool(true)]);
        // Truncated input is an error, never a panic.
        for n in 0..h.buf.len() {
            let _ = decode(&h.buf[..n]);
        }
    }

    #[test]
    fn external_auth_sends_the_uid_as_hex_of_its_digits() {
        assert_eq!(
            auth_bytes(1000),
            b"\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n".to_vec()
        );
        assert_eq!(auth_bytes(0), b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n".to_vec());
    }

    #[test]
    fn bus_addresses_are_parsed_and_unescaped() {
        assert_eq!(
            parse_address("unix:path=/run/user/1000/bus"),
            vec![Addr::Path("/run/user/1000/bus".into())]
        );
        assert_eq!(
            parse_address("tcp:host=x,port=1;unix:abstract=/tmp/dbus-x%2Cy,guid=00ff"),
            vec![Addr::Abstract(b"/tmp/dbus-x,y".to_vec())]
        );
        assert!(parse_address("tcp:host=x").is_empty());
    }
}
