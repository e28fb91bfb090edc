//! Reading a received message: its header fields and the body values this client needs; other
//! types are skipped by their signature.

use super::SIGNAL;

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
    pub(super) fn str_at(&self, i: usize) -> Option<&str> {
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
pub(super) fn message_len(buf: &[u8]) -> DecResult<Option<usize>> {
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

/// The first string of a reply body (a `s` or `o` return value).
pub fn first_str(m: &Message) -> Option<&str> {
    m.str_at(0)
}
