//! The child between fork and execve. Only async-signal-safe calls from `sys::child`: no
//! allocation, no formatting, no locks, no tracing. Everything it uses was prepared before fork.

use super::ChildCtx;
use crate::ns::{init, NsPlan, Step};
use crate::sys::child;

/// Exit code when the parent vanished or a set-up step failed before exec.
const SETUP_FAILED: i32 = 125;
/// Exit code after a failed exec (the parent reads the real errno from the pipe).
const EXEC_FAILED: i32 = 127;

/// Tells the parent which step failed and why: [step, errno] as two native i32.
fn report(ctx: &ChildCtx, step: Step, errno: i32) {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(step as i32).to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    child::write_all(ctx.err_fd, &buf);
}

pub(super) fn run(ctx: &ChildCtx) -> ! {
    // Die with synwire-run: an agent must never outlive its supervisor unnoticed.
    child::set_parent_death_signal(libc::SIGKILL);
    // In a new pid namespace the parent is outside it, and getppid() reads 0.
    let ppid = child::getppid();
    if ppid != ctx.parent_pid && ppid != 0 {
        child::exit(SETUP_FAILED);
    }
    if let Some((read_end, write_end)) = ctx.handshake {
        // Our copy of the write end must go, or a dead parent would leave us waiting forever.
        child::close(write_end);
        if !child::read_byte(read_end) {
            child::exit(SETUP_FAILED);
        }
        child::close(read_end);
    }
    if let Some(ns) = ctx.ns {
        match enter(ns) {
            Ok(None) => {}
            // A warning, not a failure: the parent prints it and reads on.
            Ok(Some(errno)) => report(ctx, Step::CwdFallback, errno),
            Err((step, errno)) => {
                report(ctx, step, errno);
                child::exit(SETUP_FAILED);
            }
        }
        if ns.pid {
            let i = init::Init {
                wait_set: ctx.wait_set,
                status_fd: ctx.status_fd,
                err_fd: ctx.err_fd,
            };
            let errno = init::run(&i, ctx, exec);
            report(ctx, Step::ForkInit, errno);
            child::exit(SETUP_FAILED);
        }
    }
    exec(ctx)
}

/// The set-up inside the new namespaces, in order: the cgroup namespace (now that we are in our
/// cgroup, which becomes its root), private mounts, /proc, cgroup2, hostname, loopback, and the
/// working directory. Ok(Some(errno)): the working directory was unreachable inside (a directory
/// whose owner is not mapped into the user namespace) and the agent starts in `/`.
fn enter(ns: &NsPlan) -> Result<Option<i32>, (Step, i32)> {
    if ns.cgroup {
        child::unshare(libc::CLONE_NEWCGROUP).map_err(|e| (Step::CgroupNs, e))?;
    }
    if ns.mount {
        // Nothing mounted inside may propagate to the host.
        child::mount(None, &ns.root, None, libc::MS_REC | libc::MS_PRIVATE)
            .map_err(|e| (Step::PrivateMounts, e))?;
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if ns.pid {
            child::mount(Some(&ns.proc_fs), &ns.proc_dir, Some(&ns.proc_fs), flags)
                .map_err(|e| (Step::MountProc, e))?;
        }
        if ns.cgroup {
            // The kernel refuses to mount a superblock on its own root at the same place (EBUSY:
            // the host's cgroup2 is at /sys/fs/cgroup), and that mount cannot be unmounted in a
            // user namespace (it is locked): cover it with a tmpfs and mount cgroup2 on that.
            child::mount(Some(&ns.tmpfs), &ns.cgroup_dir, Some(&ns.tmpfs), flags)
                .map_err(|e| (Step::MountCgroup, e))?;
            child::mount(
                Some(&ns.cgroup_fs),
                &ns.cgroup_dir,
                Some(&ns.cgroup_fs),
                flags,
            )
            .map_err(|e| (Step::MountCgroup, e))?;
        }
    }
    if ns.uts {
        child::sethostname(&ns.hostname).map_err(|e| (Step::Hostname, e))?;
    }
    if ns.net {
        child::loopback_up().map_err(|e| (Step::Loopback, e))?;
    }
    if let Err(errno) = child::cwd_searchable() {
        child::chdir(&ns.root).map_err(|e| (Step::CwdFallback, e))?;
        return Ok(Some(errno));
    }
    Ok(None)
}

fn exec(ctx: &ChildCtx) -> ! {
    // Rust ignores SIGPIPE in its runtime; the agent gets the default, as from a shell. Other
    // dispositions are the caller's (synwire-run installs no handlers) and execve keeps them.
    child::default_signal(libc::SIGPIPE);
    child::set_signal_mask(ctx.old_mask);
    if let Err((step, errno)) = crate::security::apply(ctx.sec) {
        report(ctx, step, errno);
        child::exit(SETUP_FAILED);
    }
    // The kernel clears the parent-death signal when the credentials change (the user switch):
    // arm it again, then make sure the parent did not die before that (it would not fire).
    // Under a pid namespace the parent is its init, PID 1 there.
    child::set_parent_death_signal(libc::SIGKILL);
    let parent = if ctx.ns.is_some_and(|n| n.pid) {
        1
    } else {
        ctx.parent_pid
    };
    if child::getppid() != parent {
        child::exit(SETUP_FAILED);
    }
    let plan = ctx.plan;
    if let Some(slot) = &plan.listen_pid {
        child::fill_pid(slot);
    }
    let mut errno = child::execve(&plan.path, &plan.argv, &plan.envp);
    if errno == libc::ENOEXEC {
        // A script without "#!": run it with /bin/sh, as execvp and shells do.
        errno = child::execve(&plan.sh_path, &plan.sh_argv, &plan.envp);
    }
    report(ctx, Step::Exec, errno);
    child::exit(EXEC_FAILED)
}
