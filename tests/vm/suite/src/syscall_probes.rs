//! `synwire-vmtest try-syscalls [NAME...]`: tries system calls the way an agent might and prints
//! what happened, one `NAME RESULT` line each (RESULT is `ok` or the errno's name), after a first
//! line `pid N seccomp M` (its PID and the Seccomp field of /proc/self/status). Without NAMEs it
//! tries every probe, in the order of [`PROBES`].
//!
//! Each call of the `[seccomp]` built-in list is made in a harmless form that the kernel refuses
//! with something other than EPERM when no filter stands in the way (a bad argument, a missing
//! path, descriptor -1, a wrong reboot magic): run as root without a filter (the control in
//! seccomp_tests.rs), no line says EPERM, so under the filter every EPERM is the filter's. The
//! calls that would change this process (new namespaces, clones) are made in a forked child, which
//! exits at once. The ordinary calls around them must keep working under the filter; `thread` and
//! `spawn` go through the C library, which tries clone3 first and falls back to clone on ENOSYS.

use std::io::Write;

type Probe = fn() -> Result<(), i32>;

/// Every probe: the calls of the built-in list by their system call's name, then ordinary ones.
pub const PROBES: &[(&str, Probe)] = &[
    ("ptrace", || {
        // PTRACE_PEEKUSER on PID 0: ESRCH.
        sys(unsafe6(
            libc::SYS_ptrace,
            [libc::PTRACE_PEEKUSER as i64, 0, 0, 0, 0, 0],
        ))
    }),
    ("process_vm_readv", || {
        // Flags must be 0: EINVAL.
        sys(unsafe6(libc::SYS_process_vm_readv, [0, 0, 0, 0, 0, 1]))
    }),
    ("process_vm_writev", || {
        sys(unsafe6(libc::SYS_process_vm_writev, [0, 0, 0, 0, 0, 1]))
    }),
    ("pidfd_getfd", || {
        sys(unsafe6(libc::SYS_pidfd_getfd, [-1, 0, 0, 0, 0, 0]))
    }),
    // An unknown command: EINVAL.
    ("bpf", || sys(unsafe6(libc::SYS_bpf, [9999, 0, 0, 0, 0, 0]))),
    // A NULL attribute: EFAULT.
    ("perf_event_open", || {
        sys(unsafe6(libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]))
    }),
    ("io_uring_setup", || {
        sys(unsafe6(libc::SYS_io_uring_setup, [1, 0, 0, 0, 0, 0]))
    }),
    ("io_uring_enter", || {
        sys(unsafe6(libc::SYS_io_uring_enter, [-1, 0, 0, 0, 0, 0]))
    }),
    ("io_uring_register", || {
        sys(unsafe6(libc::SYS_io_uring_register, [-1, 0, 0, 0, 0, 0]))
    }),
    // An unknown flag: EINVAL.
    ("userfaultfd", || {
        sys(unsafe6(libc::SYS_userfaultfd, [2, 0, 0, 0, 0, 0]))
    }),
    ("keyctl", || {
        sys(unsafe6(libc::SYS_keyctl, [9999, 0, 0, 0, 0, 0]))
    }),
    ("add_key", || {
        sys(unsafe6(libc::SYS_add_key, [0, 0, 0, 0, 0, 0]))
    }),
    ("request_key", || {
        sys(unsafe6(libc::SYS_request_key, [0, 0, 0, 0, 0, 0]))
    }),
    // More segments than KEXEC_SEGMENT_MAX: EINVAL.
    ("kexec_load", || {
        sys(unsafe6(libc::SYS_kexec_load, [0, 1000, 0, 0, 0, 0]))
    }),
    ("kexec_file_load", || {
        sys(unsafe6(
            libc::SYS_kexec_file_load,
            [-1, -1, 0, 0, 0x8000_0000, 0],
        ))
    }),
    // An empty image: ENOEXEC.
    ("init_module", || {
        sys(unsafe6(
            libc::SYS_init_module,
            [0, 0, c"".as_ptr() as i64, 0, 0, 0],
        ))
    }),
    ("finit_module", || {
        sys(unsafe6(
            libc::SYS_finit_module,
            [-1, c"".as_ptr() as i64, 0, 0, 0, 0],
        ))
    }),
    ("delete_module", || {
        let name = c"synwire-no-such-module".as_ptr() as i64;
        sys(unsafe6(
            libc::SYS_delete_module,
            [name, libc::O_NONBLOCK as i64, 0, 0, 0, 0],
        ))
    }),
    ("open_by_handle_at", || {
        sys(unsafe6(libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0, 0]))
    }),
    // A target that does not exist: ENOENT.
    ("mount", || {
        sys(unsafe6(libc::SYS_mount, [0, missing(), 0, 0, 0, 0]))
    }),
    ("umount2", || {
        sys(unsafe6(libc::SYS_umount2, [missing(), 0, 0, 0, 0, 0]))
    }),
    ("pivot_root", || {
        sys(unsafe6(
            libc::SYS_pivot_root,
            [missing(), missing(), 0, 0, 0, 0],
        ))
    }),
    ("move_mount", || {
        let empty = c"".as_ptr() as i64;
        sys(unsafe6(libc::SYS_move_mount, [-1, empty, -1, empty, 0, 0]))
    }),
    ("open_tree", || {
        sys(unsafe6(libc::SYS_open_tree, [-1, missing(), 0, 0, 0, 0]))
    }),
    ("fsopen", || {
        sys(unsafe6(libc::SYS_fsopen, [0, 0, 0, 0, 0, 0]))
    }),
    ("fsmount", || {
        sys(unsafe6(libc::SYS_fsmount, [-1, 0, 0, 0, 0, 0]))
    }),
    ("fsconfig", || {
        sys(unsafe6(libc::SYS_fsconfig, [-1, 0, 0, 0, 0, 0]))
    }),
    ("fspick", || {
        sys(unsafe6(libc::SYS_fspick, [-1, missing(), 0, 0, 0, 0]))
    }),
    ("mount_setattr", || {
        let empty = c"".as_ptr() as i64;
        sys(unsafe6(libc::SYS_mount_setattr, [-1, empty, 0, 0, 0, 0]))
    }),
    ("setns", || {
        sys(unsafe6(libc::SYS_setns, [-1, 0, 0, 0, 0, 0]))
    }),
    // Each in a child: without a filter they succeed, and the child leaves with its new namespace.
    ("unshare", || {
        in_child(|| sys(unsafe6(libc::SYS_unshare, [CLONE_NEWUSER, 0, 0, 0, 0, 0])))
    }),
    ("clone", || {
        in_child(|| fork_raw(CLONE_NEWUSER | libc::SIGCHLD as i64))
    }),
    ("clone3", || in_child(clone3_plain)),
    // A NULL path: EFAULT.
    ("swapon", || {
        sys(unsafe6(libc::SYS_swapon, [0, 0, 0, 0, 0, 0]))
    }),
    ("swapoff", || {
        sys(unsafe6(libc::SYS_swapoff, [0, 0, 0, 0, 0, 0]))
    }),
    // Not the magic numbers: EINVAL, and no reboot.
    ("reboot", || {
        sys(unsafe6(libc::SYS_reboot, [0, 0, 0, 0, 0, 0]))
    }),
    ("acct", || {
        sys(unsafe6(libc::SYS_acct, [missing(), 0, 0, 0, 0, 0]))
    }),
    // No device: ENODEV.
    ("quotactl", || {
        sys(unsafe6(libc::SYS_quotactl, [0, 0, 0, 0, 0, 0]))
    }),
    ("quotactl_fd", || {
        sys(unsafe6(libc::SYS_quotactl_fd, [-1, 0, 0, 0, 0, 0]))
    }),
    // An unknown action: EINVAL.
    ("syslog", || {
        sys(unsafe6(libc::SYS_syslog, [9999, 0, 0, 0, 0, 0]))
    }),
    // Ordinary calls.
    ("getpid", || sys(unsafe6(libc::SYS_getpid, [0; 6]))),
    ("uname", || {
        let mut u = std::mem::MaybeUninit::<libc::utsname>::uninit();
        sys(unsafe6(
            libc::SYS_uname,
            [u.as_mut_ptr() as i64, 0, 0, 0, 0, 0],
        ))
    }),
    ("read-file", || {
        std::fs::read_to_string("/proc/self/status")
            .map(drop)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }),
    ("socket-unix", || {
        std::os::unix::net::UnixDatagram::unbound()
            .map(drop)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }),
    ("fork", || in_child(|| fork_raw(libc::SIGCHLD as i64))),
    ("thread", || {
        std::thread::Builder::new()
            .spawn(|| 7)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?
            .join()
            .map(drop)
            .map_err(|_| libc::EIO)
    }),
    ("spawn", || {
        match std::process::Command::new("true").status() {
            Ok(s) if s.success() => Ok(()),
            Ok(_) => Err(libc::EIO),
            Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }),
];

const CLONE_NEWUSER: i64 = libc::CLONE_NEWUSER as i64;

/// A path that does not exist, as a system call argument.
fn missing() -> i64 {
    c"/synwire-no-such-path".as_ptr() as i64
}

fn unsafe6(nr: libc::c_long, a: [i64; 6]) -> libc::c_long {
    // SAFETY: every probe passes integers, NULL, -1 or pointers to static C strings and to its
    // own buffers; none of them asks the kernel to write anywhere else.
    unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

fn sys(r: libc::c_long) -> Result<(), i32> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

/// clone(flags) without a new stack, as fork: 0 in the child, which exits at once.
fn fork_raw(flags: i64) -> Result<(), i32> {
    let r = unsafe6(libc::SYS_clone, [flags, 0, 0, 0, 0, 0]);
    if r == 0 {
        // SAFETY: the new child ends without running anything of the parent's.
        unsafe { libc::_exit(0) }
    }
    sys(r)?;
    let mut status = 0;
    // SAFETY: waits for the child just made.
    unsafe { libc::waitpid(r as i32, &mut status, 0) };
    Ok(())
}

/// clone3 with no flags, exit signal SIGCHLD: a fork.
fn clone3_plain() -> Result<(), i32> {
    // struct clone_args, version 0: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
    // stack_size, tls.
    let args: [u64; 8] = [0, 0, 0, 0, libc::SIGCHLD as u64, 0, 0, 0];
    let r = unsafe6(libc::SYS_clone3, [args.as_ptr() as i64, 64, 0, 0, 0, 0]);
    if r == 0 {
        // SAFETY: the new child ends without running anything of the parent's.
        unsafe { libc::_exit(0) }
    }
    sys(r)?;
    let mut status = 0;
    // SAFETY: waits for the child just made.
    unsafe { libc::waitpid(r as i32, &mut status, 0) };
    Ok(())
}

/// Runs `f` in a forked child, which exits with 0 or the errno; the result as `f` gave it. A
/// child killed by a signal (the filter's SIGSYS) is EINTR here: the caller's own line says it.
fn in_child(f: fn() -> Result<(), i32>) -> Result<(), i32> {
    // SAFETY: this helper is single-threaded when it forks; the child calls `f` (raw system calls
    // only) and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return sys(-1);
    }
    if pid == 0 {
        let code = match f() {
            Ok(()) => 0,
            Err(e) => e,
        };
        // SAFETY: ends the child without the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, e) => Err(e),
        (false, _) => Err(libc::EINTR),
    }
}

/// The errno's name, or `errno<N>`.
fn errno_name(e: i32) -> String {
    crate::errno::name(e).map_or_else(|| format!("errno{e}"), str::to_string)
}

/// `try-syscalls [NAME...]`.
pub fn try_syscalls(args: &[String]) -> Result<(), String> {
    let chosen: Vec<&(&str, Probe)> = if args.is_empty() {
        PROBES.iter().collect()
    } else {
        args.iter()
            .map(|a| {
                PROBES
                    .iter()
                    .find(|(n, _)| n == a)
                    .ok_or_else(|| format!("no probe named {a}"))
            })
            .collect::<Result<_, _>>()?
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map_or("?", str::trim);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "pid {} seccomp {mode}", std::process::id());
    for (name, probe) in chosen {
        // Flushed before each call: under action = "kill" the process dies in it.
        let _ = out.flush();
        let result = match probe() {
            Ok(()) => "ok".to_string(),
            Err(e) => errno_name(e),
        };
        let _ = writeln!(out, "{name} {result}");
    }
    let _ = out.flush();
    Ok(())
}
