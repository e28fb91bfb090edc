//! The guardian's life after fork (see [`crate::guardian`]): block every signal, close every
//! descriptor but three, sleep in poll(2) on a pidfd of synwire-run, and when it has exited, kill
//! the agent cgroup, wait for it to empty and remove it.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use rustix::event::PollFlags;
use rustix::fs::OFlags;

use super::raw;

/// What the guardian watches and acts on, borrowed from what `crate::guardian` prepared before
/// fork.
pub(crate) struct Watch<'a> {
    /// A pidfd of synwire-run: readable once it has exited.
    pub launcher: BorrowedFd<'a>,
    /// The agent cgroup's directory.
    pub cgroup: BorrowedFd<'a>,
    /// Its parent (the agents directory), O_PATH, for the rmdir.
    pub parent: BorrowedFd<'a>,
    /// The agent cgroup's name in the parent.
    pub name: &'a CStr,
}

/// How long the guardian waits for the killed cgroup to empty.
const EMPTY_WAIT_MS: u64 = 10_000;

/// The guardian's whole life, after fork.
pub(super) fn guard(p: &Watch) -> ! {
    raw::block_all_signals();
    let launcher = p.launcher.as_fd();
    close_all_but(&mut [
        launcher.as_raw_fd(),
        p.cgroup.as_raw_fd(),
        p.parent.as_raw_fd(),
    ]);
    loop {
        match raw::poll(launcher, PollFlags::IN, -1) {
            Ok(r) if !r.is_empty() => break,
            Ok(_) => {}
            Err(libc::EINTR) => {}
            // Cannot watch: leave it to PR_SET_PDEATHSIG and the next launch.
            Err(_) => raw::exit(1),
        }
    }
    kill_all(p.cgroup);
    wait_empty(p.cgroup, EMPTY_WAIT_MS);
    for _ in 0..100 {
        match raw::rmdirat(p.parent.as_fd(), p.name) {
            Err(libc::EBUSY) => raw::sleep_ms(10),
            _ => break,
        }
    }
    raw::exit(0)
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
            ranged &= raw::close_range(first, fd - 1).is_ok();
        }
        first = fd + 1;
    }
    ranged &= raw::close_range(first, u32::MAX).is_ok();
    if !ranged {
        // Before Linux 5.9: at least the standard descriptors.
        for fd in 0..3 {
            if !keep.contains(&fd) {
                raw::close_stdio(fd);
            }
        }
    }
}

/// Writes `value` to the cgroup file `name`; true if it took it.
fn write_cg(dir: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> bool {
    match raw::openat(dir, name, OFlags::WRONLY) {
        Ok(fd) => raw::write_once(fd.as_fd(), value),
        Err(_) => false,
    }
}

/// cgroup.kill (5.14+), else freeze, SIGKILL each listed process until none is, thaw.
fn kill_all(dir: BorrowedFd<'_>) {
    if write_cg(dir, c"cgroup.kill", b"1") {
        return;
    }
    let frozen = write_cg(dir, c"cgroup.freeze", b"1");
    for _ in 0..1000 {
        if kill_listed(dir) == 0 {
            break;
        }
        if !frozen {
            raw::sleep_ms(1);
        }
    }
    if frozen {
        write_cg(dir, c"cgroup.freeze", b"0");
    }
}

/// SIGKILLs every process in cgroup.procs; returns how many were listed.
fn kill_listed(dir: BorrowedFd<'_>) -> usize {
    let Ok(fd) = raw::openat(dir, c"cgroup.procs", OFlags::RDONLY) else {
        return 0;
    };
    let mut buf = [0u8; 4096];
    let (mut pid, mut digits, mut count) = (0i64, false, 0usize);
    let mut flush = |pid: &mut i64, digits: &mut bool| {
        if *digits && *pid > 0 && *pid <= i32::MAX as i64 {
            raw::kill(*pid as i32, libc::SIGKILL);
            count += 1;
        }
        *pid = 0;
        *digits = false;
    };
    while let Ok(n @ 1..) = raw::read(fd.as_fd(), &mut buf) {
        for &b in buf.get(..n).unwrap_or_default() {
            if b.is_ascii_digit() {
                // Saturates: no PID is that long, and a garbled number must not overflow.
                pid = pid
                    .saturating_mul(10)
                    .saturating_add(i64::from(b - b'0'))
                    .min(i64::MAX / 10);
                digits = true;
            } else {
                flush(&mut pid, &mut digits);
            }
        }
    }
    flush(&mut pid, &mut digits);
    count
}

/// Waits up to `limit_ms` for `populated 0` in cgroup.events, woken by POLLPRI.
fn wait_empty(dir: BorrowedFd<'_>, limit_ms: u64) {
    let Ok(fd) = raw::openat(dir, c"cgroup.events", OFlags::RDONLY) else {
        return;
    };
    let deadline = raw::monotonic_ms() + limit_ms;
    let mut buf = [0u8; 256];
    while let Ok(n @ 1..) = raw::pread0(fd.as_fd(), &mut buf) {
        let text = buf.get(..n).unwrap_or_default();
        if text.windows(11).any(|w| w == b"populated 0") {
            break;
        }
        let now = raw::monotonic_ms();
        if now >= deadline {
            break;
        }
        let _ = raw::poll(fd.as_fd(), PollFlags::PRI, (deadline - now).min(100) as i32);
    }
}

/// The guardian run on a plain directory standing in for the agent cgroup: its cgroup files are
/// regular files here, which the guardian writes and reads as it would the kernel's.
#[cfg(test)]
#[allow(
    clippy::disallowed_macros,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
mod tests {
    use std::ffi::CString;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::process::{Child, Command};

    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;

    use super::Watch;
    use crate::postfork::fork;
    use crate::sys;

    fn sleeper() -> Child {
        Command::new("sleep").arg("60").spawn().unwrap()
    }

    /// Forks a guardian of `agent` that watches `launcher` (a stand-in for synwire-run), lets the
    /// launcher die, and returns the guardian's exit code.
    fn guard_until_launcher_dies(agent: &Path, launcher: &mut Child, before: impl FnOnce()) -> i32 {
        let dir = OwnedFd::from(std::fs::File::open(agent).unwrap());
        let parent = CString::new(agent.parent().unwrap().as_os_str().as_bytes()).unwrap();
        let launcher_fd = sys::pidfd_open(launcher.id() as i32).unwrap();
        let parent_fd = sys::open_path(&parent).unwrap();
        let name = CString::new(agent.file_name().unwrap().as_bytes()).unwrap();
        let watch = Watch {
            launcher: launcher_fd.as_fd(),
            cgroup: dir.as_fd(),
            parent: parent_fd.as_fd(),
            name: &name,
        };
        let guardian = fork::guardian(&watch).unwrap();
        // The guardian acts only once the launcher is gone.
        before();
        launcher.kill().unwrap();
        launcher.wait().unwrap();
        match waitpid(Pid::from_raw(guardian), None).unwrap() {
            WaitStatus::Exited(_, code) => code,
            other => panic!("the guardian did not exit: {other:?}"),
        }
    }

    #[test]
    fn once_the_launcher_is_gone_the_guardian_kills_every_process_the_cgroup_lists() {
        let top = tempfile::tempdir().unwrap();
        let agent = top.path().join("agent");
        std::fs::create_dir(&agent).unwrap();
        let mut victim = sleeper();
        std::fs::write(agent.join("cgroup.procs"), format!("{}\n", victim.id())).unwrap();
        // A cgroup without cgroup.kill (before 5.14): freeze, kill each listed process, thaw.
        std::fs::write(agent.join("cgroup.freeze"), "").unwrap();
        std::fs::write(agent.join("cgroup.events"), "populated 0\n").unwrap();
        let mut launcher = sleeper();
        let code = guard_until_launcher_dies(&agent, &mut launcher, || {
            assert_eq!(victim.try_wait().unwrap(), None);
        });
        assert_eq!(code, 0);
        let status = waitpid(Pid::from_raw(victim.id() as i32), None).unwrap();
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
            "{status:?}"
        );
        assert_eq!(
            std::fs::read_to_string(agent.join("cgroup.freeze")).unwrap(),
            "0"
        );
    }

    #[test]
    fn once_the_launcher_is_gone_the_guardian_writes_cgroup_kill_and_removes_the_cgroup() {
        let top = tempfile::tempdir().unwrap();
        let agent = top.path().join("agent");
        std::fs::create_dir(&agent).unwrap();
        std::fs::write(agent.join("cgroup.kill"), "").unwrap();
        let mut launcher = sleeper();
        let code = guard_until_launcher_dies(&agent, &mut launcher, || {
            assert_eq!(std::fs::read(agent.join("cgroup.kill")).unwrap(), b"");
        });
        assert_eq!(code, 0);
        assert_eq!(std::fs::read(agent.join("cgroup.kill")).unwrap(), b"1");

        // An empty cgroup (the kernel's rmdir ignores its interface files) is removed.
        let empty = top.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let mut launcher = sleeper();
        let code = guard_until_launcher_dies(&empty, &mut launcher, || assert!(empty.exists()));
        assert_eq!(code, 0);
        assert!(!empty.exists());
    }
}
