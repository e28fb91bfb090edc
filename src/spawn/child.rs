//! The child between fork and execve. Only async-signal-safe calls from `sys::child`: no
//! allocation, no formatting, no locks, no tracing. Everything it uses was prepared before fork.

use super::ChildCtx;
use crate::sys::child;

/// Exit code when the parent vanished or the handshake failed before exec.
const SETUP_FAILED: i32 = 125;
/// Exit code after a failed exec (the parent reads the real errno from the pipe).
const EXEC_FAILED: i32 = 127;

pub(super) fn run(ctx: &ChildCtx) -> ! {
    // Die with synwire-run: an agent must never outlive its supervisor unnoticed.
    child::set_parent_death_signal(libc::SIGKILL);
    if child::getppid() != ctx.parent_pid {
        child::exit(SETUP_FAILED);
    }
    // Rust ignores SIGPIPE in its runtime; the agent gets the default, as from a shell. Other
    // dispositions are the caller's (synwire-run installs no handlers) and execve keeps them.
    child::default_signal(libc::SIGPIPE);
    child::set_signal_mask(ctx.old_mask);
    if let Some((read_end, write_end)) = ctx.handshake {
        // Our copy of the write end must go, or a dead parent would leave us waiting forever.
        child::close(write_end);
        if !child::read_byte(read_end) {
            child::exit(SETUP_FAILED);
        }
        child::close(read_end);
    }
    let plan = ctx.plan;
    let mut errno = child::execve(&plan.path, &plan.argv, &plan.envp);
    if errno == libc::ENOEXEC {
        // A script without "#!": run it with /bin/sh, as execvp and shells do.
        errno = child::execve(&plan.sh_path, &plan.sh_argv, &plan.envp);
    }
    child::write_all(ctx.err_fd, &errno.to_ne_bytes());
    child::exit(EXEC_FAILED)
}
