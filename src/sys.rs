//! The thin unsafe layer: every raw system call synwire-run makes that nix does not wrap safely.
//! Each function is one call (man page named), each unsafe block says why it is sound. The
//! functions marked "async-signal-safe" are the only ones the child may call between fork and
//! execve: they make one raw syscall each, allocate nothing, take no lock.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_char;
use std::time::Duration;

/// A NULL-terminated `char *[]` built before fork, with the strings it points into.
pub struct CArgv {
    strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CArgv {
    pub fn new(strings: Vec<CString>) -> CArgv {
        // CString's buffer lives on the heap, so the pointers stay valid when `strings` moves.
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CArgv { strings, ptrs }
    }

    pub fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }

    pub fn strings(&self) -> &[CString] {
        &self.strings
    }

    /// Points entry `idx` at `slot` instead (the slot must outlive this array's use).
    pub fn point_at(&mut self, idx: usize, slot: &PidSlot) {
        self.ptrs[idx] = slot.buf as *const c_char;
    }
}

/// A heap buffer holding `NAME=` and room for a PID, which the child fills in after fork: the
/// one value of the agent's environment that is only known then (LISTEN_PID).
pub struct PidSlot {
    buf: *mut u8,
    prefix: usize,
}

const PID_SLOT: usize = 32;

impl PidSlot {
    pub fn new(prefix: &[u8]) -> PidSlot {
        assert!(prefix.len() + 12 < PID_SLOT);
        let mut b = vec![0u8; PID_SLOT].into_boxed_slice();
        b[..prefix.len()].copy_from_slice(prefix);
        PidSlot {
            buf: Box::into_raw(b) as *mut u8,
            prefix: prefix.len(),
        }
    }
}

impl Drop for PidSlot {
    fn drop(&mut self) {
        // SAFETY: `buf` came from Box::into_raw of a PID_SLOT-byte boxed slice and is freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.buf, PID_SLOT)) });
    }
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub enum Forked {
    Child,
    Parent { pid: i32, pidfd: Option<OwnedFd> },
}

/// clone3(2) with CLONE_PIDFD, and CLONE_INTO_CGROUP when `cgroup` is given: a fork whose child
/// starts life inside that cgroup.
///
/// # Safety
/// As fork(2): the process must be single-threaded, and the child may only make
/// async-signal-safe calls until it execs or exits.
pub unsafe fn clone3(cgroup: Option<RawFd>, ns_flags: u64) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | ns_flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size passed, `pidfd` outlives the call; with no
    // stack given the child runs on a copy of ours, like fork. The caller upholds fork's rules.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    })?;
    if ret == 0 {
        return Ok(Forked::Child);
    }
    // SAFETY: the kernel stored a new, owned pidfd for the child (CLONE_PIDFD).
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Ok(Forked::Parent {
        pid: ret as i32,
        pidfd,
    })
}

/// clone(2) without a stack, as fork, with namespace flags: for kernels or sandboxes without
/// clone3.
///
/// # Safety
/// As fork(2): single-threaded caller; the child makes only async-signal-safe calls.
pub unsafe fn fork(ns_flags: u64) -> io::Result<Forked> {
    // SAFETY: a stackless clone is fork with flags; the caller upholds fork's rules.
    let pid = check(unsafe {
        libc::syscall(
            libc::SYS_clone,
            ns_flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent {
            pid: pid as i32,
            pidfd: None,
        }
    })
}

/// pidfd_open(2) (Linux 5.3).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// pidfd_send_signal(2) (Linux 5.1): signals exactly the process the pidfd refers to, never a
/// reused PID.
pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a NULL siginfo means "as kill(2)".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// A child's end: the raw wait status and its resource usage.
pub struct Reaped {
    pub pid: i32,
    pub status: i32,
    pub rusage: libc::rusage,
}

/// wait4(-1, WNOHANG): one exited child, if any.
pub fn wait_any_nohang() -> Option<Reaped> {
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for writes for the duration of the call.
    let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut rusage) };
    (pid > 0).then_some(Reaped {
        pid,
        status,
        rusage,
    })
}

/// Reaps every exited child, discarding what they return.
pub fn reap_any() {
    while wait_any_nohang().is_some() {}
}

/// prctl(PR_SET_CHILD_SUBREAPER): orphans of the agent become our children, so we reap them.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

/// poll(2) for POLLIN on `fd`, up to `timeout` (None: forever). True when readable.
pub fn poll_in(fd: RawFd, timeout: Option<Duration>) -> bool {
    poll_one(fd, libc::POLLIN, timeout)
}

/// poll(2) for POLLPRI (a kernfs file changed), up to `timeout`.
pub fn poll_pri(fd: RawFd, timeout: Duration) -> bool {
    poll_one(fd, libc::POLLPRI, Some(timeout))
}

fn poll_one(fd: RawFd, events: libc::c_short, timeout: Option<Duration>) -> bool {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & (events | libc::POLLERR) != 0
}

/// 16 random bytes that never block: getrandom(GRND_INSECURE) (5.6+), else /dev/urandom. An
/// agent's id needs uniqueness, not secrecy, and at early boot (a unit started before the kernel's
/// entropy pool is ready, a fresh VM) a blocking getrandom would stall the launch for minutes.
pub fn random_id_bytes() -> io::Result<[u8; 16]> {
    const GRND_INSECURE: libc::c_uint = 0x0004;
    let mut buf = [0u8; 16];
    // SAFETY: the buffer is valid for writes of its length. The raw system call, not the libc
    // wrapper: a static musl build resolves `getrandom` weakly, to null.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            GRND_INSECURE,
        )
    };
    if n == buf.len() as libc::c_long {
        return Ok(buf);
    }
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// Sets or clears FD_CLOEXEC on `fd`; EBADF when it is not open.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD only read and write the descriptor's flags; on a descriptor that is
    // not open they fail with EBADF and change nothing.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)? as libc::c_int;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, new) } as libc::c_long)?;
    Ok(())
}

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the ABI version.
pub fn landlock_abi() -> io::Result<u32> {
    const VERSION: u32 = 1;
    // SAFETY: the documented version query: NULL attributes, size 0.
    check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            VERSION,
        )
    })
    .map(|v| v as u32)
}

/// landlock_create_ruleset(2) handling the filesystem rights `handled`.
pub fn landlock_create_ruleset(handled: u64) -> io::Result<OwnedFd> {
    // The ABI-1 prefix of struct landlock_ruleset_attr, which every kernel with Landlock takes.
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
    }
    let attr = RulesetAttr {
        handled_access_fs: handled,
    };
    // SAFETY: a valid attribute struct of the size passed.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    })?;
    // SAFETY: a new descriptor (close-on-exec) that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// landlock_add_rule(2), LANDLOCK_RULE_PATH_BENEATH: `allowed` beneath `parent`.
pub fn landlock_add_path_rule(ruleset: &OwnedFd, parent: &OwnedFd, allowed: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C, packed)]
    struct PathBeneath {
        allowed_access: u64,
        parent_fd: i32,
    }
    const RULE_PATH_BENEATH: u32 = 1;
    let rule = PathBeneath {
        allowed_access: allowed,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: a valid packed landlock_path_beneath_attr; both descriptors are open.
    check(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &rule as *const PathBeneath,
            0u32,
        )
    })?;
    Ok(())
}

/// open(path, O_PATH | O_CLOEXEC): a handle to a path without reading it.
pub fn open_path(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path.
    let fd = check(
        unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) } as libc::c_long,
    )?;
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// getxattr(2): the value of extended attribute `name` on `path`, if it has one.
pub fn getxattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer valid for the length passed.
    let len = unsafe {
        libc::getxattr(
            p.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

/// setxattr(2): sets extended attribute `name` on `path` to `value`.
pub fn setxattr(path: &std::path::Path, name: &str, value: &[u8]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: NUL-terminated strings and a value slice valid for its length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    };
    check(r as libc::c_long).map(|_| ())
}

/// A set of signals as the kernel takes it: bit N-1 for signal N (1 to 64). libc's sigset_t
/// functions refuse or silently drop the real-time signals the C libraries reserve (32 and 33),
/// which synwire-run blocks too, so masks go to the kernel through the raw calls below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigMask(pub u64);

/// The highest signal number on Linux (x86-64 and every other architecture but MIPS).
pub const SIG_MAX: i32 = 64;

impl SigMask {
    pub const fn with(self, sig: i32) -> SigMask {
        SigMask(self.0 | (1u64 << (sig - 1)))
    }

    pub const fn without(self, sig: i32) -> SigMask {
        SigMask(self.0 & !(1u64 << (sig - 1)))
    }

    pub const fn has(self, sig: i32) -> bool {
        sig >= 1 && sig <= SIG_MAX && self.0 & (1u64 << (sig - 1)) != 0
    }
}

/// rt_sigprocmask(2) with the kernel's 8-byte set; returns the previous mask.
pub fn sigprocmask(how: libc::c_int, set: SigMask) -> io::Result<SigMask> {
    let mut old = SigMask(0);
    // SAFETY: both pointers are valid 8-byte sets, the size the kernel takes on this platform.
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            how,
            &set.0 as *const u64,
            &mut old.0 as *mut u64,
            8usize,
        )
    })?;
    Ok(old)
}

/// signalfd4(2): a close-on-exec, non-blocking descriptor from which the signals of `set` (which
/// must be blocked) are read.
pub fn signalfd(set: SigMask) -> io::Result<OwnedFd> {
    // SAFETY: a valid 8-byte set; -1 asks for a new descriptor, which we then own.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            &set.0 as *const u64,
            8usize,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        )
    })?;
    // SAFETY: a fresh descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// One signal read from a signalfd: its number, si_code and the sender's PID.
#[derive(Debug, Clone, Copy)]
pub struct SigInfo {
    pub signo: i32,
    pub code: i32,
    pub pid: u32,
}

/// Reads one signal from a non-blocking signalfd; None when none is pending.
pub fn read_signal(fd: RawFd) -> Option<SigInfo> {
    // SAFETY: signalfd_siginfo is plain data; zeroed is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is valid for writes of `size` bytes.
    let n = unsafe { libc::read(fd, &mut info as *mut _ as *mut libc::c_void, size) };
    (n == size as isize).then_some(SigInfo {
        signo: info.ssi_signo as i32,
        code: info.ssi_code,
        pid: info.ssi_pid,
    })
}

/// Sends `sig` to this process with its default action and lets it act: the disposition is reset
/// to SIG_DFL, the signal sent and unblocked. A fatal signal ends the process here; a stop signal
/// stops it until SIGCONT, after which the signal is blocked again and this returns; so does a
/// signal the kernel discards (PID 1 of a namespace ignores default-fatal signals).
pub fn deliver_to_self(sig: i32) {
    // SAFETY: SIG_DFL is always a valid disposition; sigaction only reads `sa`.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
    }
    let one = SigMask(0).with(sig);
    let _ = sigprocmask(libc::SIG_UNBLOCK, one);
    let _ = sigprocmask(libc::SIG_BLOCK, one);
}

/// This process's own CPU time so far (getrusage RUSAGE_SELF, user + system), in microseconds.
pub fn own_cpu_us() -> u64 {
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer for the duration of the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(r.ru_utime) + us(r.ru_stime)
}

/// poll(2) on several descriptors, up to `timeout` (None: forever); the number ready.
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> usize {
    let ms = timeout.map_or(-1, |t| {
        // Round up: a deadline 0.4 ms away must not become a busy poll(0).
        t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
    });
    // SAFETY: a valid array of pollfd of the length passed.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    n.max(0) as usize
}

/// The signals pending for this process (blocked ones that arrived).
pub fn pending_signals() -> Vec<i32> {
    // SAFETY: sigset_t is plain data; sigpending fills it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a sigset_t.
    if unsafe { libc::sigpending(&mut set) } != 0 {
        return Vec::new();
    }
    // SAFETY: `set` was initialised by sigpending.
    (1..32)
        .filter(|&s| unsafe { libc::sigismember(&set, s) } == 1)
        .collect()
}

/// waitid(2) P_PIDFD (Linux 5.4) with WNOHANG: reaps exactly the child the pidfd refers to if it
/// has exited; Ok(false) while it still runs, ECHILD (harmless) when it was reaped already.
pub fn reap_pidfd_nohang(pidfd: RawFd) -> io::Result<bool> {
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: siginfo_t is plain data; zeroed is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a siginfo_t for the duration of the call.
    let r = unsafe {
        libc::waitid(
            P_PIDFD,
            pidfd as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info`; si_pid is 0 when no child had changed state (WNOHANG).
    Ok(unsafe { info.si_pid() } != 0)
}

// ---- async-signal-safe calls for the child between fork and execve ---------------------------

pub mod child {
    use super::*;

    /// prctl(PR_SET_PDEATHSIG).
    pub fn set_parent_death_signal(sig: i32) {
        // SAFETY: integer-only prctl; async-signal-safe.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    }

    pub fn getppid() -> i32 {
        // SAFETY: no arguments; cannot fail.
        unsafe { libc::getppid() }
    }

    /// Default disposition for `sig` (Rust's runtime ignores SIGPIPE; the agent must not inherit that).
    pub fn default_signal(sig: i32) {
        // SAFETY: SIG_DFL is always a valid handler; signal(2) via sigaction is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }

    /// rt_sigprocmask(SIG_SETMASK, mask), raw: libc would drop its reserved signals.
    pub fn set_signal_mask(mask: SigMask) {
        // SAFETY: a valid 8-byte set; the old mask is not asked for.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &mask.0 as *const u64,
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }

    pub fn close(fd: RawFd) {
        // SAFETY: closing a descriptor this process owns; async-signal-safe.
        unsafe { libc::close(fd) };
    }

    /// Blocks until one byte arrives; false on EOF or error.
    pub fn read_byte(fd: RawFd) -> bool {
        let mut b = 0u8;
        loop {
            // SAFETY: one byte of valid stack memory.
            let n = unsafe { libc::read(fd, &mut b as *mut u8 as *mut libc::c_void, 1) };
            if n == 1 {
                return true;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return false;
        }
    }

    pub fn write_all(fd: RawFd, bytes: &[u8]) {
        let mut off = 0;
        while off < bytes.len() {
            // SAFETY: the slice is valid for reads of its length.
            let n = unsafe {
                libc::write(
                    fd,
                    bytes[off..].as_ptr() as *const libc::c_void,
                    bytes.len() - off,
                )
            };
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                return;
            }
            off += n as usize;
        }
    }

    /// execve(2); returns only on failure, with errno.
    pub fn execve(path: &CStr, argv: &CArgv, envp: &CArgv) -> i32 {
        // SAFETY: all three are NUL-terminated strings / NULL-terminated arrays built before fork.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        errno()
    }

    pub fn errno() -> i32 {
        // SAFETY: reading this thread's errno location.
        unsafe { *libc::__errno_location() }
    }

    /// unshare(2).
    pub fn unshare(flags: i32) -> Result<(), i32> {
        // SAFETY: integer-only syscall.
        if unsafe { libc::unshare(flags) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// mount(2) with strings prepared before fork (None: NULL).
    pub fn mount(
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
    ) -> Result<(), i32> {
        let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
        let r = unsafe {
            libc::mount(
                p(source),
                target.as_ptr(),
                p(fstype),
                flags,
                std::ptr::null(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    fn ok_or_errno(r: libc::c_int) -> Result<(), i32> {
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// setrlimit(2) with soft = hard = `value`.
    pub fn setrlimit(resource: u32, value: u64) -> Result<(), i32> {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: a valid rlimit struct on the stack.
        ok_or_errno(unsafe { libc::setrlimit(resource as _, &lim) })
    }

    /// prctl(PR_CAPBSET_DROP).
    pub fn capbset_drop(cap: u32) -> Result<(), i32> {
        // SAFETY: integer-only prctl.
        ok_or_errno(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })
    }

    /// prctl(PR_SET_KEEPCAPS, 1): the permitted set survives setuid away from 0.
    pub fn keep_caps() -> Result<(), i32> {
        // SAFETY: integer-only prctl.
        ok_or_errno(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) })
    }

    /// setgroups(0, NULL): no supplementary groups.
    pub fn setgroups_empty() -> Result<(), i32> {
        // SAFETY: an empty list.
        ok_or_errno(unsafe { libc::setgroups(0, std::ptr::null()) })
    }

    /// setgid(2) as a raw syscall: glibc's wrapper signals other threads (there are none), the
    /// raw call changes this process only.
    pub fn setgid(gid: u32) -> Result<(), i32> {
        // SAFETY: integer-only syscall.
        ok_or_errno(unsafe { libc::syscall(libc::SYS_setgid, gid) } as libc::c_int)
    }

    /// setuid(2) as a raw syscall (see setgid).
    pub fn setuid(uid: u32) -> Result<(), i32> {
        // SAFETY: integer-only syscall.
        ok_or_errno(unsafe { libc::syscall(libc::SYS_setuid, uid) } as libc::c_int)
    }

    /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
    pub fn clear_ambient() -> Result<(), i32> {
        // SAFETY: integer-only prctl.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
        // EINVAL: a kernel without ambient capabilities (before 4.3) has none to clear.
        if r != 0 && errno() == libc::EINVAL {
            return Ok(());
        }
        ok_or_errno(r)
    }

    /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap).
    pub fn raise_ambient(cap: u32) -> Result<(), i32> {
        // SAFETY: integer-only prctl.
        ok_or_errno(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                cap as libc::c_ulong,
                0,
                0,
            )
        })
    }

    /// capset(2): effective = permitted = inheritable = `keep`.
    pub fn capset(keep: u64) -> Result<(), i32> {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: libc::c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let half = |bits: u32| Data {
            effective: bits,
            permitted: bits,
            inheritable: bits,
        };
        let data = [half(keep as u32), half((keep >> 32) as u32)];
        // SAFETY: a version-3 header and the two data structs version 3 requires.
        ok_or_errno(
            unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } as libc::c_int,
        )
    }

    /// landlock_restrict_self(2) with a ruleset prepared before fork.
    pub fn landlock_restrict_self(ruleset: RawFd) -> Result<(), i32> {
        // SAFETY: integer-only syscall.
        ok_or_errno(
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) }
                as libc::c_int,
        )
    }

    /// prctl(PR_SET_NO_NEW_PRIVS, 1): execve can no longer grant privileges (setuid bits, file
    /// capabilities).
    pub fn no_new_privs() -> Result<(), i32> {
        // SAFETY: integer-only prctl.
        ok_or_errno(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }

    /// True when the working directory can be searched (access(".", X_OK)).
    pub fn cwd_searchable() -> Result<(), i32> {
        // SAFETY: a static NUL-terminated path.
        if unsafe { libc::access(c".".as_ptr(), libc::X_OK) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// chdir(2).
    pub fn chdir(path: &CStr) -> Result<(), i32> {
        // SAFETY: a NUL-terminated path prepared before fork.
        if unsafe { libc::chdir(path.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// sethostname(2).
    pub fn sethostname(name: &CStr) -> Result<(), i32> {
        let bytes = name.to_bytes();
        // SAFETY: the pointer and length describe a valid byte string.
        let r = unsafe { libc::sethostname(bytes.as_ptr() as *const libc::c_char, bytes.len()) };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// Brings the loopback interface up (SIOCGIFFLAGS, SIOCSIFFLAGS on a datagram socket).
    pub fn loopback_up() -> Result<(), i32> {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: ifreq is plain data; zeroed is valid; the name "lo" fits.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        // SAFETY: the ioctls read and write the ifreq we own.
        let r = unsafe {
            if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
                -1
            } else {
                req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req)
            }
        };
        let e = errno();
        close(fd);
        if r < 0 {
            Err(e)
        } else {
            Ok(())
        }
    }

    /// A stackless clone(SIGCHLD): fork without running atfork handlers. 0 in the child.
    pub fn fork_raw() -> Result<i32, i32> {
        // SAFETY: the caller (a child between fork and exec, single-threaded) only makes
        // async-signal-safe calls in the new child.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as i32)
        }
    }

    /// rt_sigtimedwait(2) without a timeout on `set`: the signal number and its si_code.
    pub fn sigwait(set: SigMask) -> Option<(i32, i32)> {
        // SAFETY: siginfo_t is plain data; the kernel fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid 8-byte set and siginfo_t; a NULL timeout waits until one arrives.
        let sig = unsafe {
            libc::syscall(
                libc::SYS_rt_sigtimedwait,
                &set.0 as *const u64,
                &mut info as *mut libc::siginfo_t,
                std::ptr::null::<libc::timespec>(),
                8usize,
            )
        };
        (sig > 0).then_some((sig as i32, info.si_code))
    }

    /// waitpid(-1, WNOHANG): (pid, raw status) of one exited child.
    pub fn wait_nohang() -> Option<(i32, i32)> {
        let mut status = 0;
        // SAFETY: a valid pointer to an int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        (pid > 0).then_some((pid, status))
    }

    pub fn kill(pid: i32, sig: i32) {
        // SAFETY: integer-only syscall.
        unsafe { libc::kill(pid, sig) };
    }

    pub fn getpgid(pid: i32) -> i32 {
        // SAFETY: integer-only syscall.
        unsafe { libc::getpgid(pid) }
    }

    /// Writes this process's PID, in decimal, after the slot's prefix.
    pub fn fill_pid(slot: &PidSlot) {
        // SAFETY: getpid cannot fail.
        let mut pid = unsafe { libc::getpid() } as u32;
        let mut digits = [0u8; 10];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (pid % 10) as u8;
            n += 1;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        for i in 0..n {
            // SAFETY: prefix + 10 digits + NUL fit the PID_SLOT bytes the slot owns; this process
            // is single-threaded and nothing else reads the buffer before execve.
            unsafe { *slot.buf.add(slot.prefix + i) = digits[n - 1 - i] };
        }
        // SAFETY: as above.
        unsafe { *slot.buf.add(slot.prefix + n) = 0 };
    }

    /// prctl(PR_SET_NAME): the name `ps` and /proc/PID/comm show.
    pub fn set_name(name: &CStr) {
        // SAFETY: a NUL-terminated string; the kernel copies at most 16 bytes of it.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
    }

    /// Blocks every signal that can be blocked (all but SIGKILL and SIGSTOP).
    pub fn block_all_signals() {
        // SAFETY: sigset_t is plain data; sigfillset initialises it; sigprocmask reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        }
    }

    /// close_range(first, last, 0) (Linux 5.9); Err(errno) where the kernel lacks it.
    pub fn close_range(first: u32, last: u32) -> Result<(), i32> {
        // SAFETY: integer-only syscall; closes descriptors this process owns.
        ok_or_errno(
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) } as libc::c_int,
        )
    }

    /// poll(2) on one descriptor for `events`, up to `ms` (-1: forever): the revents, or errno.
    pub fn poll(fd: RawFd, events: libc::c_short, ms: i32) -> Result<libc::c_short, i32> {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            Err(errno())
        } else {
            Ok(p.revents)
        }
    }

    /// openat(2) with `flags` | O_CLOEXEC.
    pub fn openat(dir: RawFd, name: &CStr, flags: i32) -> Result<RawFd, i32> {
        // SAFETY: a NUL-terminated name; the result is a descriptor this process owns.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            Err(errno())
        } else {
            Ok(fd)
        }
    }

    /// write(2) once: true when all of `bytes` went in one call (cgroup files take each write
    /// as one command).
    pub fn write_once(fd: RawFd, bytes: &[u8]) -> bool {
        // SAFETY: the slice is valid for reads of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr() as *const libc::c_void, bytes.len()) };
        n == bytes.len() as isize
    }

    /// read(2) into `buf`: the count, 0 at EOF, or -1.
    pub fn read(fd: RawFd, buf: &mut [u8]) -> isize {
        // SAFETY: the buffer is valid for writes of its length.
        unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) }
    }

    /// pread(2) from offset 0 into `buf`: the count, or -1.
    pub fn pread0(fd: RawFd, buf: &mut [u8]) -> isize {
        // SAFETY: the buffer is valid for writes of its length.
        unsafe { libc::pread(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) }
    }

    /// unlinkat(dir, name, AT_REMOVEDIR): rmdir relative to a directory descriptor.
    pub fn rmdirat(dir: RawFd, name: &CStr) -> Result<(), i32> {
        // SAFETY: a NUL-terminated name.
        ok_or_errno(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// CLOCK_MONOTONIC in milliseconds.
    pub fn monotonic_ms() -> u64 {
        // SAFETY: timespec is plain data; clock_gettime fills it and is async-signal-safe.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }

    /// nanosleep(2) for `ms` milliseconds (an interruption just ends it early).
    pub fn sleep_ms(ms: u64) {
        let ts = libc::timespec {
            tv_sec: (ms / 1000) as _,
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: a valid timespec; no remainder wanted.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }

    /// _exit(2): no atexit handlers, no flushing of buffers shared with the parent.
    pub fn exit(code: i32) -> ! {
        // SAFETY: always sound.
        unsafe { libc::_exit(code) }
    }
}

/// Asks the kernel whether clone3(2) takes CLONE_INTO_CGROUP, without starting a process: the call
/// names the read end of a fresh pipe as the cgroup, which no kernel accepts. Linux 5.7 and later
/// pass the flag checks and refuse the pipe at the cgroup lookup (EBADF); 5.3 to 5.6 refuse the
/// flag (EINVAL) or the larger struct (E2BIG); without clone3, or behind a seccomp filter, the
/// answer is ENOSYS or EPERM. Returns that errno; 0 if a process was started after all (it exits
/// at once and is reaped). As costly as a fork that stops before the child exists.
pub fn clone3_into_cgroup_errno() -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    let (not_a_cgroup, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: not_a_cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed. A pipe is never a cgroup, so no
    // process starts; were one started, it would run on a copy of our memory, as fork's child
    // does, and make no call but _exit.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        0 => child::exit(0),
        pid if pid > 0 => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
            Ok(0)
        }
        _ => Ok(io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

/// Reads a small kernel file (procfs, cgroupfs) whole: one open(2) and, for anything under a
/// page, two read(2)s into a page-sized buffer. `std::fs::read_to_string` stats the file
/// first and then reads these files (which report size 0) in 32-byte steps that double.
pub fn read_file(path: &std::path::Path) -> io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// This process's effective capability set (capget(2), version 3: all 64 bits).
pub fn effective_caps() -> io::Result<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a valid header and the two data structs version 3 fills; the kernel writes only
    // into `data`.
    check(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC) (Linux 5.11): marks every descriptor from
/// `first` up close-on-exec in one call. Err (EINVAL, ENOSYS) on older kernels.
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: integer arguments only; the call changes descriptor flags, never memory.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    })?;
    Ok(())
}

/// waitid(P_PIDFD, WEXITED) (Linux 5.4): reaps the child the pidfd refers to, waiting for it to
/// exit; EINTR is retried.
pub fn reap_pidfd(pidfd: RawFd) -> io::Result<()> {
    const P_PIDFD: libc::idtype_t = 3;
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a siginfo_t for the duration of the call.
        let r = unsafe { libc::waitid(P_PIDFD, pidfd as libc::id_t, &mut info, libc::WEXITED) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
