//! The agent's child between fork and execve: die with synwire-run, wait for the parent's
//! release, set up the namespaces (through the pid namespace's init when there is one), apply
//! least privilege, install the `[seccomp]` filter, exec. Everything it uses was prepared before
//! fork. Under a pid namespace only the agent, forked by the init, gets the filter: the init never
//! reaches [`exec`].

use std::os::fd::{AsFd, BorrowedFd};

use rustix::mount::MountFlags;
use rustix::process::Signal;

use super::{init, raw, security, view};
use crate::net::setup as network;
use crate::ns::{NsPlan, Step};
use crate::plan::ExecPlan;
use crate::security::SecPlan;
use crate::sys::SigMask;

/// Exit code when the parent vanished or a set-up step failed before exec.
const SETUP_FAILED: i32 = 125;
/// Exit code after a failed exec (the parent reads the real errno from the pipe).
const EXEC_FAILED: i32 = 127;

/// What the child needs, all prepared before fork. The descriptors are borrowed from the parent's
/// pipes, which outlive the fork.
pub(crate) struct ChildCtx<'a> {
    pub plan: &'a ExecPlan,
    pub parent_pid: i32,
    pub old_mask: SigMask,
    /// Read end of the handshake (fork mode) and the write end to close first.
    pub handshake: Option<(BorrowedFd<'a>, BorrowedFd<'a>)>,
    pub err_fd: BorrowedFd<'a>,
    pub ns: Option<&'a NsPlan>,
    pub sec: &'a SecPlan,
    /// For a pid namespace's init: the signals it waits for, and where the status goes.
    pub wait_set: SigMask,
    pub status_fd: Option<BorrowedFd<'a>>,
}

/// Tells the parent which step failed and why: [step, errno] as two native i32.
fn report(ctx: &ChildCtx, step: Step, errno: i32) {
    let [a, b, c, d] = (step as i32).to_ne_bytes();
    let [e, f, g, h] = errno.to_ne_bytes();
    raw::write_all(ctx.err_fd, &[a, b, c, d, e, f, g, h]);
}

pub(crate) fn run(ctx: &ChildCtx) -> ! {
    // Die with synwire-run: an agent must never outlive its supervisor unnoticed.
    raw::set_parent_death_signal(Signal::KILL);
    // In a new pid namespace the parent is outside it, and getppid() reads 0.
    let ppid = raw::getppid();
    if ppid != ctx.parent_pid && ppid != 0 {
        raw::exit(SETUP_FAILED);
    }
    if let Some((read_end, write_end)) = ctx.handshake {
        // Our copy of the write end must go, or a dead parent would leave us waiting forever.
        raw::close(write_end);
        if !raw::read_byte(read_end) {
            raw::exit(SETUP_FAILED);
        }
        raw::close(read_end);
    }
    if let Some(ns) = ctx.ns {
        match enter(ns) {
            Ok(None) => {}
            // A warning, not a failure: the parent prints it and reads on.
            Ok(Some(errno)) => report(ctx, Step::CwdFallback, errno),
            Err((step, errno)) => {
                report(ctx, step, errno);
                raw::exit(SETUP_FAILED);
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
            raw::exit(SETUP_FAILED);
        }
    }
    exec(ctx)
}

/// The set-up inside the new namespaces, in order: the cgroup namespace (now that we are in our
/// cgroup, which becomes its root), private mounts, the read-only view, /proc, cgroup2, hostname,
/// loopback, and the working directory. Ok(Some(errno)): the working directory was unreachable inside (a directory
/// whose owner is not mapped into the user namespace) and the agent starts in `/`.
fn enter(ns: &NsPlan) -> Result<Option<i32>, (Step, i32)> {
    if ns.cgroup {
        raw::unshare_cgroup().map_err(|e| (Step::CgroupNs, e))?;
    }
    let mut cwd_lost = None;
    if ns.mount {
        // Nothing mounted inside may propagate to the host.
        raw::make_private(&ns.root).map_err(|e| (Step::PrivateMounts, e))?;
        if let Some(v) = &ns.view {
            cwd_lost = view::build(v)?;
        }
        let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        if ns.pid {
            raw::mount(&ns.proc_fs, &ns.proc_dir, &ns.proc_fs, flags)
                .map_err(|e| (Step::MountProc, e))?;
        }
        if ns.cgroup {
            // The kernel refuses to mount a superblock on its own root at the same place (EBUSY:
            // the host's cgroup2 is at /sys/fs/cgroup), and that mount cannot be unmounted in a
            // user namespace (it is locked): cover it with a tmpfs and mount cgroup2 on that.
            raw::mount(&ns.tmpfs, &ns.cgroup_dir, &ns.tmpfs, flags)
                .map_err(|e| (Step::MountCgroup, e))?;
            raw::mount(&ns.cgroup_fs, &ns.cgroup_dir, &ns.cgroup_fs, flags)
                .map_err(|e| (Step::MountCgroup, e))?;
        }
    }
    if ns.uts {
        raw::sethostname(&ns.hostname).map_err(|e| (Step::Hostname, e))?;
    }
    if ns.net {
        raw::loopback_up().map_err(|e| (Step::Loopback, e))?;
    }
    if let Some(handoff) = &ns.proxy_handoff {
        // Created here, they stay in this namespace wherever they go; closed here once sent.
        let http = raw::listen_loopback(network::HTTP_PORT).map_err(|e| (Step::ProxyListen, e))?;
        let socks =
            raw::listen_loopback(network::SOCKS_PORT).map_err(|e| (Step::ProxyListen, e))?;
        raw::send_fds(handoff.as_fd(), &[http.as_fd(), socks.as_fd()], b"L")
            .map_err(|e| (Step::ProxyHandoff, e))?;
        // Then one message per forwarded loopback port, the port as its data.
        for &port in &ns.proxy_forwards {
            let l = raw::listen_loopback(port).map_err(|e| (Step::ProxyListen, e))?;
            raw::send_fds(handoff.as_fd(), &[l.as_fd()], &port.to_ne_bytes())
                .map_err(|e| (Step::ProxyHandoff, e))?;
        }
    }
    if let Some(errno) = cwd_lost.or_else(|| raw::cwd_searchable().err()) {
        raw::chdir(&ns.root).map_err(|e| (Step::CwdFallback, e))?;
        return Ok(Some(errno));
    }
    Ok(None)
}

fn exec(ctx: &ChildCtx) -> ! {
    // Rust ignores SIGPIPE in its runtime; the agent gets the default, as from a shell. Other
    // dispositions are the caller's (synwire-run installs no handlers) and execve keeps them.
    raw::default_signal(libc::SIGPIPE);
    raw::set_signal_mask(ctx.old_mask);
    if let Err((step, errno)) = security::apply(ctx.sec) {
        report(ctx, step, errno);
        raw::exit(SETUP_FAILED);
    }
    // The kernel clears the parent-death signal when the credentials change (the user switch):
    // arm it again, then make sure the parent did not die before that (it would not fire).
    // Under a pid namespace the parent is its init, PID 1 there.
    raw::set_parent_death_signal(Signal::KILL);
    let parent = if ctx.ns.is_some_and(|n| n.pid) {
        1
    } else {
        ctx.parent_pid
    };
    if raw::getppid() != parent {
        raw::exit(SETUP_FAILED);
    }
    let plan = ctx.plan;
    if let Some(slot) = &plan.listen_pid {
        raw::fill_pid(slot);
    }
    // The very last step: from here on every call goes through the filter, and only execve (and,
    // should it fail, the report's write and _exit) follows, none of them in any list.
    if let Some(filter) = &ctx.sec.seccomp {
        if let Err(errno) = raw::seccomp_set_filter(filter.instructions()) {
            report(ctx, Step::Seccomp, errno);
            raw::exit(SETUP_FAILED);
        }
    }
    let mut errno = raw::execve(&plan.path, &plan.argv, &plan.envp);
    if errno == libc::ENOEXEC {
        // A script without "#!": run it with /bin/sh, as execvp and shells do.
        errno = raw::execve(&plan.sh_path, &plan.sh_argv, &plan.envp);
    }
    report(ctx, Step::Exec, errno);
    raw::exit(EXEC_FAILED)
}
