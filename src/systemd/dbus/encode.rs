//! Marshalling a method call: the few D-Bus types the calls to systemd send, little-endian,
//! aligned as the specification says.

use super::METHOD_CALL;

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
pub(super) struct Enc {
    pub(super) buf: Vec<u8>,
}

impl Enc {
    pub(super) fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }
    pub(super) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.pad(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    pub(super) fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array whose elements align to `align`: the length counts from the first element.
    pub(super) fn array(&mut self, align: usize, body: impl FnOnce(&mut Enc)) {
        self.pad(4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.pad(align);
        let start = self.buf.len();
        body(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    pub(super) fn value(&mut self, v: &Value) {
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
    pub(super) fn variant(&mut self, v: &Value) {
        self.sig(v.signature());
        self.value(v);
    }
    pub(super) fn props(&mut self, props: &[(String, Value)]) {
        self.array(8, |e| {
            for (name, v) in props {
                e.pad(8);
                e.str(name);
                e.variant(v);
            }
        });
    }
    pub(super) fn arg(&mut self, a: &Arg) {
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
