//! The SOCKS5 proxy (RFC 1928): no authentication, CONNECT only, to an IPv4 or IPv6 address or
//! to a domain name that the proxy resolves (what clients call socks5h). The greeting and the
//! request are read byte-exact, so whatever the client sends after them is relayed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::connect::{self, Failure};
use super::io::{self, Halt};
use super::relay::{self, Mode};
use super::Shared;
use crate::net::policy::Target;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 0x01;
const ATYP_V4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_V6: u8 = 0x04;

/// Reply codes (RFC 1928, section 6).
const SUCCEEDED: u8 = 0x00;
const GENERAL_FAILURE: u8 = 0x01;
const NOT_ALLOWED: u8 = 0x02;
const NETWORK_UNREACHABLE: u8 = 0x03;
const HOST_UNREACHABLE: u8 = 0x04;
const REFUSED: u8 = 0x05;
const COMMAND_NOT_SUPPORTED: u8 = 0x07;
const ADDRESS_NOT_SUPPORTED: u8 = 0x08;

/// How long a reply may take to send.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one client connection of the SOCKS5 listener.
pub(super) fn serve(shared: &Shared, client: &TcpStream) {
    let stop = shared.stop_fd();
    let deadline = Some(Instant::now() + shared.config.head_timeout);
    let (target, port) = match request(stop, client, deadline) {
        Ok(Ok(request)) => request,
        Ok(Err(code)) => return reply(stop, client, code),
        Err(_) => return,
    };
    let upstream = match connect::open(shared, &target, port) {
        Ok(upstream) => upstream,
        Err(Failure::Stopped) => return,
        Err(failure) => return reply(stop, client, code(&failure)),
    };
    // The bound address is not the agent's business (nor reachable from its namespace).
    let ok = [VERSION, SUCCEEDED, 0, ATYP_V4, 0, 0, 0, 0, 0, 0];
    relay::relay(stop, client, &upstream, &ok, b"", Mode::Tunnel);
}

/// The reply code for a failed connection.
fn code(failure: &Failure) -> u8 {
    match failure {
        Failure::Denied(_) => NOT_ALLOWED,
        Failure::Resolve(_) | Failure::TimedOut => HOST_UNREACHABLE,
        Failure::Connect(e) => match e.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::CONNREFUSED) => REFUSED,
            Some(Errno::NETUNREACH) => NETWORK_UNREACHABLE,
            Some(Errno::HOSTUNREACH) => HOST_UNREACHABLE,
            _ => GENERAL_FAILURE,
        },
        Failure::Stopped => GENERAL_FAILURE,
    }
}

/// A failure reply, then the end of the connection.
fn reply(stop: BorrowedFd<'_>, client: &TcpStream, code: u8) {
    let answer = [VERSION, code, 0, ATYP_V4, 0, 0, 0, 0, 0, 0];
    if io::write_all(stop, client, &answer, Some(Instant::now() + REPLY_TIMEOUT)).is_ok() {
        io::finish(stop, client);
    }
}

/// Reads the greeting (answering it) and the request: the target, or the reply code refusing
/// the request. `Err` ends the connection without a reply (not SOCKS5, no method we take, gone).
fn request(
    stop: BorrowedFd<'_>,
    client: &TcpStream,
    deadline: Option<Instant>,
) -> Result<Result<(Target, u16), u8>, Halt> {
    let mut two = [0u8; 2];
    io::read_exact(stop, client, &mut two, deadline)?;
    if two[0] != VERSION {
        return Err(Halt::Closed);
    }
    let mut methods = vec![0u8; usize::from(two[1])];
    io::read_exact(stop, client, &mut methods, deadline)?;
    if !methods.contains(&NO_AUTH) {
        let _ = io::write_all(stop, client, &[VERSION, NO_ACCEPTABLE], deadline);
        io::finish(stop, client);
        return Err(Halt::Closed);
    }
    io::write_all(stop, client, &[VERSION, NO_AUTH], deadline)?;

    let mut head = [0u8; 4];
    io::read_exact(stop, client, &mut head, deadline)?;
    let [version, command, _reserved, atyp] = head;
    if version != VERSION {
        return Err(Halt::Closed);
    }
    let target = match atyp {
        ATYP_V4 => {
            let mut a = [0u8; 4];
            io::read_exact(stop, client, &mut a, deadline)?;
            Some(Target::Ip(IpAddr::V4(Ipv4Addr::from(a))))
        }
        ATYP_V6 => {
            let mut a = [0u8; 16];
            io::read_exact(stop, client, &mut a, deadline)?;
            Some(Target::Ip(IpAddr::V6(Ipv6Addr::from(a))))
        }
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            io::read_exact(stop, client, &mut len, deadline)?;
            let mut name = vec![0u8; usize::from(len[0])];
            io::read_exact(stop, client, &mut name, deadline)?;
            // A name that is an address literal is taken as that address, as over HTTP.
            std::str::from_utf8(&name).ok().and_then(Target::parse)
        }
        // The rest of the request cannot be read without knowing its length.
        _ => return Ok(Err(ADDRESS_NOT_SUPPORTED)),
    };
    let mut port = [0u8; 2];
    io::read_exact(stop, client, &mut port, deadline)?;
    let port = u16::from_be_bytes(port);
    if command != CMD_CONNECT {
        return Ok(Err(COMMAND_NOT_SUPPORTED));
    }
    match target {
        Some(target) if port != 0 => Ok(Ok((target, port))),
        _ => Ok(Err(GENERAL_FAILURE)),
    }
}
