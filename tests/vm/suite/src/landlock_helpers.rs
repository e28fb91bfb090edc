//! Helper programs for the Landlock tests, run as agent commands: each tries one kind of access
//! and prints a line per attempt, `ok` or the errno's name (exit 0 either way: the lines are the
//! result).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

fn outcome(r: io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => match e.raw_os_error() {
            Some(n) => crate::errno::name(n).map_or_else(|| format!("errno {n}"), str::to_string),
            None => e.to_string(),
        },
    }
}

/// `ioctl-tty PATH...`: opens each device read-only and asks it for terminal settings (TCGETS):
/// `ioctl PATH: ENOTTY` from a driver that is no terminal, `EACCES` where Landlock denies device
/// ioctls.
pub fn ioctl_tty(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("expected PATH...".into());
    }
    for path in args {
        let r = std::fs::File::open(path).and_then(|f| {
            // SAFETY: TCGETS writes one termios into the buffer given.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            match unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, &mut t) } {
                0 => Ok(()),
                _ => Err(io::Error::last_os_error()),
            }
        });
        println!("ioctl {path}: {}", outcome(r));
    }
    Ok(())
}

/// `tcp-connect PORT...`: listens on 127.0.0.1:PORT and connects to it, for each port:
/// `connect PORT: ok`, or the errno (`bind PORT: …` when even the listener could not bind).
pub fn tcp_connect(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("expected PORT...".into());
    }
    for a in args {
        let port: u16 = a.parse().map_err(|_| format!("bad port {a}"))?;
        let listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => l,
            Err(e) => {
                println!("bind {port}: {}", outcome(Err(e)));
                continue;
            }
        };
        let r = TcpStream::connect(("127.0.0.1", port)).map(drop);
        println!("connect {port}: {}", outcome(r));
        drop(listener);
    }
    Ok(())
}

/// `abstract NAME`: connects to an abstract UNIX socket it listens on itself (`own: …`), then to
/// `@NAME`, which someone else listens on (`outside: …`).
pub fn abstract_socket(args: &[String]) -> Result<(), String> {
    let name = args.first().ok_or("expected NAME")?;
    let own_name = format!("{name}-own-{}", std::process::id());
    let own_addr =
        SocketAddr::from_abstract_name(own_name.as_bytes()).map_err(|e| e.to_string())?;
    let own = UnixListener::bind_addr(&own_addr).map_err(|e| format!("bind @{own_name}: {e}"))?;
    println!(
        "own: {}",
        outcome(UnixStream::connect_addr(&own_addr).map(drop))
    );
    drop(own);
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| e.to_string())?;
    println!(
        "outside: {}",
        outcome(UnixStream::connect_addr(&addr).map(drop))
    );
    Ok(())
}
