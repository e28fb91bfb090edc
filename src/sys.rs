//! The thin unsafe layer: every system call synwire-run makes that nix does not wrap safely,
//! through rustix where it has a safe wrapper. Each function is one call (man page named), each
//! unsafe block says why it is sound. What runs after fork is in the `postfork` module, which
//! builds on this one. Longer than 400 lines because it is the one place, with postfork's raw
//! layer, where the crate allows `unsafe`: its calls stay together so they can be audited at once.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
    pub(crate) buf: *mut u8,
    pub(crate) prefix: usize,
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
    // PID 0 or below: EINVAL, as the kernel would answer.
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// `sig` as rustix's Signal; None outside 1 to 64.
pub const fn signal(sig: i32) -> Option<rustix::process::Signal> {
    if sig < 1 || sig > SIG_MAX {
        return None;
    }
    // SAFETY: 1 to 64 are Linux's signal numbers. rustix reserves those its C library uses (32 and
    // 33, 34 too with musl) because raising, blocking or handling them would disturb that library
    // in this process; synwire-run only sends signals to another process (the agent, through kill
    // or pidfd_send_signal), whose C library is its own.
    Some(unsafe { rustix::process::Signal::from_raw_unchecked(sig) })
}

/// pidfd_send_signal(2) (Linux 5.1): signals exactly the process the pidfd refers to, never a
/// reused PID.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    let sig = signal(sig).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
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
    // rustix passes the PID as the flag, which only has to be non-zero: 1 as before.
    Ok(rustix::process::set_child_subreaper(Some(
        rustix::process::Pid::INIT,
    ))?)
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
    let mut buf = [0u8; 16];
    // rustix makes the system call itself: libc's wrapper, in a static musl build, resolves
    // `getrandom` weakly, to null.
    let n = rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::INSECURE);
    if n == Ok(buf.len()) {
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

/// open(path, O_PATH | O_CLOEXEC): a handle to a path without reading it.
pub fn open_path(path: &CStr) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// getxattr(2): the value of extended attribute `name` on `path`, if it has one.
pub fn getxattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    let len = rustix::fs::getxattr(path, name, &mut buf).ok()?;
    buf.get(..len).map(<[u8]>::to_vec)
}

/// setxattr(2): sets extended attribute `name` on `path` to `value`.
pub fn setxattr(path: &std::path::Path, name: &str, value: &[u8]) -> io::Result<()> {
    use rustix::fs::XattrFlags;
    Ok(rustix::fs::setxattr(
        path,
        name,
        value,
        XattrFlags::empty(),
    )?)
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
        // SAFETY: _exit(2) ends this (child) process at once, running nothing of ours.
        0 => unsafe { libc::_exit(0) },
        pid if pid > 0 => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
            Ok(0)
        }
        _ => Ok(io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

/// Whether this process may create the namespaces of `flags` (CLONE_NEW* bits): a child is
/// cloned into them and exits at once. Call it from a single-threaded process (a user namespace
/// refuses a multithreaded one).
pub fn probe_namespaces(flags: u64) -> io::Result<()> {
    // SAFETY: clone(2) without CLONE_VM and without a stack is fork with namespace flags: the child
    // runs on a copy of our memory and makes no call but _exit.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD as u64) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        // SAFETY: _exit(2) ends this (child) process at once, running nothing of ours.
        0 => unsafe { libc::_exit(0) },
        pid if pid > 0 => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
            Ok(())
        }
        _ => Err(io::Error::last_os_error()),
    }
}

/// Receives one message of up to two descriptors (SCM_RIGHTS) on `sock`, its data into `data`,
/// without waiting (WouldBlock when none is queued); the descriptors arrive close-on-exec.
/// Returns them and the length of the data.
pub fn recv_fds(sock: BorrowedFd<'_>, data: &mut [u8]) -> io::Result<(Vec<OwnedFd>, usize)> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(data)];
    let got = rustix::net::recvmsg(
        sock,
        &mut iov,
        &mut cmsg,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    Ok((fds, got.bytes))
}

/// Reads a small kernel file (procfs, cgroupfs) whole: one open(2) and, for anything under a
/// page, two read(2)s into a page-sized buffer. `std::fs::read_to_string` stats the file
/// first and then reads these files (which report size 0) in 32-byte steps that double.
pub fn read_file(path: impl AsRef<std::path::Path>) -> io::Result<String> {
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
    Ok(rustix::thread::capabilities(None)?.effective.bits())
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
pub fn reap_pidfd(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::process::{WaitId, WaitIdOptions};
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn effective_caps_match_capeff_in_proc_self_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(super::effective_caps().unwrap(), cap_eff);
    }
}
