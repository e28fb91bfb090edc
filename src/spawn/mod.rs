//! Starting the agent so that it is inside its cgroup before its first instruction:
//! clone3(CLONE_INTO_CGROUP) where the kernel has it (5.7+), else fork with a handshake in which
//! the parent writes the child's PID to cgroup.procs before the child may execve. Exec failures
//! come back over a CLOEXEC pipe as an errno.

mod child;

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;

use crate::cgroup::{AgentCgroup, CgroupError};
use crate::plan::{exec_errno, ExecFailure, ExecPlan};
use crate::sys::{self, Forked};

/// How the agent was started, reported in the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpawnMode {
    /// clone3 with CLONE_INTO_CGROUP: born in its cgroup.
    Clone3,
    /// fork, then cgroup.procs, then a handshake before execve.
    Fork,
}

/// The running agent.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    /// Signals go through this where the kernel has pidfds, so they never hit a reused PID.
    pub pidfd: Option<OwnedFd>,
    pub mode: SpawnMode,
}

impl Child {
    /// Sends `sig` to the agent (through its pidfd where there is one).
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_raw_fd(), sig),
            None => nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::try_from(sig).map_err(io::Error::from)?,
            )
            .map_err(io::Error::from),
        }
    }
}

pub enum Spawned {
    Running(Child),
    /// execve failed in the child; it has been reaped.
    ExecFailed(ExecFailure),
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create a pipe for the agent: {0}")]
    Pipe(io::Error),
    #[error("cannot start the agent ({call}): {source}; if this is a container, its seccomp profile may forbid it")]
    Fork {
        call: &'static str,
        source: io::Error,
    },
    #[error("cannot move the agent into its cgroup: {0}")]
    Place(#[from] CgroupError),
}

/// What the child needs, all prepared before fork.
pub(crate) struct ChildCtx<'a> {
    pub plan: &'a ExecPlan,
    pub parent_pid: i32,
    pub old_mask: &'a libc::sigset_t,
    /// Read end of the handshake (fork mode) and the write end to close first.
    pub handshake: Option<(RawFd, RawFd)>,
    pub err_fd: RawFd,
}

/// Whether a clone3 failure means "use the fallback" rather than "give up".
fn clone3_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOSYS
                | libc::EINVAL
                | libc::E2BIG
                | libc::EOPNOTSUPP
                | libc::EPERM
                | libc::EACCES
                | libc::EBUSY
        )
    )
}

/// Starts the agent inside `cgroup` (or without one, degraded). `force_fork` takes the fallback
/// path even where clone3 works (testing; SYNWIRE_SPAWN=fork).
pub fn spawn(
    plan: &ExecPlan,
    cgroup: Option<&AgentCgroup>,
    old_mask: &libc::sigset_t,
    force_fork: bool,
) -> Result<Spawned, SpawnError> {
    let (err_r, err_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::Pipe(e.into()))?;
    let parent_pid = std::process::id() as i32;
    let mut ctx = ChildCtx {
        plan,
        parent_pid,
        old_mask,
        handshake: None,
        err_fd: err_w.as_raw_fd(),
    };

    let mut forked = None;
    if !force_fork {
        // SAFETY: synwire-run starts no threads; the child branch below only calls child::run,
        // which makes async-signal-safe calls and never returns.
        match unsafe { sys::clone3(cgroup.map(|c| c.dir_fd())) } {
            Ok(Forked::Child) => child::run(&ctx),
            Ok(Forked::Parent { pid, pidfd }) => forked = Some((pid, pidfd, SpawnMode::Clone3)),
            Err(e) if clone3_unsupported(&e) => {
                tracing::debug!("clone3 unavailable ({e}); falling back to fork and cgroup.procs");
            }
            Err(source) => {
                return Err(SpawnError::Fork {
                    call: "clone3",
                    source,
                })
            }
        }
    }
    let (pid, pidfd, mode) = match forked {
        Some(f) => f,
        None => {
            let (hs_r, hs_w) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::Pipe(e.into()))?;
            ctx.handshake = Some((hs_r.as_raw_fd(), hs_w.as_raw_fd()));
            // SAFETY: as above: single-threaded, and the child only runs child::run.
            let pid = match unsafe { sys::fork() } {
                Ok(Forked::Child) => child::run(&ctx),
                Ok(Forked::Parent { pid, .. }) => pid,
                Err(source) => {
                    return Err(SpawnError::Fork {
                        call: "fork",
                        source,
                    })
                }
            };
            drop(hs_r);
            if let Some(cg) = cgroup {
                if let Err(e) = cg.add_process(pid) {
                    // Closing the handshake unread makes the child exit before it runs anything.
                    drop(hs_w);
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                    return Err(e.into());
                }
            }
            // The child is in its cgroup: release it.
            sys::child::write_all(hs_w.as_raw_fd(), b"g");
            drop(hs_w);
            (pid, sys::pidfd_open(pid).ok(), SpawnMode::Fork)
        }
    };
    drop(err_w);

    // EOF: the exec succeeded (the pipe closed on exec). Four bytes: the errno of a failed exec.
    let mut buf = [0u8; 4];
    let mut got = 0;
    let mut r = std::fs::File::from(err_r);
    while got < 4 {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got == 4 {
        let errno = i32::from_ne_bytes(buf);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        let failure = exec_errno(&plan.program(), &plan.path.to_string_lossy(), errno);
        return Ok(Spawned::ExecFailed(failure));
    }
    Ok(Spawned::Running(Child { pid, pidfd, mode }))
}
