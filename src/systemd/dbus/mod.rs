//! A minimal D-Bus client: enough to ask a systemd manager for a transient scope and to read one
//! unit property, and nothing more. One blocking Unix socket, no threads (it runs before fork),
//! no C library. It speaks the wire protocol of the D-Bus specification
//! (<https://dbus.freedesktop.org/doc/dbus-specification.html>): SASL EXTERNAL authentication, then
//! little-endian messages with the few types a call to systemd needs.
//!
//! A connection to a bus daemon (the system or a session bus) starts with `Hello`; a direct
//! connection to a manager's private socket (`/run/systemd/private`) has no daemon and no `Hello`.
//!
//! `encode` marshals calls, `decode` reads messages, `conn` finds the bus, authenticates
//! and exchanges messages over one connection.

mod conn;
mod decode;
mod encode;

use std::io;

pub use conn::{auth_bytes, parse_address, Addr, Conn, DBUS};
pub use decode::{decode, first_str, Got, Message};
pub use encode::{encode_call, Arg, Call, Value};

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

// Message types (the second byte of the header).
const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

#[cfg(test)]
mod tests;
