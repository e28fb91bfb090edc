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
    if watch.oom_policy == OomPolicy::Continue {
        watch.oom_events = None;
    }
    let mut s = Supervisor {
        child,
        deadline: watch.timeout.map(|t| start + t),
        watch,
        phase: Phase::Running,
        timed_out: false,
        oom_killed: false,
        stop_requests: SigMask(0),
        our_pgrp: nix::unistd::getpgrp(),
        our_pid: std::process::id(),
    };
    loop {
        if let Some(exit) = s.reap() {
            return exit;
        }
        let wait = s
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let mut fds = [
            libc::pollfd {
                fd: signals.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: s.watch.oom_events.as_ref().map_or(-1, |e| e.fd()),
                events: libc::POLLPRI,
                revents: 0,
            },
        ];
        sys::poll(&mut fds, wait);
        if fds[1].revents & (libc::POLLPRI | libc::POLLERR) != 0 {
            s.on_oom_event();
        }
        if fds[0].revents & libc::POLLIN != 0 {
            while let Some(info) = sys::read_signal(signals.fd.as_raw_fd()) {
                s.on_signal(info);
            }
        }
        if s.deadline.is_some_and(|d| Instant::now() >= d) {
            s.on_deadline();
        }
    }
}

/// What the supervisor knows between two polls.
struct Supervisor<'a> {
    child: &'a Child,
    watch: Watch<'a>,
    phase: Phase,
    /// When the timeout or the grace period ends.
    deadline: Option<Instant>,
    timed_out: bool,
    oom_killed: bool,
    stop_requests: SigMask,
    our_pgrp: nix::unistd::Pid,
    our_pid: u32,
}

impl Supervisor<'_> {
    /// Reaps every child that has ended (orphans that reached us as subreaper included); the
    /// agent's end, once it has come.
    fn reap(&self) -> Option<Exit> {
        while let Some(r) = sys::wait_any_nohang() {
            if r.pid == self.child.pid {
                return Some(Exit {
                    status: decode(self.child.agent_status(r.status)),
                    rusage: r.rusage,
                    ended: Instant::now(),
                    timed_out: self.timed_out,
                    oom_killed: self.oom_killed,
                    stop_requests: self.stop_requests,
                });
            }
        }
        None
    }

    /// memory.events changed: an OOM kill ends the whole agent (`oom_policy = "kill"`).
    fn on_oom_event(&mut self) {
        // Re-read through the same descriptor: that is what re-arms POLLPRI.
        let kills = self
            .watch
            .oom_events
            .as_mut()
            .and_then(|e| e.read_key("oom_kill"));
        if kills.unwrap_or(0) > 0 {
            tracing::debug!("the OOM killer ended a process of the agent: killing the agent's cgroup (oom_policy = \"kill\")");
            kill_everything(self.child, self.watch.cgroup);
            self.oom_killed = true;
            self.watch.oom_events = None;
            self.phase = Phase::Killed;
            self.deadline = None;
        }
    }

    /// A signal reached synwire-run: noted if it asks to stop, forwarded if the agent does not
    /// have it already, and a stop signal stops synwire-run too.
    fn on_signal(&mut self, info: sys::SigInfo) {
        let sig = info.signo;
        if STOP_REQUESTS.contains(&sig) {
            self.stop_requests = self.stop_requests.with(sig);
        }
        if !forwarded(sig) {
            return;
        }
        // SIGPIPE or SIGXFSZ from a write of our own: about synwire-run, not the agent.
        if info.code == SI_USER && info.pid == self.our_pid {
            return;
        }
        // The terminal sends Ctrl-C (and SIGWINCH, SIGQUIT, hangup, Ctrl-Z) to its whole
        // foreground process group: an agent in our group already has it.
        let child = self.child;
        let from_terminal = signals::from_terminal(info.code, || {
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(child.pid))) == Ok(self.our_pgrp)
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

    /// The timeout expired (the stop signal, then a grace period), or the grace period did
    /// (everything is killed).
    fn on_deadline(&mut self) {
        match self.phase {
            Phase::Running => {
                self.timed_out = true;
                let stop = self.watch.stop;
                tracing::debug!("timeout: sending {} to the agent", stop.signal);
                let _ = self.child.signal(stop.signal);
                self.phase = Phase::Grace;
                self.deadline = Some(Instant::now() + stop.grace);
            }
            Phase::Grace | Phase::Killed => {
                tracing::debug!("grace period over: killing the agent's cgroup");
                kill_everything(self.child, self.watch.cgroup);
                self.phase = Phase::Killed;
                self.deadline = None;
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
