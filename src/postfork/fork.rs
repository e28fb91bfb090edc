//! The three forks whose children run post-fork code. Each child branch calls one function of
//! this module's siblings that makes async-signal-safe calls only and never returns, which is
//! what fork's contract asks and what makes these functions safe to call.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use super::child::{self, ChildCtx};
use super::guard;
use crate::sys::{self, Forked};

/// Starts the agent with clone3 (CLONE_PIDFD, plus CLONE_INTO_CGROUP when `cgroup` is given, and
/// the namespaces of `ns_flags`): its PID and pidfd.
pub(crate) fn agent_clone3(
    cgroup: Option<RawFd>,
    ns_flags: u64,
    ctx: &ChildCtx,
) -> io::Result<(i32, Option<OwnedFd>)> {
    // SAFETY: the child only runs child::run, which makes async-signal-safe calls (this module's
    // lints police them) and never returns; synwire-run starts no threads.
    match unsafe { sys::clone3(cgroup, ns_flags) }? {
        Forked::Child => child::run(ctx),
        Forked::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}

/// Starts the agent with a stackless clone (fork with namespace flags): its PID.
pub(crate) fn agent_fork(ns_flags: u64, ctx: &ChildCtx) -> io::Result<i32> {
    // SAFETY: as in agent_clone3: the child only runs child::run.
    match unsafe { sys::fork(ns_flags) }? {
        Forked::Child => child::run(ctx),
        Forked::Parent { pid, .. } => Ok(pid),
    }
}

/// Starts the guardian: its PID.
pub(crate) fn guardian(p: &guard::Watch) -> io::Result<i32> {
    // SAFETY: the child only runs guard::guard, which makes async-signal-safe calls and never
    // returns; synwire-run starts no threads.
    match unsafe { sys::fork(0) }? {
        Forked::Child => guard::guard(p),
        Forked::Parent { pid, .. } => Ok(pid),
    }
}
