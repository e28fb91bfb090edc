//! Helper programs the tests run as agent commands (or as wrappers around synwire-run). They are
//! subcommands of the same static binary so the initramfs needs nothing but busybox besides.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::unistd::{self, ForkResult, Gid, Pid, Uid};

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

/// `sleepers N`: forks N children that sleep forever, prints `forked N` and exits 0, leaving
/// them for synwire-run to kill at teardown. The children keep stdout open, so a test reading it
/// to its end notices any that outlive synwire-run.
pub fn sleepers(args: &[String]) -> Result<(), String> {
    let n: usize = parse(args, "N")?;
    for i in 0..n {
        // SAFETY: this program is single-threaded, and the child only calls pause(2), which is
        // async-signal-safe.
        match unsafe { unistd::fork() } {
            Ok(ForkResult::Child) => loop {
                unistd::pause();
            },
            Ok(ForkResult::Parent { .. }) => {}
            Err(e) => return Err(format!("fork failed after {i}: {e}")),
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

/// The usual signals synwire-run forwards, SIGTERM last (it forwards every signal the agent can
/// receive: `trap-any` and signal_tests.rs cover the others).
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGTERM,
];

/// `trap-signals`: prints `ready`, then `got SIGNAME` for each of the FORWARDED signals it
/// receives; exits 42 after SIGTERM.
pub fn trap_signals() -> Result<(), String> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
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

static INTS: AtomicUsize = AtomicUsize::new(0);
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_int(_: libc::c_int) {
    INTS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: write(2) is async-signal-safe; the buffer is a static byte string.
    unsafe { libc::write(1, b"INT\n".as_ptr().cast(), 4) };
}

extern "C" fn on_usr1(_: libc::c_int) {
    // SAFETY: as in on_int.
    unsafe { libc::write(1, b"USR1\n".as_ptr().cast(), 5) };
}

extern "C" fn on_term(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// `count-int`: prints `ready`, writes `INT` for every SIGINT and `USR1` for every SIGUSR1 it
/// receives; on SIGTERM prints `ints N` and exits 0. It spins rather than sleeps: a running process takes a signal at once,
/// which keeps a second SIGINT from merging with a first one still pending.
pub fn count_int() -> Result<(), String> {
    for (sig, handler) in [
        (Signal::SIGINT, on_int as extern "C" fn(libc::c_int)),
        (Signal::SIGUSR1, on_usr1),
        (Signal::SIGTERM, on_term),
    ] {
        let action = signal::SigAction::new(
            SigHandler::Handler(handler),
            signal::SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handlers only touch atomics and call write(2).
        unsafe { signal::sigaction(sig, &action) }.map_err(|e| format!("sigaction: {e}"))?;
    }
    // Alone on the second CPU (the test keeps synwire-run on the first), a spinning agent takes
    // the terminal's SIGINT long before synwire-run could forward a copy that would merge with it.
    let _ = pin_to_cpu(0, 1);
    say("ready");
    // A SIGINT sent before the SIGTERM has its handler run first (lower signal number).
    while !TERMINATED.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    say(&format!("ints {}", INTS.load(Ordering::SeqCst)));
    Ok(())
}

/// The master side of a new pseudo-terminal.
pub struct Pty {
    master: File,
    pub slave: String,
}

impl Pty {
    pub fn open() -> Result<Pty, String> {
        // SAFETY: posix_openpt returns a new descriptor or -1.
        let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(format!("posix_openpt: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let master = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: grantpt/unlockpt take the master fd; ptsname_r writes at most name.len() bytes
        // including the terminating NUL.
        let ok = unsafe {
            libc::grantpt(fd) == 0
                && libc::unlockpt(fd) == 0
                && libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) == 0
        };
        if !ok {
            return Err(format!("pty setup: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: ptsname_r succeeded, so name holds a NUL-terminated string.
        let slave = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok(Pty {
            master: File::from(master),
            slave,
        })
    }

    /// Types `bytes` on the terminal.
    pub fn write(&self, bytes: &[u8]) -> Result<(), String> {
        (&self.master)
            .write_all(bytes)
            .map_err(|e| format!("write to pty: {e}"))
    }
}

/// `on-tty PTS -- CMD...`: behaves like an interactive shell on terminal PTS: becomes a session
/// leader with PTS as its controlling terminal, runs CMD as the foreground job (its own process
/// group, stdin on the terminal) and exits with its status.
pub fn on_tty(args: &[String]) -> Result<(), String> {
    let (pre, cmd) = split_cmd(args)?;
    let [pts] = pre else {
        return Err("usage: on-tty PTS -- CMD...".into());
    };
    unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pts)
        .map_err(|e| format!("open {pts}: {e}"))?;
    // SAFETY: ioctl on a valid tty descriptor with an integer argument.
    if unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(format!("TIOCSCTTY: {}", std::io::Error::last_os_error()));
    }
    let (go_r, go_w) = unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: single-threaded; the child only waits for the go byte, rearranges descriptors and
    // execs.
    match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(go_w);
            let _ = unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let mut b = [0u8; 1];
            let _ = File::from(go_r).read(&mut b);
            // SAFETY: dup2 of a valid descriptor onto stdin.
            unsafe { libc::dup2(tty.as_raw_fd(), 0) };
            drop(tty);
            let e = exec(cmd);
            eprintln!("synwire-vmtest: {}", e.unwrap_err());
            std::process::exit(127);
        }
        Ok(ForkResult::Parent { child }) => {
            drop(go_r);
            // Both sides set the group, as shells do, so neither order can race.
            let _ = unistd::setpgid(child, child);
            unistd::tcsetpgrp(&tty, child).map_err(|e| format!("tcsetpgrp: {e}"))?;
            File::from(go_w)
                .write_all(b"g")
                .map_err(|e| format!("pipe: {e}"))?;
            use nix::sys::wait::{waitpid, WaitStatus};
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, c)) => break c,
                    Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(format!("waitpid: {e}")),
                }
            };
            std::process::exit(code);
        }
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Restricts process `pid` (0: the caller) to CPU `cpu`.
pub fn pin_to_cpu(pid: i32, cpu: usize) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    nix::sched::sched_setaffinity(Pid::from_raw(pid), &set)
        .map_err(|e| format!("sched_setaffinity: {e}"))
}

/// `ifaces`: prints one line per network interface of its network namespace (from
/// /proc/net/dev), `NAME up` or `NAME down` after the IFF_UP flag read with SIOCGIFFLAGS.
pub fn ifaces() -> Result<(), String> {
    let dev =
        std::fs::read_to_string("/proc/net/dev").map_err(|e| format!("/proc/net/dev: {e}"))?;
    // SAFETY: socket(2) with constant arguments; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // The two header lines, then `NAME: counters...`.
    for line in dev.lines().skip(2) {
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        // struct ifreq: the name, then a union whose first member here is short ifr_flags.
        let mut req = [0u8; 40];
        if name.len() >= libc::IFNAMSIZ {
            return Err(format!("interface name too long: {name}"));
        }
        req[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes ifr_flags, all within
        // the 40 bytes of req (sizeof(struct ifreq) on Linux).
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, req.as_mut_ptr()) } != 0 {
            return Err(format!(
                "SIOCGIFFLAGS {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let flags = i16::from_ne_bytes([req[16], req[17]]) as libc::c_int;
        let state = if flags & libc::IFF_UP != 0 {
            "up"
        } else {
            "down"
        };
        say(&format!("{name} {state}"));
    }
    Ok(())
}

/// Parses a comma-separated list of numbers.
fn numbers<T: std::str::FromStr>(list: &str, what: &str) -> Result<Vec<T>, String> {
    list.split(',')
        .map(|n| n.parse().map_err(|_| format!("bad {what} {n:?}")))
        .collect()
}

/// `prep [--fds N,N...] [--groups G,G...] -- CMD...`: sets the supplementary groups, leaves each
/// descriptor N open (not close-on-exec) on /tmp/synwire-fd-UID-N, and execs CMD: what a careless
/// caller hands synwire-run.
pub fn prep(args: &[String]) -> Result<(), String> {
    let (pre, cmd) = split_cmd(args)?;
    let (mut fds, mut groups) = (Vec::new(), Vec::new());
    let mut it = pre.iter();
    while let Some(a) = it.next() {
        let v = it
            .next()
            .ok_or("usage: prep [--fds N,...] [--groups G,...] -- CMD...")?;
        match a.as_str() {
            "--fds" => fds = numbers::<i32>(v, "fd")?,
            "--groups" => groups = numbers::<u32>(v, "gid")?,
            _ => return Err(format!("prep: unknown option {a}")),
        }
    }
    if !groups.is_empty() {
        let gids: Vec<Gid> = groups.into_iter().map(Gid::from_raw).collect();
        unistd::setgroups(&gids).map_err(|e| format!("setgroups: {e}"))?;
    }
    for n in fds {
        let uid = unistd::geteuid();
        let path = std::ffi::CString::new(format!("/tmp/synwire-fd-{uid}-{n}")).expect("no NUL");
        // SAFETY: a NUL-terminated path; the descriptor is deliberately opened without
        // O_CLOEXEC, to be inherited.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600) };
        if fd < 0 {
            return Err(format!(
                "open {path:?}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // open returns the lowest free number, never one placed before: nothing is clobbered.
        // SAFETY: dup2 and close on descriptors this function owns.
        if fd != n && unsafe { libc::dup2(fd, n) != n || libc::close(fd) != 0 } {
            return Err(format!(
                "dup2 {fd} {n}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    exec(cmd)
}

/// `fds`: prints its open descriptors on one line, `fds 0 1 2 N:TARGET...`, the ones above 2
/// with what they point to. It probes with fcntl instead of listing /proc/self/fd, which would
/// open one more.
pub fn fds() -> Result<(), String> {
    // SAFETY: getdtablesize takes no arguments.
    let top = unsafe { libc::getdtablesize() }.clamp(64, 65536);
    let mut line = String::from("fds");
    for fd in 0..top {
        // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            continue;
        }
        line.push_str(&format!(" {fd}"));
        if fd > 2 {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("?{e}"));
            line.push_str(&format!(":{target}"));
        }
    }
    say(&line);
    Ok(())
}

/// `bind PORT`: binds a TCP socket to 0.0.0.0:PORT and prints `bound PORT`, or `bind PORT:
/// ERROR` (exit 0 either way: the line is the result).
pub fn bind(args: &[String]) -> Result<(), String> {
    let port: u16 = parse(args, "PORT")?;
    match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(_) => say(&format!("bound {port}")),
        Err(e) => say(&format!("bind {port}: {e}")),
    }
    Ok(())
}

/// `container [--orchestrate] -- CMD...`: plays a container runtime for the process already moved
/// into the container's cgroup (by `in-cgroup`): a new cgroup namespace whose root is that
/// cgroup, a private mount namespace with cgroup2 mounted read-write at /sys/fs/cgroup (as crun
/// and runc do), then CMD as the entrypoint (exec). With `--orchestrate` it stays beside CMD, as
/// an orchestrator or shell in the container's cgroup would, with a sidecar process of its own:
/// it runs CMD, then prints `orchestrator 0::…` and `sidecar 0::…` (their cgroups as the
/// container sees them), ends the sidecar and exits with CMD's status.
pub fn container(args: &[String]) -> Result<(), String> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    let (pre, cmd) = split_cmd(args)?;
    let orchestrate = match pre {
        [] => false,
        [o] if o == "--orchestrate" => true,
        _ => return Err("usage: container [--orchestrate] -- CMD...".into()),
    };
    unshare(CloneFlags::CLONE_NEWCGROUP | CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    umount2("/sys/fs/cgroup", MntFlags::MNT_DETACH).map_err(|e| format!("umount: {e}"))?;
    mount(
        Some("cgroup2"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount cgroup2: {e}"))?;
    if !orchestrate {
        return exec(cmd);
    }
    let own_line = || {
        std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("0::"))
            .unwrap_or("?")
            .to_string()
    };
    // The sidecar waits for EOF on a pipe: it ends when we close our end, whatever happens.
    let (r, w) = unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the suite's helpers are single-threaded here; the child only reads and exits.
    let sidecar = match unsafe { unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(w);
            let mut buf = [0u8; 1];
            let _ = File::from(r).read(&mut buf);
            // SAFETY: _exit ends the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(r);
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .map_err(|e| format!("run {}: {e}", cmd[0]))?;
    say(&format!("orchestrator {}", own_line()));
    let side = std::fs::read_to_string(format!("/proc/{sidecar}/cgroup")).unwrap_or_default();
    say(&format!(
        "sidecar {}",
        side.lines().find(|l| l.starts_with("0::")).unwrap_or("?")
    ));
    drop(w);
    let _ = nix::sys::wait::waitpid(sidecar, None);
    std::process::exit(status.code().unwrap_or(125));
}

/// `deny-clone3 ERRNO -- CMD...`: installs a seccomp filter that fails clone3(2) with ERRNO (a
/// number: 38 ENOSYS, 1 EPERM as container runtimes' profiles do, 7 E2BIG as a kernel older than
/// CLONE_INTO_CGROUP answers), then execs CMD, which inherits it. Everything else is allowed.
pub fn deny_clone3(args: &[String]) -> Result<(), String> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const NR_CLONE3: u32 = 435;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let (pre, cmd) = split_cmd(args)?;
    let [errno] = pre else {
        return Err("usage: deny-clone3 ERRNO -- CMD...".into());
    };
    let errno: u32 = errno.parse().map_err(|_| format!("bad errno {errno}"))?;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    // struct seccomp_data: nr at 0, arch at 4.
    let filter = [
        stmt(ld, 4),
        jeq(AUDIT_ARCH_X86_64, 0, 3),
        stmt(ld, 0),
        jeq(NR_CLONE3, 0, 1),
        stmt(ret, RET_ERRNO | (errno & 0xffff)),
        stmt(ret, RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers; PR_SET_SECCOMP reads `prog`, which points
    // at `filter`, both alive for the call.
    let r = unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            -1
        } else {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    if r != 0 {
        return Err(format!(
            "seccomp filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    exec(cmd)
}

/// `trap-any [EXIT_SIG]`: blocks every signal it can, prints `ready`, then `got N` (the number)
/// for each signal it receives, real-time ones included; exits 42 after EXIT_SIG (default 15).
pub fn trap_any(args: &[String]) -> Result<(), String> {
    let exit_sig: i32 = if args.is_empty() {
        libc::SIGTERM
    } else {
        parse(args, "EXIT_SIG")?
    };
    // sigfillset leaves out the C library's own signals (32, 33), as a program's mask does.
    let set = SigSet::all();
    set.thread_block()
        .map_err(|e| format!("sigprocmask: {e}"))?;
    say("ready");
    loop {
        // SAFETY: siginfo_t is plain data; sigwaitinfo fills it from a valid set.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(set.as_ref(), &mut info)
        };
        if sig < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("sigwaitinfo: {e}"));
        }
        say(&format!("got {sig}"));
        if sig == exit_sig {
            std::process::exit(42);
        }
    }
}

/// `oom-parent MIB [exit]`: makes itself OOM-immune (oom_score_adj -1000, as stress-ng's parent
/// does), forks a child that takes back an ordinary score and allocates MIB mebibytes, prints
/// `ready` and then how the child ended. With `exit` it then exits 0; without, it sleeps forever,
/// so only something that kills the whole agent ends it.
pub fn oom_parent(args: &[String]) -> Result<(), String> {
    let mib: usize = parse(args, "MIB")?;
    let then_exit = args.get(1).is_some_and(|a| a == "exit");
    std::fs::write("/proc/self/oom_score_adj", "-1000")
        .map_err(|e| format!("oom_score_adj -1000: {e}"))?;
    say("ready");
    // SAFETY: single-threaded; the child runs ordinary code, as after any fork of a
    // single-threaded program.
    match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = std::fs::write("/proc/self/oom_score_adj", "0");
            let r = hog(&[mib.to_string()]);
            std::process::exit(if r.is_ok() { 0 } else { 2 });
        }
        Ok(ForkResult::Parent { child }) => {
            use nix::sys::wait::{waitpid, WaitStatus};
            let how = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, c)) => break format!("child exited {c}"),
                    Ok(WaitStatus::Signaled(_, s, _)) => break format!("child killed by {s}"),
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(format!("waitpid: {e}")),
                }
            };
            say(&how);
            if then_exit {
                return Ok(());
            }
            loop {
                unistd::pause();
            }
        }
        Err(e) => Err(format!("fork: {e}")),
    }
}
