//! Starting the agent so that it is inside its cgroup before its first instruction:
//! clone3(CLONE_INTO_CGROUP) where the kernel has it (5.7+), else fork with a handshake in which
//! the parent writes the child's PID to cgroup.procs before the child may execve. Exec failures
//! come back over a CLOEXEC pipe as an errno. This is the parent's side; the child's, from fork
//! to execve, is [`crate::postfork::child`].

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::cgroup::{AgentCgroup, CgroupError};
use crate::ns::Namespaces;
use crate::ns::{self, NsError, NsPlan, Step};
use crate::plan::{exec_errno, ExecFailure, ExecPlan};
use crate::postfork::child::ChildCtx;
use crate::postfork::{fork, raw};
use crate::security::SecPlan;
use crate::sys;

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
    /// With a pid namespace, `pid` is our init; the agent's own raw wait status arrives here.
    pub agent_status: Option<OwnedFd>,
}

impl Child {
    /// Sends `sig` to the agent (through its pidfd where there is one).
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_fd(), sig),
            None => nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::try_from(sig).map_err(io::Error::from)?,
            )
            .map_err(io::Error::from),
        }
    }
}

impl Child {
    /// The agent's raw wait status: the one the pid namespace's init passed on, else `status`
    /// (the init itself, killed before it could tell, or no pid namespace).
    pub fn agent_status(&self, status: i32) -> i32 {
        let Some(fd) = &self.agent_status else {
            return status;
        };
        let mut buf = [0u8; 4];
        match std::fs::File::from(fd.try_clone().expect("dup pipe")).read(&mut buf) {
            Ok(4) => i32::from_ne_bytes(buf),
            _ => status,
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
    #[error(transparent)]
    Ns(#[from] NsError),
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

/// What to start and how.
pub struct Spawn<'a> {
    pub plan: &'a ExecPlan,
    pub cgroup: Option<&'a AgentCgroup>,
    pub ns: Option<(&'a NsPlan, &'a Namespaces)>,
    pub sec: &'a SecPlan,
    pub old_mask: crate::sys::SigMask,
    pub wait_set: crate::sys::SigMask,
    /// Take the fallback path even where clone3 works (testing; SYNWIRE_SPAWN=fork).
    pub force_fork: bool,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SpawnError::Pipe(e.into()))
}

/// Starts the agent inside its cgroup (or without one, degraded), in its namespaces.
pub fn spawn(s: &Spawn) -> Result<Spawned, SpawnError> {
    let (err_r, err_w) = pipe()?;
    let ns_plan = s.ns.map(|(p, _)| p);
    let status = match ns_plan {
        Some(p) if p.pid => Some(pipe()?),
        _ => None,
    };
    // The parent must act between clone and exec: id maps for a user namespace.
    let early_handshake = ns_plan.is_some_and(|p| p.needs_handshake());
    let (hs_r, hs_w) = pipe()?;
    let mut ctx = ChildCtx {
        plan: s.plan,
        parent_pid: std::process::id() as i32,
        old_mask: s.old_mask,
        handshake: early_handshake.then(|| (hs_r.as_fd(), hs_w.as_fd())),
        err_fd: err_w.as_fd(),
        ns: ns_plan,
        sec: s.sec,
        wait_set: s.wait_set,
        status_fd: status.as_ref().map(|(_, w)| w.as_fd()),
    };
    let (pid, pidfd, mode) = clone_child(s, &mut ctx, (hs_r.as_fd(), hs_w.as_fd()))?;
    let release = ctx.handshake.is_some();
    drop(hs_r);
    drop(err_w);
    let status_r = status.map(|(r, _)| r);
    set_up_child(s, pid, mode, hs_w, release)?;
    if let Some(failed) = exec_report(s, err_r, pid)? {
        return Ok(failed);
    }
    Ok(Spawned::Running(Child {
        pid,
        pidfd,
        mode,
        agent_status: status_r,
    }))
}

/// clone3 into the cgroup, or, where the kernel or a sandbox refuses clone3, a plain clone whose
/// child waits on the handshake until the parent has moved it into the cgroup.
fn clone_child<'a>(
    s: &Spawn,
    ctx: &mut ChildCtx<'a>,
    handshake: (BorrowedFd<'a>, BorrowedFd<'a>),
) -> Result<(i32, Option<OwnedFd>, SpawnMode), SpawnError> {
    let ns_flags = ctx.ns.map_or(0, |p| p.clone_flags);
    if !s.force_fork {
        match fork::agent_clone3(s.cgroup.map(|c| c.dir_fd()), ns_flags, ctx) {
            Ok((pid, pidfd)) => return Ok((pid, pidfd, SpawnMode::Clone3)),
            Err(e) if clone3_unsupported(&e) => {
                tracing::debug!("clone3 failed ({e}); falling back to clone and cgroup.procs");
            }
            Err(source) => return Err(clone_error(s, "clone3", source)),
        }
    }
    ctx.handshake = Some(handshake);
    let pid = fork::agent_fork(ns_flags, ctx).map_err(|source| clone_error(s, "clone", source))?;
    Ok((pid, sys::pidfd_open(pid).ok(), SpawnMode::Fork))
}

/// What the parent does between clone and exec: the id maps of a user namespace, the move into
/// the cgroup after a plain clone; then it releases the child (`release`: it waits for that).
fn set_up_child(
    s: &Spawn,
    pid: i32,
    mode: SpawnMode,
    hs_w: OwnedFd,
    release: bool,
) -> Result<(), SpawnError> {
    // Closing the handshake unread makes the child exit before it runs anything.
    let abandon = |hs_w: OwnedFd| {
        drop(hs_w);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    if let Some(p) = s.ns.map(|(p, _)| p).filter(|p| p.user) {
        if let Err(e) = p.write_id_maps(pid) {
            abandon(hs_w);
            return Err(e.into());
        }
    }
    if mode == SpawnMode::Fork {
        if let Some(cg) = s.cgroup {
            if let Err(e) = cg.add_process(pid) {
                abandon(hs_w);
                return Err(e.into());
            }
        }
    }
    if release {
        // The child is in its cgroup with its id maps: release it.
        raw::write_all(hs_w.as_fd(), b"g");
    }
    Ok(())
}

/// Reads what the child reports before exec: EOF means the exec succeeded (the pipe closed on
/// exec). Eight-byte records: the step that failed (or warned) and its errno. Some(ExecFailed)
/// when the program could not be executed.
fn exec_report(s: &Spawn, err_r: OwnedFd, pid: i32) -> Result<Option<Spawned>, SpawnError> {
    let mut r = std::fs::File::from(err_r);
    while let Some((step, errno)) = read_record(&mut r) {
        if step == Step::CwdFallback {
            let cwd =
                std::env::current_dir().map_or_else(|_| "?".into(), |d| d.display().to_string());
            tracing::warn!(
                "the working directory {cwd} is not reachable inside the agent's namespaces ({}); the agent starts in / instead",
                io::Error::from_raw_os_error(errno)
            );
            continue;
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        if step != Step::Exec {
            return Err(NsError::Setup {
                step,
                source: io::Error::from_raw_os_error(errno),
            }
            .into());
        }
        let failure = exec_errno(&s.plan.program(), &s.plan.path.to_string_lossy(), errno);
        return Ok(Some(Spawned::ExecFailed(failure)));
    }
    Ok(None)
}

/// One [step, errno] record from the child, or None at EOF.
fn read_record(r: &mut std::fs::File) -> Option<(Step, i32)> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut buf[got..]) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let step = Step::from_i32(i32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")));
    Some((
        step,
        i32::from_ne_bytes(buf[4..].try_into().expect("4 bytes")),
    ))
}

fn clone_error(s: &Spawn, call: &'static str, source: io::Error) -> SpawnError {
    match s.ns {
        Some((_, names)) => {
            ns::create_error(names, source, crate::security::has_cap_sys_admin()).into()
        }
        None => SpawnError::Fork { call, source },
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::fs::PermissionsExt;

    use nix::sys::wait::{waitpid, WaitStatus};

    use super::*;
    use crate::sys::SigMask;

    fn plan(command: &[&str], env: &[(&str, &str)]) -> ExecPlan {
        let command = command.iter().map(OsString::from).collect();
        let mut env: Vec<(OsString, OsString)> =
            env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        env.push(("PATH".into(), "/usr/bin:/bin".into()));
        ExecPlan::new(command, env).unwrap()
    }

    /// Starts `plan` without a cgroup or namespaces, by clone3 or by the fork fallback, and waits
    /// for it: its exit code, or the exec failure its child reported.
    fn run(plan: &ExecPlan, force_fork: bool) -> Result<i32, ExecFailure> {
        match run_under(plan, &SecPlan::default(), force_fork)? {
            WaitStatus::Exited(_, code) => Ok(code),
            other => panic!("the agent did not exit: {other:?}"),
        }
    }

    /// As [`run`], with least privilege `sec`: how the agent ended.
    fn run_under(
        plan: &ExecPlan,
        sec: &SecPlan,
        force_fork: bool,
    ) -> Result<WaitStatus, ExecFailure> {
        let s = Spawn {
            plan,
            cgroup: None,
            ns: None,
            sec,
            old_mask: SigMask(0),
            wait_set: SigMask(0),
            force_fork,
        };
        match spawn(&s).unwrap() {
            Spawned::Running(child) => {
                Ok(waitpid(nix::unistd::Pid::from_raw(child.pid), None).unwrap())
            }
            Spawned::ExecFailed(failure) => Err(failure),
        }
    }

    fn script(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn the_agent_exits_with_its_own_code_whether_started_by_clone3_or_by_fork() {
        for force_fork in [false, true] {
            assert_eq!(run(&plan(&["sh", "-c", "exit 7"], &[]), force_fork), Ok(7));
        }
    }

    #[test]
    fn a_script_without_a_shebang_line_runs_under_sh() {
        let dir = tempfile::tempdir().unwrap();
        let path = script(dir.path(), "tool", "exit 9\n", 0o755);
        for force_fork in [false, true] {
            assert_eq!(run(&plan(&[&path], &[]), force_fork), Ok(9));
        }
    }

    #[test]
    fn exec_failures_come_back_from_the_child_as_126_and_127() {
        let dir = tempfile::tempdir().unwrap();
        let missing = script(dir.path(), "a", "#!/nonexistent/interpreter\n", 0o755);
        let denied = script(dir.path(), "b", "#!/bin/sh\n", 0o644);
        for force_fork in [false, true] {
            let code = |path: &str| run(&plan(&[path], &[]), force_fork).unwrap_err().code;
            assert_eq!(code(&missing), 127);
            assert_eq!(code(&denied), 126);
        }
    }

    #[test]
    fn listen_pid_becomes_the_agents_own_pid() {
        let check = r#"test "$LISTEN_PID" = "$$""#;
        for force_fork in [false, true] {
            let p = plan(&["sh", "-c", check], &[("LISTEN_PID", "1")]);
            assert_eq!(run(&p, force_fork), Ok(0));
        }
    }

    /// A plan whose `[seccomp]` filter denies uname(2), with `action`.
    fn deny_uname(action: crate::profile::seccomp::Action) -> SecPlan {
        let s = crate::profile::seccomp::Seccomp {
            action,
            deny: vec!["uname".into()],
            ..Default::default()
        };
        let (program, _) = crate::seccomp::prepare(&s, false).unwrap().unwrap();
        let mut sec = SecPlan::default();
        sec.set_seccomp(program);
        sec
    }

    #[test]
    fn the_agent_runs_under_the_seccomp_filter_a_denied_call_fails_with_eperm() {
        use crate::profile::seccomp::Action;
        // The filter is on (Seccomp: 2), uname(1) fails, and the shell and grep run.
        let check = "grep -q '^Seccomp:[[:space:]]*2$' /proc/self/status || exit 3; \
            grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/self/status || exit 4; \
            uname 2>/dev/null && exit 5; exit 0";
        let sec = deny_uname(Action::Errno);
        for force_fork in [false, true] {
            let status = run_under(&plan(&["sh", "-c", check], &[]), &sec, force_fork);
            assert!(matches!(status, Ok(WaitStatus::Exited(_, 0))), "{status:?}");
        }
    }

    #[test]
    fn under_action_kill_a_denied_call_kills_the_agent_with_sigsys() {
        use crate::profile::seccomp::Action;
        let sec = deny_uname(Action::Kill);
        let status = run_under(&plan(&["uname"], &[]), &sec, false);
        assert!(
            matches!(
                status,
                Ok(WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _))
            ),
            "{status:?}"
        );
    }
}
