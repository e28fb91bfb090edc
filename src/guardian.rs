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
//! After fork the guardian runs async-signal-safe raw calls only ([`crate::postfork`]), on
//! descriptors and names prepared before.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::cgroup::AgentCgroup;
use crate::postfork::guard::Watch;
use crate::postfork::{fork, raw};
use crate::sys;

/// The running guardian; dropping it ends it and reaps it.
#[derive(Debug)]
pub struct Guardian {
    pub pid: i32,
    pidfd: OwnedFd,
    released: std::cell::Cell<bool>,
}

/// Everything the guardian uses, prepared before fork.
struct Prepared<'a> {
    /// A pidfd of synwire-run: readable once it has exited.
    pub launcher: OwnedFd,
    /// The agent cgroup's directory.
    pub cgroup: BorrowedFd<'a>,
    /// Its parent (the agents directory), O_PATH, for the rmdir.
    pub parent: OwnedFd,
    /// The agent cgroup's name in the parent.
    pub name: CString,
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
    // Born with its name: under the launcher's own name until its first instructions, it would
    // pass for a second synwire-run (ps, pgrep, a test looking for the launcher). The launcher
    // takes the guardian's name for the fork and then its own back.
    let own_name = rustix::thread::name().ok();
    let _ = rustix::thread::set_name(c"synwire-guard");
    let forked = fork::guardian(&prepared.watch());
    if let Some(name) = &own_name {
        let _ = rustix::thread::set_name(name);
    }
    let pid = match forked {
        Ok(pid) => pid,
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
            raw::kill(pid, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            None
        }
    }
}

fn prepare(cg: &AgentCgroup) -> std::io::Result<Prepared<'_>> {
    let bad = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let parent = cg.dir.parent().ok_or_else(bad)?;
    let name = CString::new(cg.dir.file_name().ok_or_else(bad)?.as_bytes()).map_err(|_| bad())?;
    let parent = CString::new(parent.as_os_str().as_bytes()).map_err(|_| bad())?;
    Ok(Prepared {
        launcher: sys::pidfd_open(std::process::id() as i32)?,
        cgroup: cg.as_fd(),
        parent: sys::open_path(&parent)?,
        name,
    })
}

impl Prepared<'_> {
    /// The post-fork view of it.
    fn watch(&self) -> Watch<'_> {
        Watch {
            launcher: self.launcher.as_fd(),
            cgroup: self.cgroup,
            parent: self.parent.as_fd(),
            name: &self.name,
        }
    }
}

impl Guardian {
    /// Ends the guardian (SIGKILL through its pidfd) without waiting: call it once nothing in
    /// the agent's cgroup can outlive synwire-run any more. Idempotent.
    pub fn release(&self) {
        if !self.released.replace(true) {
            let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        }
    }
}

impl Drop for Guardian {
    /// A normal end: releases the guardian if that has not happened yet, and reaps it, so that
    /// it is gone when synwire-run returns.
    fn drop(&mut self) {
        self.release();
        if let Err(e) = sys::reap_pidfd(self.pidfd.as_fd()) {
            tracing::debug!("reaping the guardian {}: {e}", self.pid);
        }
    }
}
