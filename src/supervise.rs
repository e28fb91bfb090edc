//! While the agent runs: signals in (every one but the synchronous ones, blocked and read
//! synchronously from a signalfd, never in a handler; which ones is [`crate::signals`]'s policy),
//! forwarding out through the pidfd, reaping, the timeout with its grace period, and the OOM
//! policy (memory.events, polled for POLLPRI).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::cgroup::{AgentCgroup, EventsFile};
use crate::profile::{OomPolicy, Stop};
use crate::signals::{self, blocked, forwarded, SI_USER, STOPS, STOP_REQUESTS};
use crate::spawn::Child;
use crate::sys::{self, SigMask};

/// Every signal but the synchronous ones, blocked and readable from a signalfd. Created before
/// fork so that nothing is lost between spawn and the first read.
pub struct Signals {
    fd: OwnedFd,
    set: SigMask,
    old_mask: SigMask,
}

impl Signals {
    pub fn block() -> io::Result<Signals> {
        let set = blocked();
        let old_mask = sys::sigprocmask(libc::SIG_BLOCK, set)?;
        let fd = sys::signalfd(set)?;
        Ok(Signals { fd, set, old_mask })
    }

    /// The blocked set: what a pid namespace's init waits for.
    pub fn set(&self) -> SigMask {
        self.set
    }

    /// The mask the agent must get back.
    pub fn old_mask(&self) -> SigMask {
        self.old_mask
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
    /// `oom_policy = "kill"` took effect: an OOM kill in the cgroup, and everything was killed.
    pub oom_killed: bool,
    /// Which of SIGTERM, SIGINT and SIGHUP synwire-run received while the agent ran.
    pub stop_requests: SigMask,
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

/// What the supervisor watches besides signals and its children.
pub struct Watch<'a> {
    pub timeout: Option<Duration>,
    pub stop: &'a Stop,
    pub cgroup: Option<&'a AgentCgroup>,
    /// The agent cgroup's memory.events, when OOM kills end the agent (`oom_policy = "kill"`).
    pub oom_events: Option<EventsFile>,
    pub oom_policy: OomPolicy,
}

/// Supervises `child` until it exits: forwards signals, enforces the timeout with its stop
/// signal, ends the agent at its first OOM kill under `oom_policy = "kill"`, reaps orphans that
/// reach us as subreaper.
pub fn supervise(child: &Child, signals: &Signals, mut watch: Watch, start: Instant) -> Exit {
    let mut phase = Phase::Running;
    let mut deadline = watch.timeout.map(|t| start + t);
    let mut timed_out = false;
    let mut oom_killed = false;
    let mut stop_requests = SigMask(0);
    let our_pgrp = nix::unistd::getpgrp();
    let our_pid = std::process::id();
    if watch.oom_policy == OomPolicy::Continue {
        watch.oom_events = None;
    }
    loop {
        while let Some(r) = sys::wait_any_nohang() {
            if r.pid == child.pid {
                return Exit {
                    status: decode(child.agent_status(r.status)),
                    rusage: r.rusage,
                    ended: Instant::now(),
                    timed_out,
                    oom_killed,
                    stop_requests,
                };
            }
        }
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut fds = [
            libc::pollfd {
                fd: signals.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: watch.oom_events.as_ref().map_or(-1, |e| e.fd()),
                events: libc::POLLPRI,
                revents: 0,
            },
        ];
        sys::poll(&mut fds, wait);
        if fds[1].revents & (libc::POLLPRI | libc::POLLERR) != 0 {
            // Re-read through the same descriptor: that is what re-arms POLLPRI.
            let kills = watch
                .oom_events
                .as_mut()
                .and_then(|e| e.read_key("oom_kill"));
            if kills.unwrap_or(0) > 0 {
                tracing::debug!("the OOM killer ended a process of the agent: killing the agent's cgroup (oom_policy = \"kill\")");
                kill_everything(child, watch.cgroup);
                oom_killed = true;
                watch.oom_events = None;
                phase = Phase::Killed;
                deadline = None;
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            while let Some(info) = sys::read_signal(signals.fd.as_raw_fd()) {
                let sig = info.signo;
                if STOP_REQUESTS.contains(&sig) {
                    stop_requests = stop_requests.with(sig);
                }
                if !forwarded(sig) {
                    continue;
                }
                // SIGPIPE or SIGXFSZ from a write of our own: about synwire-run, not the agent.
                if info.code == SI_USER && info.pid == our_pid {
                    continue;
                }
                // The terminal sends Ctrl-C (and SIGWINCH, SIGQUIT, hangup, Ctrl-Z) to its whole
                // foreground process group: an agent in our group already has it.
                let from_terminal = signals::from_terminal(info.code, || {
                    nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(child.pid)))
                        == Ok(our_pgrp)
                });
                if from_terminal {
                    tracing::debug!("{sig}: from the terminal, the agent got it too");
                } else {
                    tracing::debug!("forwarding signal {sig} to {}", child.pid);
                    if let Err(e) = child.signal(sig) {
                        tracing::debug!("forwarding signal {sig}: {e}");
                    }
                }
                if STOPS.contains(&sig) {
                    // Stopped here until SIGCONT, as the job a shell sees.
                    sys::deliver_to_self(sig);
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            match phase {
                Phase::Running => {
                    timed_out = true;
                    tracing::debug!("timeout: sending {} to the agent", watch.stop.signal);
                    let _ = child.signal(watch.stop.signal);
                    phase = Phase::Grace;
                    deadline = Some(Instant::now() + watch.stop.grace);
                }
                Phase::Grace | Phase::Killed => {
                    tracing::debug!("grace period over: killing the agent's cgroup");
                    kill_everything(child, watch.cgroup);
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
