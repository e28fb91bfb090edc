//! The system calls the post-fork processes make, each async-signal-safe: one call (two for the
//! loopback), no allocation, no lock, errors as the raw errno. Where rustix has a safe wrapper the
//! call goes through it: its linux_raw backend issues the system call inline, without libc and
//! without touching errno. The rest are raw calls, each with its `// SAFETY:`: clone without a
//! stack, execve, landlock_restrict_self, seccomp, close_range, the signal calls rustix keeps
//! unsafe or lacks (sigaction, rt_sigprocmask, rt_sigtimedwait), the loopback ioctls, _exit.
//!
//! Paths are `&CStr`, built before fork: given a `&str` or `&Path`, rustix would copy it into a
//! buffer, on the heap when it is long. No rustix call here needs the auxiliary vector (the vDSO's
//! clock_gettime would: rustix may read /proc/self/auxv into a Vec the first time), hence libc's
//! clock_gettime in [`monotonic_ms`].
//!
//! Longer than 400 lines because every call the post-fork code makes is here, one small function
//! each, so that the lints and the SAFETY comments can be read in one place.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Access, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::process::{Pid, Resource, Rlimit, Signal, WaitOptions};
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::sys::{CArgv, PidSlot, SigMask};

fn ok<T>(r: rustix::io::Result<T>) -> Result<T, i32> {
    r.map_err(Errno::raw_os_error)
}

fn ok_or_errno(r: libc::c_int) -> Result<(), i32> {
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// The errno of the libc call just made (rustix's calls return theirs).
pub fn errno() -> i32 {
    // SAFETY: reading this thread's errno location.
    unsafe { *libc::__errno_location() }
}

/// One capability as a set: rustix takes a set with one bit. EINVAL past bit 63, as the kernel
/// answers for a capability it does not know.
fn capability(cap: u32) -> Result<CapabilitySet, i32> {
    1u64.checked_shl(cap)
        .map(CapabilitySet::from_bits_retain)
        .ok_or(libc::EINVAL)
}

// ---- process, signals ---------------------------------------------------------------------------

/// prctl(PR_SET_PDEATHSIG): `sig` when the parent thread dies.
pub fn set_parent_death_signal(sig: Signal) {
    let _ = rustix::process::set_parent_process_death_signal(Some(sig));
}

/// getppid(2); 0 when the parent is outside our pid namespace.
pub fn getppid() -> i32 {
    Pid::as_raw(rustix::process::getppid())
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

/// Blocks every signal that can be blocked (all but SIGKILL and SIGSTOP).
pub fn block_all_signals() {
    // SAFETY: sigset_t is plain data; sigfillset initialises it; sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
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

/// kill(2); failures (the process is gone, a signal number out of range) are ignored.
pub fn kill(pid: i32, sig: i32) {
    if let (Some(pid), Some(sig)) = (Pid::from_raw(pid), crate::sys::signal(sig)) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// getpgid(2) of `pid` (None: this process); -1 on failure.
pub fn getpgid(pid: Option<i32>) -> i32 {
    let pid = match pid {
        Some(raw) => match Pid::from_raw(raw) {
            Some(p) => Some(p),
            None => return -1,
        },
        None => None,
    };
    rustix::process::getpgid(pid).map_or(-1, Pid::as_raw_pid)
}

/// waitpid(-1, WNOHANG): (pid, raw status) of one exited child.
pub fn wait_nohang() -> Option<(i32, i32)> {
    match rustix::process::waitpid(None, WaitOptions::NOHANG) {
        Ok(Some((pid, status))) => Some((pid.as_raw_nonzero().get(), status.as_raw())),
        _ => None,
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

/// Writes this process's PID, in decimal, after the slot's prefix, NUL-terminated.
pub fn fill_pid(slot: &PidSlot) {
    let mut pid = rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs();
    // Up to 10 digits, filled from the right, and the NUL.
    let mut text = [0u8; 11];
    let mut start = 10;
    loop {
        start -= 1;
        if let Some(d) = text.get_mut(start) {
            *d = b'0' + (pid % 10) as u8;
        }
        pid /= 10;
        if pid == 0 || start == 0 {
            break;
        }
    }
    let digits = text.get(start..).unwrap_or_default();
    // SAFETY: the slot owns PID_SLOT bytes and its constructor checked that the prefix, 10
    // digits and the NUL fit; this process is single-threaded and nothing reads the buffer before
    // execve. `digits` is a local array, so the copies do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(digits.as_ptr(), slot.buf.add(slot.prefix), digits.len())
    };
}

/// execve(2); returns only on failure, with errno.
pub fn execve(path: &CStr, argv: &CArgv, envp: &CArgv) -> i32 {
    // SAFETY: all three are NUL-terminated strings / NULL-terminated arrays built before fork.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// _exit(2): no atexit handlers, no flushing of buffers shared with the parent.
pub fn exit(code: i32) -> ! {
    // SAFETY: always sound.
    unsafe { libc::_exit(code) }
}

// ---- descriptors --------------------------------------------------------------------------------

/// close(2) of this process's copy of a descriptor it was handed at fork.
pub fn close(fd: BorrowedFd<'_>) {
    // SAFETY: after fork the descriptor table is this process's own, so closing an entry cannot
    // touch the parent's. The OwnedFd that `fd` borrows from lives in a frame of the function that
    // forked, which post-fork code never returns to (its entry points are `-> !`), so nothing
    // closes the number again; callers do not use `fd` after this.
    unsafe { rustix::io::close(fd.as_raw_fd()) };
}

/// close(2) of standard descriptor `fd` (0, 1 or 2).
pub fn close_stdio(fd: RawFd) {
    if (0..3).contains(&fd) {
        // SAFETY: no OwnedFd holds the standard descriptors (std's handles use the numbers
        // without owning them), and the one caller, the guardian, writes nothing to them.
        unsafe { rustix::io::close(fd) };
    }
}

/// close_range(first, last, 0) (Linux 5.9); Err(errno) where the kernel lacks it.
pub fn close_range(first: u32, last: u32) -> Result<(), i32> {
    // SAFETY: integer-only syscall; it closes this process's descriptors, and the one caller (the
    // guardian) keeps open every descriptor it uses afterwards.
    ok_or_errno(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) } as libc::c_int)
}

/// Blocks until one byte arrives; false on EOF or error.
pub fn read_byte(fd: BorrowedFd<'_>) -> bool {
    let mut b = [0u8; 1];
    loop {
        match rustix::io::read(fd, &mut b) {
            Ok(1) => return true,
            Err(Errno::INTR) => {}
            _ => return false,
        }
    }
}

/// write(2) until all of `bytes` went out, retrying on EINTR; gives up silently on an error.
pub fn write_all(fd: BorrowedFd<'_>, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match rustix::io::write(fd, rest) {
            Ok(0) => return,
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// write(2) once: true when all of `bytes` went in one call (cgroup files take each write
/// as one command).
pub fn write_once(fd: BorrowedFd<'_>, bytes: &[u8]) -> bool {
    rustix::io::write(fd, bytes) == Ok(bytes.len())
}

/// read(2) into `buf`: the count, 0 at EOF.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, i32> {
    ok(rustix::io::read(fd, buf))
}

/// pread(2) from offset 0 into `buf`: the count.
pub fn pread0(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, i32> {
    ok(rustix::io::pread(fd, buf, 0))
}

/// poll(2) on one descriptor for `events`, up to `ms` (-1: forever): the revents, or errno.
pub fn poll(fd: BorrowedFd<'_>, events: PollFlags, ms: i32) -> Result<PollFlags, i32> {
    let timeout = Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    };
    let mut fds = [PollFd::from_borrowed_fd(fd, events)];
    ok(rustix::event::poll(&mut fds, (ms >= 0).then_some(&timeout)))?;
    Ok(fds.first().map_or(PollFlags::empty(), PollFd::revents))
}

/// openat(2) with `flags` | O_CLOEXEC.
pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: OFlags) -> Result<OwnedFd, i32> {
    ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    ))
}

/// unlinkat(dir, name, AT_REMOVEDIR): rmdir relative to a directory descriptor.
pub fn rmdirat(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), i32> {
    ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR))
}

// ---- time ---------------------------------------------------------------------------------------

/// CLOCK_MONOTONIC in milliseconds.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// nanosleep(2) for `ms` milliseconds (an interruption just ends it early).
pub fn sleep_ms(ms: u64) {
    let ts = Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    let _ = rustix::thread::nanosleep(&ts);
}

// ---- namespaces ---------------------------------------------------------------------------------

/// unshare(CLONE_NEWCGROUP).
pub fn unshare_cgroup() -> Result<(), i32> {
    // SAFETY: rustix marks unshare unsafe for the flags that unshare what the process relies on
    // (CLONE_FILES, CLONE_FS, CLONE_VM, ...); a new cgroup namespace changes only how /proc shows
    // cgroup paths.
    ok(unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) })
}

/// mount(NULL, target, NULL, MS_REC | MS_PRIVATE, NULL): nothing mounted below `target` propagates.
pub fn make_private(target: &CStr) -> Result<(), i32> {
    ok(rustix::mount::mount_change(
        target,
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    ))
}

/// mount(2) of a file system `fstype` from `source` on `target`, without data.
pub fn mount(source: &CStr, target: &CStr, fstype: &CStr, flags: MountFlags) -> Result<(), i32> {
    ok(rustix::mount::mount(source, target, fstype, flags, None))
}

/// The per-mount flags of the mount at `path` (statvfs(2)), as the mount(2) flags that keep them
/// in a remount: nosuid, nodev, noexec, nosymfollow, the atime mode (strictatime where neither noatime nor
/// relatime is set, or the kernel would default to relatime, which a user namespace refuses for a
/// locked mount), and read-only.
pub fn mount_flags(path: &CStr) -> Result<MountFlags, i32> {
    use rustix::fs::StatVfsMountFlags as St;
    let st = ok(rustix::fs::statvfs(path))?.f_flag;
    let mut flags = MountFlags::empty();
    for (have, keep) in [
        (St::NOSUID, MountFlags::NOSUID),
        (St::NODEV, MountFlags::NODEV),
        (St::NOEXEC, MountFlags::NOEXEC),
        (St::NOATIME, MountFlags::NOATIME),
        (St::NODIRATIME, MountFlags::NODIRATIME),
        (St::RELATIME, MountFlags::RELATIME),
        (St::RDONLY, MountFlags::RDONLY),
        // ST_NOSYMFOLLOW (5.10), which rustix does not name.
        (St::from_bits_retain(0x2000), MountFlags::NOSYMFOLLOW),
    ] {
        if st.contains(have) {
            flags |= keep;
        }
    }
    if !st.intersects(St::NOATIME | St::RELATIME) {
        flags |= MountFlags::STRICTATIME;
    }
    Ok(flags)
}

/// mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL): sets the flags of the mount at
/// `target` alone, not of its file system.
pub fn remount_bind(target: &CStr, flags: MountFlags) -> Result<(), i32> {
    ok(rustix::mount::mount_remount(
        target,
        flags | MountFlags::BIND,
        c"",
    ))
}

/// mount(path, path, NULL, MS_BIND | MS_REC, NULL): `path` becomes a mount of its own, with the
/// mounts below it.
pub fn bind_onto_itself(path: &CStr) -> Result<(), i32> {
    ok(rustix::mount::mount_bind_recursive(path, path))
}

/// mount(2) of a file system `fstype` from `source` on `target`, with the options `data`.
pub fn mount_data(
    source: &CStr,
    target: &CStr,
    fstype: &CStr,
    flags: MountFlags,
    data: &CStr,
) -> Result<(), i32> {
    ok(rustix::mount::mount(
        source,
        target,
        fstype,
        flags,
        Some(data),
    ))
}

/// mount(source, target, NULL, MS_BIND, NULL).
pub fn bind(source: &CStr, target: &CStr) -> Result<(), i32> {
    ok(rustix::mount::mount_bind(source, target))
}

/// umount2(target, MNT_DETACH).
pub fn unmount_detach(target: &CStr) -> Result<(), i32> {
    ok(rustix::mount::unmount(
        target,
        rustix::mount::UnmountFlags::DETACH,
    ))
}

/// Creates the empty file `path` (O_CREAT | O_EXCL, mode 0444) and closes it.
pub fn create_empty_file(path: &CStr) -> Result<(), i32> {
    let fd = ok(rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    ))?;
    drop(fd);
    Ok(())
}

/// sethostname(2).
pub fn sethostname(name: &CStr) -> Result<(), i32> {
    ok(rustix::system::sethostname(name.to_bytes()))
}

/// Brings the loopback interface up (SIOCGIFFLAGS, SIOCSIFFLAGS on a datagram socket).
pub fn loopback_up() -> Result<(), i32> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let sock = ok(rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    ))?;
    // SAFETY: ifreq is plain data; zeroed is valid; the name "lo" fits.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name[0] = b'l' as libc::c_char;
    req.ifr_name[1] = b'o' as libc::c_char;
    let fd = sock.as_raw_fd();
    // SAFETY: the ioctls read and write the ifreq we own, on a socket we own.
    let r = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            -1
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req)
        }
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// A TCP socket listening on 127.0.0.1:`port` of the current network namespace (the proxy's
/// listeners, created in the agent's namespace). Close-on-exec: the agent never holds it.
pub fn listen_loopback(port: u16) -> Result<OwnedFd, i32> {
    use rustix::net::{AddressFamily, SocketAddrV4, SocketFlags, SocketType};
    let sock = ok(rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    ))?;
    ok(rustix::net::sockopt::set_socket_reuseaddr(&sock, true))?;
    let addr = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    ok(rustix::net::bind(&sock, &addr))?;
    // Room for an agent that opens many connections at once (the kernel caps it at somaxconn).
    ok(rustix::net::listen(&sock, 1024))?;
    Ok(sock)
}

/// Sends `fds` (one or two) over the unix socket `sock` in one SCM_RIGHTS message with `data`.
pub fn send_fds(sock: BorrowedFd<'_>, fds: &[BorrowedFd<'_>], data: &[u8]) -> Result<(), i32> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(libc::EINVAL);
    }
    let data = [std::io::IoSlice::new(data)];
    ok(rustix::net::sendmsg(
        sock,
        &data,
        &mut cmsg,
        SendFlags::NOSIGNAL,
    ))
    .map(|_| ())
}

/// True when the working directory can be searched (access(".", X_OK)).
pub fn cwd_searchable() -> Result<(), i32> {
    ok(rustix::fs::access(c".", Access::EXEC_OK))
}

/// chdir(2).
pub fn chdir(path: &CStr) -> Result<(), i32> {
    ok(rustix::process::chdir(path))
}

// ---- least privilege ----------------------------------------------------------------------------

/// setrlimit(2) with soft = hard = `value`.
pub fn setrlimit(resource: Resource, value: u64) -> Result<(), i32> {
    let lim = Rlimit {
        current: Some(value),
        maximum: Some(value),
    };
    ok(rustix::process::setrlimit(resource, lim))
}

/// prctl(PR_CAPBSET_DROP).
pub fn capbset_drop(cap: u32) -> Result<(), i32> {
    ok(rustix::thread::remove_capability_from_bounding_set(
        capability(cap)?,
    ))
}

/// prctl(PR_SET_KEEPCAPS, 1): the permitted set survives setuid away from 0.
pub fn keep_caps() -> Result<(), i32> {
    ok(rustix::thread::set_keep_capabilities(true))
}

/// setgroups(0, NULL): no supplementary groups. The raw system call (rustix's linux_raw backend
/// issues it inline), which changes the calling thread only: libc's setgroups (glibc, and musl
/// through `__synccall`) stops every other thread with a signal to change them all, machinery
/// that is not async-signal-safe and has nothing to do in the single-threaded child after fork.
pub fn setgroups_empty() -> Result<(), i32> {
    ok(rustix::thread::set_thread_groups(&[]))
}

/// setgid(2) as a raw syscall: libc's wrapper signals other threads (there are none), the raw
/// call changes this thread, the whole child, only (see setgroups_empty).
pub fn setgid(gid: u32) -> Result<(), i32> {
    ok(rustix::thread::set_thread_gid(
        rustix::process::Gid::from_raw_unchecked(gid),
    ))
}

/// setuid(2) as a raw syscall (see setgid).
pub fn setuid(uid: u32) -> Result<(), i32> {
    ok(rustix::thread::set_thread_uid(
        rustix::process::Uid::from_raw_unchecked(uid),
    ))
}

/// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
pub fn clear_ambient() -> Result<(), i32> {
    match rustix::thread::clear_ambient_capability_set() {
        // EINVAL: a kernel without ambient capabilities (before 4.3) has none to clear.
        Ok(()) | Err(Errno::INVAL) => Ok(()),
        Err(e) => Err(e.raw_os_error()),
    }
}

/// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap).
pub fn raise_ambient(cap: u32) -> Result<(), i32> {
    ok(rustix::thread::configure_capability_in_ambient_set(
        capability(cap)?,
        true,
    ))
}

/// capset(2): effective = permitted = inheritable = `keep`.
pub fn capset(keep: u64) -> Result<(), i32> {
    let set = CapabilitySet::from_bits_retain(keep);
    ok(rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: set,
            permitted: set,
            inheritable: set,
        },
    ))
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1): execve can no longer grant privileges (setuid bits, file
/// capabilities).
pub fn no_new_privs() -> Result<(), i32> {
    ok(rustix::thread::set_no_new_privs(true))
}

/// landlock_restrict_self(2) with a ruleset prepared before fork.
pub fn landlock_restrict_self(ruleset: RawFd) -> Result<(), i32> {
    // SAFETY: integer-only syscall.
    ok_or_errno(
        unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) } as libc::c_int,
    )
}

/// landlock_add_rule(2), LANDLOCK_RULE_PATH_BENEATH: `access` beneath `path`, opened O_PATH here.
pub fn landlock_add_path_rule(ruleset: RawFd, path: &CStr, access: u64) -> Result<(), i32> {
    /// struct landlock_path_beneath_attr, packed as the kernel declares it.
    #[repr(C, packed)]
    struct PathBeneath {
        allowed_access: u64,
        parent_fd: i32,
    }
    let dir = ok(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ))?;
    let attr = PathBeneath {
        allowed_access: access,
        parent_fd: dir.as_raw_fd(),
    };
    // SAFETY: a valid attribute of the declared layout, read by the kernel during the call;
    // `dir` outlives it.
    ok_or_errno(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            1u32,
            &attr as *const PathBeneath,
            0u32,
        )
    } as libc::c_int)
}

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog) with a filter built before fork. Needs no_new_privs
/// (set before) or CAP_SYS_ADMIN.
pub fn seccomp_set_filter(filter: &[libc::sock_filter]) -> Result<(), i32> {
    let Ok(len) = u16::try_from(filter.len()) else {
        return Err(libc::EINVAL);
    };
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` instructions of `filter`, alive for the call; the kernel
    // copies them and neither keeps nor writes through the pointer.
    ok_or_errno(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    } as libc::c_int)
}

#[cfg(test)]
#[allow(clippy::disallowed_macros)]
mod tests {
    #[test]
    fn every_signal_that_is_forwarded_reaches_rustix_unchanged() {
        for sig in (1..=64).filter(|&s| crate::signals::forwarded(s)) {
            assert_eq!(crate::sys::signal(sig).map(|s| s.as_raw()), Some(sig));
        }
        assert!(crate::sys::signal(0).is_none() && crate::sys::signal(65).is_none());
    }
}
