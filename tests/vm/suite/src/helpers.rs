//! Helper programs the tests run as agent commands (or as wrappers around synwire-run). They are
//! subcommands of the same static binary so the initramfs needs nothing but busybox besides.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::unistd::{self, ForkResult, Gid, Uid};

use crate::layout;

/// Upper bound for `forkbomb`, so a pids limit that is not enforced fails the test instead of
/// exhausting the VM.
const FORKBOMB_CAP: usize = 2000;

fn parse<T: std::str::FromStr>(args: &[String], what: &str) -> Result<T, String> {
    args.first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("expected {what}"))
}

/// Prints a line and flushes at once, so a test reading our stdout through a pipe sees it now.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `hog MIB`: allocates MIB mebibytes and touches every page so it is really charged.
pub fn hog(args: &[String]) -> Result<(), String> {
    let mib: usize = parse(args, "MIB")?;
    let mut v: Vec<u8> = Vec::with_capacity(mib << 20);
    // Grow in 1 MiB steps, writing every page, so the charge rises steadily towards the limit.
    for _ in 0..mib {
        let start = v.len();
        v.resize(start + (1 << 20), 0);
        for i in (start..v.len()).step_by(4096) {
            v[i] = 1;
        }
    }
    std::hint::black_box(&v);
    say(&format!("allocated {mib} MiB"));
    Ok(())
}

/// `forkbomb`: forks until fork fails with EAGAIN; the children block forever; prints how many
/// forks succeeded and exits, leaving the children for synwire-run to clean up.
pub fn forkbomb() -> Result<(), String> {
    let mut n = 0usize;
    loop {
        if n >= FORKBOMB_CAP {
            say(&format!("forked {n} (cap reached, no limit?)"));
            return Ok(());
        }
        // SAFETY: this program is single-threaded, and the child only calls pause(2), which is
        // async-signal-safe.
        match unsafe { unistd::fork() } {
            Ok(ForkResult::Child) => loop {
                unistd::pause();
            },
            Ok(ForkResult::Parent { .. }) => n += 1,
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => return Err(format!("fork failed after {n}: {e}")),
        }
    }
    say(&format!("forked {n}"));
    Ok(())
}

/// `spin SECS`: burns CPU until SECS of wall time have passed.
pub fn spin(args: &[String]) -> Result<(), String> {
    let secs: f64 = parse(args, "SECS")?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut x = 0u64;
    while Instant::now() < end {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    say(&format!("spun {x:x}"));
    Ok(())
}

/// `trap-term`: prints `ready`, waits for SIGTERM, prints `got TERM` and exits 42.
pub fn trap_term() -> Result<(), String> {
    // Blocking SIGTERM and taking it with sigwait is the race-free form of a handler: a signal
    // that arrives before we wait stays pending instead of being lost.
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("sigprocmask: {e}"))?;
    say("ready");
    loop {
        if set.wait().map_err(|e| format!("sigwait: {e}"))? == Signal::SIGTERM {
            say("got TERM");
            std::process::exit(42);
        }
    }
}

/// `trap-signals`: prints `ready`, then `got SIGNAME` for each of SIGHUP, SIGINT, SIGQUIT,
/// SIGUSR1, SIGUSR2, SIGWINCH and SIGTERM it receives; exits 42 after SIGTERM.
pub fn trap_signals() -> Result<(), String> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGTERM,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| format!("sigprocmask: {e}"))?;
    say("ready");
    loop {
        let sig = set.wait().map_err(|e| format!("sigwait: {e}"))?;
        say(&format!("got {}", sig.as_str()));
        if sig == Signal::SIGTERM {
            std::process::exit(42);
        }
    }
}

/// `ignore-term`: ignores SIGTERM, prints `ready` and sleeps forever.
pub fn ignore_term() -> Result<(), String> {
    // SAFETY: SIG_IGN installs no Rust code as a handler.
    unsafe { signal::signal(Signal::SIGTERM, SigHandler::SigIgn) }
        .map_err(|e| format!("signal: {e}"))?;
    say("ready");
    loop {
        unistd::pause();
    }
}

/// `daemonize`: forks a grandchild that detaches (setsid, stdio to /dev/null) and sleeps forever;
/// prints its pid and exits 0.
pub fn daemonize() -> Result<(), String> {
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    // SAFETY: single-threaded; the child only calls setsid, dup2 and pause, all async-signal-safe.
    match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = unistd::setsid();
            for fd in 0..3 {
                // SAFETY: dup2 on a valid open descriptor onto the standard descriptors.
                unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&devnull), fd) };
            }
            loop {
                unistd::pause();
            }
        }
        Ok(ForkResult::Parent { child }) => {
            say(&child.to_string());
            Ok(())
        }
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Splits `ARGS... -- CMD...`.
fn split_cmd(args: &[String]) -> Result<(&[String], &[String]), String> {
    let pos = args
        .iter()
        .position(|a| a == "--")
        .ok_or("expected -- CMD")?;
    let cmd = &args[pos + 1..];
    if cmd.is_empty() {
        return Err("expected a command after --".into());
    }
    Ok((&args[..pos], cmd))
}

fn exec(cmd: &[String]) -> Result<(), String> {
    let e = Command::new(&cmd[0]).args(&cmd[1..]).exec();
    Err(format!("exec {}: {e}", cmd[0]))
}

/// `in-cgroup CGROUP -- CMD...`: moves itself into CGROUP (relative to the cgroup2 mount) and
/// execs CMD.
pub fn in_cgroup(args: &[String]) -> Result<(), String> {
    let (pre, cmd) = split_cmd(args)?;
    let [cg] = pre else {
        return Err("usage: in-cgroup CGROUP -- CMD...".into());
    };
    layout::move_self(cg)?;
    exec(cmd)
}

/// `as-user UID GID CGROUP -- CMD...`: moves itself into CGROUP as root, drops to UID:GID with no
/// supplementary groups and execs CMD.
pub fn as_user(args: &[String]) -> Result<(), String> {
    let (pre, cmd) = split_cmd(args)?;
    let [uid, gid, cg] = pre else {
        return Err("usage: as-user UID GID CGROUP -- CMD...".into());
    };
    let uid: u32 = uid.parse().map_err(|_| format!("bad uid {uid}"))?;
    let gid: u32 = gid.parse().map_err(|_| format!("bad gid {gid}"))?;
    layout::move_self(cg)?;
    unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    unistd::setgid(Gid::from_raw(gid)).map_err(|e| format!("setgid: {e}"))?;
    unistd::setuid(Uid::from_raw(uid)).map_err(|e| format!("setuid: {e}"))?;
    exec(cmd)
}
