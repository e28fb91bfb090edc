//! While the agent runs: signals in (read synchronously from a signalfd, never in a handler),
//! forwarding out through the pidfd, reaping, and the timeout with its grace period.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cgroup::AgentCgroup;
use crate::profile::Stop;
use crate::spawn::Child;
use crate::sys;

/// Signals forwarded to the agent.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// si_code of a signal the kernel sent, such as the terminal's SIGINT on Ctrl-C.
const SI_KERNEL: i32 = 0x80;

/// The forwarded signals and SIGCHLD, blocked and readable from a signalfd. Created before fork
/// so that nothing is lost between spawn and the first read.
pub struct Signals {
    fd: SignalFd,
    set: SigSet,
    old_mask: SigSet,
}

impl Signals {
    pub fn block() -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(*s);
        }
        set.add(Signal::SIGCHLD);
        let mut old_mask = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old_mask))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Signals { fd, set, old_mask })
    }

    /// The blocked set: what a pid namespace's init waits for.
    pub fn set(&self) -> &libc::sigset_t {
        self.set.as_ref()
    }

    /// The mask the agent must get back.
    pub fn old_mask(&self) -> &libc::sigset_t {
        self.old_mask.as_ref()
    }

    /// A terminating signal that arrived before the agent existed (Ctrl-C during set-up).
    pub fn pending_termination(&self) -> Option<i32> {
        sys::pending_signals()
            .into_iter()
            .find(|s| [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM].contains(s))
    }
}

/// How the agent's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

pub struct Exit {
    pub status: Status,
    pub rusage: libc::rusage,
    pub ended: Instant,
    pub timed_out: bool,
}

enum Phase {
    Running,
    /// The timeout expired, the stop signal was sent; everything dies at the deadline.
    Grace,
    Killed,
}

pub fn decode(status: i32) -> Status {
    if libc::WIFSIGNALED(status) {
        Status::Signaled(libc::WTERMSIG(status))
    } else {
        Status::Exited(libc::WEXITSTATUS(status))
    }
}

/// Supervises `child` until it exits: forwards signals, enforces `timeout` with `stop`, reaps
/// orphans that reach us as subreaper.
pub fn supervise(
    child: &Child,
    signals: &Signals,
    timeout: Option<Duration>,
    stop: &Stop,
    cgroup: Option<&AgentCgroup>,
    start: Instant,
) -> Exit {
    let mut phase = Phase::Running;
    let mut deadline = timeout.map(|t| start + t);
    let mut timed_out = false;
    let our_pgrp = nix::unistd::getpgrp();
    loop {
        while let Some(r) = sys::wait_any_nohang() {
            if r.pid == child.pid {
                return Exit {
                    status: decode(child.agent_status(r.status)),
                    rusage: r.rusage,
                    ended: Instant::now(),
                    timed_out,
                };
            }
        }
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if sys::poll_in(signals.fd.as_raw_fd(), wait) {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    continue;
                }
                // The terminal sends Ctrl-C (and SIGWINCH, SIGQUIT, hangup) to its whole
                // foreground process group: an agent in our group already has it.
                if info.ssi_code == SI_KERNEL
                    && nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(child.pid)))
                        == Ok(our_pgrp)
                {
                    tracing::debug!("{sig}: from the terminal, the agent got it too");
                    continue;
                }
                tracing::debug!("forwarding signal {sig} to {}", child.pid);
                if let Err(e) = child.signal(sig) {
                    tracing::debug!("forwarding signal {sig}: {e}");
                }
            }
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            match phase {
                Phase::Running => {
                    timed_out = true;
                    tracing::debug!("timeout: sending {} to the agent", stop.signal);
                    let _ = child.signal(stop.signal);
                    phase = Phase::Grace;
                    deadline = Some(Instant::now() + stop.grace);
                }
                Phase::Grace | Phase::Killed => {
                    tracing::debug!("grace period over: killing the agent's cgroup");
                    kill_everything(child, cgroup);
                    phase = Phase::Killed;
                    deadline = None;
                }
            }
        }
    }
}

fn kill_everything(child: &Child, cgroup: Option<&AgentCgroup>) {
    if let Some(cg) = cgroup {
        if let Err(e) = cg.kill_all() {
            tracing::warn!("{e}");
        }
    }
    let _ = child.signal(libc::SIGKILL);
}
