//! Which signals synwire-run blocks, forwards to the agent and takes as requests to stop: one
//! policy for the supervisor ([`crate::supervise`]) and for the init of a new pid namespace
//! ([`crate::ns::init`]), which runs after fork: everything here is a constant or a `const fn`, or
//! async-signal-safe.

use crate::sys::{SigMask, SIG_MAX};

/// Signals that report a fault of the instruction that raised them. They stay unblocked (a
/// blocked one would still kill, without a core's worth of explanation) and are never forwarded.
pub const SYNCHRONOUS: &[i32] = &[
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGABRT,
];

/// Real-time signals glibc and musl keep for themselves (thread cancellation, setxid, timers):
/// blocked, so that none ends synwire-run, but never forwarded.
const LIBC_RESERVED: [i32; 2] = [32, 33];

/// Whether a signal that reaches synwire-run (or the pid namespace's init) is passed on to the
/// agent: every signal the agent can receive (stop signals and SIGCONT included), but not
/// SIGCHLD, which is about our own children, the synchronous ones, the C libraries' reserved
/// ones, nor SIGKILL and SIGSTOP, which nobody can catch. The one list both forward by.
pub const fn forwarded(sig: i32) -> bool {
    if sig < 1 || sig > SIG_MAX {
        return false;
    }
    if sig == libc::SIGCHLD || sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return false;
    }
    if sig == LIBC_RESERVED[0] || sig == LIBC_RESERVED[1] {
        return false;
    }
    let mut i = 0;
    while i < SYNCHRONOUS.len() {
        if SYNCHRONOUS[i] == sig {
            return false;
        }
        i += 1;
    }
    true
}

/// What synwire-run blocks and reads from its signalfd: everything but the synchronous signals
/// (as tini does), so that no signal's default action ends it before its teardown.
pub const fn blocked() -> SigMask {
    let mut m = SigMask(u64::MAX);
    let mut i = 0;
    while i < SYNCHRONOUS.len() {
        m = m.without(SYNCHRONOUS[i]);
        i += 1;
    }
    m.without(libc::SIGKILL).without(libc::SIGSTOP)
}

/// Stop signals: forwarded, then synwire-run stops itself with the same signal, so that a shell
/// sees its job stopped (Ctrl-Z gives the prompt back) and `fg` resumes both.
pub const STOPS: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// The requests to stop after which synwire-run, once the agent died of the same signal, ends by
/// that signal too (item: a clean stop under systemd).
pub const STOP_REQUESTS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// si_code of a signal the kernel sent, such as the terminal's SIGINT on Ctrl-C.
pub const SI_KERNEL: i32 = 0x80;
/// si_code of kill(2), and of the SIGPIPE or SIGXFSZ the kernel sends a writer.
pub const SI_USER: i32 = 0;

/// Whether a signal with si_code `code` came from the terminal, which sends Ctrl-C (and SIGWINCH,
/// SIGQUIT, hangup, Ctrl-Z) to its whole foreground process group: then an agent in the same
/// group (`same_group`, asked only for such a signal) has it already and must not get it twice.
pub fn from_terminal(code: i32, same_group: impl FnOnce() -> bool) -> bool {
    code == SI_KERNEL && same_group()
}

// ---- names ------------------------------------------------------------------------------------

/// "SIGTERM", "TERM", "sigterm" or "15" -> 15.
pub fn signal_number(s: &str) -> Option<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

/// The name of signal `n` ("SIGTERM"), or its number.
pub fn signal_name(n: i32) -> String {
    SIGNALS
        .iter()
        .find(|(_, v)| *v == n)
        .map_or_else(|| format!("signal {n}"), |(name, _)| format!("SIG{name}"))
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_the_agent_can_receive_is_forwarded() {
        for sig in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGALRM,
            libc::SIGPWR,
            libc::SIGXCPU,
            libc::SIGVTALRM,
            libc::SIGPROF,
            libc::SIGIO,
            libc::SIGSTKFLT,
            libc::SIGURG,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGCONT,
            34,
            37,
            64,
        ] {
            assert!(forwarded(sig), "{sig} is not forwarded");
            assert!(blocked().has(sig), "{sig} is not blocked");
        }
        for sig in [libc::SIGCHLD, libc::SIGKILL, libc::SIGSTOP, 32, 33, 0, 65] {
            assert!(!forwarded(sig), "{sig} is forwarded");
        }
        for &sig in SYNCHRONOUS {
            assert!(!forwarded(sig) && !blocked().has(sig), "{sig}");
        }
        // What the init waits for: everything it forwards, and SIGCHLD to reap.
        assert!(blocked().has(libc::SIGCHLD) && blocked().has(32));
        assert!((1..=SIG_MAX).all(|s| !forwarded(s) || blocked().has(s)));
    }
}
