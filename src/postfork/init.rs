//! The init that runs as PID 1 of a new pid namespace. A program that is PID 1 ignores every
//! signal it has no handler for, so an agent without a SIGTERM handler would never stop; and
//! orphans in the namespace are reparented to PID 1, which must reap them. This init forks the
//! agent, forwards the signals it receives, reaps everything, and exits with the agent's status
//! (also sent, raw, to synwire-run over a pipe, so a death by signal is reported as one).
//!
//! It runs in the child between clone and exec of the agent: async-signal-safe calls only.

use std::os::fd::BorrowedFd;

use rustix::process::Signal;

use super::raw;
use crate::signals::{forwarded, SI_KERNEL};
use crate::sys::SigMask;

/// What the init needs, prepared before fork.
pub(crate) struct Init<'a> {
    /// The signals it waits for: synwire-run's blocked set (every signal but the synchronous
    /// ones, SIGCHLD included), already blocked.
    pub wait_set: SigMask,
    /// Where the agent's raw wait status goes.
    pub status_fd: Option<BorrowedFd<'a>>,
    /// The exec-error pipe: the init's copy is closed once the agent is forked, so synwire-run
    /// sees EOF when the agent's exec succeeds.
    pub err_fd: BorrowedFd<'a>,
}

/// Forks the agent (which runs `start_agent`, never returning) and supervises it until it
/// exits. Returns only if the fork fails, with its errno.
pub(crate) fn run<C>(init: &Init, ctx: &C, start_agent: fn(&C) -> !) -> i32 {
    let agent = match raw::fork_raw() {
        Ok(pid) => pid,
        Err(errno) => return errno,
    };
    if agent == 0 {
        raw::set_parent_death_signal(Signal::KILL);
        start_agent(ctx);
    }
    raw::close(init.err_fd);
    loop {
        let Some((sig, code)) = raw::sigwait(init.wait_set) else {
            continue;
        };
        if sig == libc::SIGCHLD {
            while let Some((pid, status)) = raw::wait_nohang() {
                if pid == agent {
                    if let Some(fd) = init.status_fd {
                        raw::write_all(fd, &status.to_ne_bytes());
                    }
                    let code = if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        libc::WEXITSTATUS(status)
                    };
                    // Leaving kills whatever else is in the namespace.
                    raw::exit(code);
                }
            }
            continue;
        }
        // The same set synwire-run forwards, a `[stop] signal` outside the usual ones included.
        if !forwarded(sig) {
            continue;
        }
        // A signal the terminal sent to the whole foreground group already reached the agent.
        if code == SI_KERNEL && raw::getpgid(Some(agent)) == raw::getpgid(None) {
            continue;
        }
        raw::kill(agent, sig);
    }
}
