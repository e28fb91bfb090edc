//! The guardian: what ends the agent when synwire-run itself is killed (SIGKILL by an operator,
//! the OOM killer) and can no longer tear down.
//!
//! PR_SET_PDEATHSIG reaches only the agent's main process (and the kernel clears it on a
//! credential change, so the child re-arms it just before execve); its children and daemonised
//! descendants, reparented away, would run on. The agent's cgroup holds all of them, so the
//! guardian acts on the cgroup: a tiny process forked by synwire-run after the agent cgroup exists
//! and before the agent is spawned. It stays in synwire-run's own cgroup (so killing the agent's
//! cgroup never touches it), blocks every signal it can (a terminal's Ctrl-C or a hangup to the
//! process group must not end it), closes every descriptor but three, and sleeps in poll(2) on a
//! pidfd of synwire-run. When synwire-run dies it writes `cgroup.kill` (on 5.10: freeze, SIGKILL
//! every process listed, thaw, until none is left), waits for `populated 0`, removes the cgroup
//! and exits. A pidfd, not a pipe: the pid-namespace init is a fork of synwire-run that never
//! execs, and would hold a pipe's write end open for as long as the agent lives.
//!
//! In a normal run synwire-run releases the guardian as soon as nothing in the agent's cgroup can
//! outlive it — the cgroup is empty, or `cgroup.kill` has left every process there with a
//! pending SIGKILL, which also fails any fork — so the guardian's exit overlaps the rest of the
//! teardown (waiting for the cgroup to empty, the statistics, the rmdir); synwire-run reaps it
//! before it exits, so nothing of a launch outlives its launcher, the guardian included. If the guardian too is killed, the next launch in the same agents directory
//! removes the stale cgroup ([`crate::gc::remove_stale`]).
//!
//! After fork the guardian runs async-signal-safe raw calls only (`sys::child`), on descriptors
//! and names prepared before.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::cgroup::AgentCgroup;
use crate::sys::{self, child, Forked};

/// How long the guardian waits for the killed cgroup to empty.
const EMPTY_WAIT_MS: u64 = 10_000;

/// The running guardian; dropping it ends it and reaps it.
#[derive(Debug)]
pub struct Guardian {
    pub pid: i32,
    pidfd: OwnedFd,
    released: std::cell::Cell<bool>,
}

/// Everything the guardian uses, prepared before fork.
struct Prepared {
    /// A pidfd of synwire-run: readable once it has exited.
    launcher: OwnedFd,
    /// The agent cgroup's directory.
    cgroup: RawFd,
    /// Its parent (the agents directory), O_PATH, for the rmdir.
    parent: OwnedFd,
    /// The agent cgroup's name in the parent.
    name: CString,
}

/// Starts the guardian of `cg`. None (with a debug line) where it cannot be started, such as a
/// kernel without pidfds: then PR_SET_PDEATHSIG and the next launch's stale pass remain.
pub fn start(cg: &AgentCgroup) -> Option<Guardian> {
    let prepared = match prepare(cg) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!("no guardian for {}: {e}", cg.dir.display());
            return None;
        }
    };
    // SAFETY: synwire-run starts no threads; the child only runs `guard`, which makes
    // async-signal-safe raw calls and never returns.
    let pid = match unsafe { sys::fork(0) } {
        Ok(Forked::Child) => guard(&prepared),
        Ok(Forked::Parent { pid, .. }) => pid,
        Err(e) => {
            tracing::debug!("no guardian for {}: fork: {e}", cg.dir.display());
            return None;
        }
    };
    // Not reaped yet (only we reap our children), so this pid is still the guardian.
    match sys::pidfd_open(pid) {
        Ok(pidfd) => Some(Guardian {
            pid,
            pidfd,
            released: std::cell::Cell::new(false),
        }),
        Err(e) => {
            tracing::debug!("no pidfd for the guardian {pid}: {e}; stopping it");
            child::kill(pid, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            None
        }
    }
}

fn prepare(cg: &AgentCgroup) -> std::io::Result<Prepared> {
    let bad = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let parent = cg.dir.parent().ok_or_else(bad)?;
    let name = CString::new(cg.dir.file_name().ok_or_else(bad)?.as_bytes()).map_err(|_| bad())?;
    let parent = CString::new(parent.as_os_str().as_bytes()).map_err(|_| bad())?;
    Ok(Prepared {
        launcher: sys::pidfd_open(std::process::id() as i32)?,
        cgroup: cg.dir_fd(),
        parent: sys::open_path(&parent)?,
        name,
    })
}

impl Guardian {
    /// Ends the guardian (SIGKILL through its pidfd) without waiting: call it once nothing in
    /// the agent's cgroup can outlive synwire-run any more. Idempotent.
    pub fn release(&self) {
        if !self.released.replace(true) {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
        }
    }
}

impl Drop for Guardian {
    /// A normal end: releases the guardian if that has not happened yet, and reaps it, so that
    /// it is gone when synwire-run returns.
    fn drop(&mut self) {
        self.release();
        if let Err(e) = sys::reap_pidfd(self.pidfd.as_raw_fd()) {
            tracing::debug!("reaping the guardian {}: {e}", self.pid);
        }
    }
}

/// The guardian's whole life, after fork.
fn guard(p: &Prepared) -> ! {
    child::block_all_signals();
    child::set_name(c"synwire-guard");
    let launcher = p.launcher.as_raw_fd();
    close_all_but(&mut [launcher, p.cgroup, p.parent.as_raw_fd()]);
    loop {
        match child::poll(launcher, libc::POLLIN, -1) {
            Ok(r) if r != 0 => break,
            Ok(_) => {}
            Err(libc::EINTR) => {}
            // Cannot watch: leave it to PR_SET_PDEATHSIG and the next launch.
            Err(_) => child::exit(1),
        }
    }
    kill_all(p.cgroup);
    wait_empty(p.cgroup, EMPTY_WAIT_MS);
    for _ in 0..100 {
        match child::rmdirat(p.parent.as_raw_fd(), &p.name) {
            Err(libc::EBUSY) => child::sleep_ms(10),
            _ => break,
        }
    }
    child::exit(0)
}

/// Closes every descriptor but `keep` (sorted in place): stdout and stderr pipes of the launcher
/// must reach EOF when it dies, not when the guardian does.
fn close_all_but(keep: &mut [RawFd; 3]) {
    keep.sort_unstable();
    let mut first = 0u32;
    let mut ranged = true;
    for &fd in keep.iter() {
        let fd = fd as u32;
        if fd > first {
            ranged &= child::close_range(first, fd - 1).is_ok();
        }
        first = fd + 1;
    }
    ranged &= child::close_range(first, u32::MAX).is_ok();
    if !ranged {
        // Before Linux 5.9: at least the standard descriptors.
        for fd in 0..3 {
            if !keep.contains(&fd) {
                child::close(fd);
            }
        }
    }
}

/// Writes `value` to the cgroup file `name`; true if it took it.
fn write_cg(dir: RawFd, name: &std::ffi::CStr, value: &[u8]) -> bool {
    match child::openat(dir, name, libc::O_WRONLY) {
        Ok(fd) => {
            let ok = child::write_once(fd, value);
            child::close(fd);
            ok
        }
        Err(_) => false,
    }
}

/// cgroup.kill (5.14+), else freeze, SIGKILL each listed process until none is, thaw.
fn kill_all(dir: RawFd) {
    if write_cg(dir, c"cgroup.kill", b"1") {
        return;
    }
    let frozen = write_cg(dir, c"cgroup.freeze", b"1");
    for _ in 0..1000 {
        if kill_listed(dir) == 0 {
            break;
        }
        if !frozen {
            child::sleep_ms(1);
        }
    }
    if frozen {
        write_cg(dir, c"cgroup.freeze", b"0");
    }
}

/// SIGKILLs every process in cgroup.procs; returns how many were listed.
fn kill_listed(dir: RawFd) -> usize {
    let Ok(fd) = child::openat(dir, c"cgroup.procs", libc::O_RDONLY) else {
        return 0;
    };
    let mut buf = [0u8; 4096];
    let (mut pid, mut digits, mut count) = (0i64, false, 0usize);
    let mut flush = |pid: &mut i64, digits: &mut bool| {
        if *digits && *pid > 0 && *pid <= i32::MAX as i64 {
            child::kill(*pid as i32, libc::SIGKILL);
            count += 1;
        }
        *pid = 0;
        *digits = false;
    };
    loop {
        let n = child::read(fd, &mut buf);
        if n <= 0 {
            break;
        }
        for &b in &buf[..n as usize] {
            if b.is_ascii_digit() {
                pid = (pid * 10 + i64::from(b - b'0')).min(i64::MAX / 10);
                digits = true;
            } else {
                flush(&mut pid, &mut digits);
            }
        }
    }
    flush(&mut pid, &mut digits);
    child::close(fd);
    count
}

/// Waits up to `limit_ms` for `populated 0` in cgroup.events, woken by POLLPRI.
fn wait_empty(dir: RawFd, limit_ms: u64) {
    let Ok(fd) = child::openat(dir, c"cgroup.events", libc::O_RDONLY) else {
        return;
    };
    let deadline = child::monotonic_ms() + limit_ms;
    let mut buf = [0u8; 256];
    loop {
        let n = child::pread0(fd, &mut buf);
        if n <= 0 || buf[..n as usize].windows(11).any(|w| w == b"populated 0") {
            break;
        }
        let now = child::monotonic_ms();
        if now >= deadline {
            break;
        }
        let _ = child::poll(fd, libc::POLLPRI, (deadline - now).min(100) as i32);
    }
    child::close(fd);
}
