//! The filter as classic BPF over `struct seccomp_data` (seccomp(2)): the architecture check, then
//! a binary search on the system call number down to leaves of a few calls, one short block per
//! call. A call is decided in at most 20 instructions whatever the length of the list (a linear
//! list: about 90). That is what the kernel runs on each system call before 5.11; from 5.11 it
//! runs it once per number when the filter is installed, to cache the verdicts that depend on the
//! number alone, and the search halves that: seccomp(2) took 36 µs instead of 75 µs for the
//! built-in list (6.18, x86-64 VM). Conditional jumps go forward by at most four instructions and
//! the search's long jumps are `ja` (32-bit offsets), so a list of any length assembles.
//!
//! ```text
//!     ld  [arch]            ; another ABI: the list's numbers mean nothing there
//!     jeq AUDIT_ARCH, +1
//!     ret KILL_PROCESS
//!     ld  [nr]
//!     jeq -1, 0, +1         ; x86-64 only: -1 is a call a tracer skipped; it runs nothing
//!     ret ALLOW
//!     jge 0x40000000, 0, +1 ; x86-64 only: the x32 ABI, same audit arch, numbers with bit 30
//!     ret KILL_PROCESS
//!     jge NR_MID, 0, +1     ; the search: nr >= NR_MID goes on at the `ja`, the rest below it
//!     ja  RIGHT
//!     ...                   ; the lower half, the same way, down to a leaf:
//!     jeq NR, 0, +1         ; Rule::Always
//!     ret DENY
//!     jeq NR, 0, +4         ; Rule::NewUser: the low word of args[0] (little-endian)
//!     ld  [args[0]]
//!     jset CLONE_NEWUSER, 0, +1
//!     ret DENY
//!     ret ALLOW
//!     jeq NR, 0, +1         ; Rule::Enosys
//!     ret ERRNO(ENOSYS)
//!     ret ALLOW             ; the end of each leaf
//! RIGHT:
//!     ...                   ; the upper half
//! ```

use libc::sock_filter;

use super::Rule;

/// The architectures the filter is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

// Offsets in struct seccomp_data.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The low 32 bits of args[0], on these little-endian architectures.
const ARG0_LOW: u32 = 16;

/// On x86-64, the x32 ABI's system calls: AUDIT_ARCH_X86_64 with this bit in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const CLONE_NEWUSER: u32 = 0x1000_0000;

const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;

/// The most calls a leaf of the search tests one after the other.
const LEAF: usize = 4;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const EACCES: u32 = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
const AF_UNIX: u32 = libc::AF_UNIX as u32;
const AF_NETLINK: u32 = libc::AF_NETLINK as u32;

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture this synwire-run is built for, if the filter supports it.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// AUDIT_ARCH_* (linux/audit.h): the machine with the 64-bit and little-endian bits.
    pub fn audit(self) -> u32 {
        const AUDIT_ARCH_64BIT: u32 = 0x8000_0000;
        const AUDIT_ARCH_LE: u32 = 0x4000_0000;
        let machine = match self {
            Arch::X86_64 => 62,   // EM_X86_64
            Arch::Aarch64 => 183, // EM_AARCH64
        };
        machine | AUDIT_ARCH_64BIT | AUDIT_ARCH_LE
    }
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The program for `rules` (sorted by number, each once) on `arch`; `deny` is what a denied call
/// returns.
pub(super) fn assemble(arch: Arch, rules: &[(u32, Rule)], deny: u32) -> Vec<sock_filter> {
    let mut p = vec![
        stmt(LD, ARCH),
        jump(JEQ, arch.audit(), 1, 0),
        stmt(RET, KILL),
        stmt(LD, NR),
    ];
    if arch == Arch::X86_64 {
        p.extend([
            jump(JEQ, u32::MAX, 0, 1),
            stmt(RET, ALLOW),
            jump(JGE, X32_SYSCALL_BIT, 0, 1),
            stmt(RET, KILL),
        ]);
    }
    search(&mut p, rules, deny);
    p
}

/// The binary search over `rules` (sorted by number), then the leaf's blocks.
fn search(p: &mut Vec<sock_filter>, rules: &[(u32, Rule)], deny: u32) {
    if rules.len() <= LEAF {
        for &(nr, rule) in rules {
            block(p, nr, rule, deny);
        }
        p.push(stmt(RET, ALLOW));
        return;
    }
    let (lower, upper) = rules.split_at(rules.len() / 2);
    let mut below = Vec::new();
    search(&mut below, lower, deny);
    p.push(jump(JGE, upper[0].0, 0, 1));
    p.push(stmt(JA, below.len() as u32));
    p.extend(below);
    search(p, upper, deny);
}

/// One call's block: its verdict if the number is `nr`, else on to the next instruction.
fn block(p: &mut Vec<sock_filter>, nr: u32, rule: Rule, deny: u32) {
    match rule {
        Rule::Always => p.extend([jump(JEQ, nr, 0, 1), stmt(RET, deny)]),
        Rule::Enosys => p.extend([jump(JEQ, nr, 0, 1), stmt(RET, ENOSYS)]),
        Rule::NewUser => p.extend([
            jump(JEQ, nr, 0, 4),
            stmt(LD, ARG0_LOW),
            jump(JSET, CLONE_NEWUSER, 0, 1),
            stmt(RET, deny),
            stmt(RET, ALLOW),
        ]),
        Rule::Eacces => p.extend([jump(JEQ, nr, 0, 1), stmt(RET, EACCES)]),
        // The domain is an int: the kernel reads the low 32 bits, and so does the filter.
        Rule::LocalSocketsOnly => p.extend([
            jump(JEQ, nr, 0, 5),
            stmt(LD, ARG0_LOW),
            jump(JEQ, AF_UNIX, 2, 0),
            jump(JEQ, AF_NETLINK, 1, 0),
            stmt(RET, EACCES),
            stmt(RET, ALLOW),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{rules, Seccomp, DEFAULT};
    use super::*;
    use crate::profile::seccomp::Action;

    /// Runs `p` the way the kernel does on one call: (arch, nr, args[0]) in, the verdict out.
    fn run(p: &[sock_filter], arch: u32, nr: u32, arg0: u64) -> u32 {
        steps(p, arch, nr, arg0).0
    }

    /// As [`run`], with the number of instructions it took.
    fn steps(p: &[sock_filter], arch: u32, nr: u32, arg0: u64) -> (u32, usize) {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let (mut pc, mut acc, mut n) = (0usize, 0u32, 0);
        loop {
            let i = p[pc];
            n += 1;
            let k = i.k;
            let taken = |t: bool| if t { i.jt as usize } else { i.jf as usize };
            pc += 1;
            match i.code {
                LD => {
                    let o = k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                JEQ => pc += taken(acc == k),
                JGE => pc += taken(acc >= k),
                JSET => pc += taken(acc & k != 0),
                JA => pc += k as usize,
                RET => return (k, n),
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn default_list(arch: Arch, deny: u32) -> Vec<sock_filter> {
        let s = Seccomp {
            default: true,
            ..Seccomp::default()
        };
        assemble(arch, &rules(&s, arch), deny)
    }

    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn the_program_starts_with_the_architecture_check_and_kills_any_other() {
        for arch in Arch::ALL {
            let p = default_list(arch, EPERM);
            assert_eq!((p[0].code, p[0].k), (LD, ARCH));
            assert_eq!(
                (p[1].code, p[1].k, p[1].jt, p[1].jf),
                (JEQ, arch.audit(), 1, 0)
            );
            assert_eq!((p[2].code, p[2].k), (RET, KILL));
            // i386 on x86-64, arm32 on aarch64, and the other one: killed at their first call.
            let others = Arch::ALL
                .into_iter()
                .filter(|o| *o != arch)
                .map(Arch::audit);
            for other in [0x4000_0003, 0x4000_0028].into_iter().chain(others) {
                assert_eq!(run(&p, other, 39, 0), KILL, "{arch:?} {other:#x}");
            }
        }
        assert_eq!(Arch::X86_64.audit(), 0xc000_003e);
        assert_eq!(Arch::Aarch64.audit(), 0xc000_00b7);
    }

    #[test]
    fn the_built_in_list_denies_each_call_and_allows_the_others() {
        for arch in Arch::ALL {
            let a = arch.audit();
            for action in [Action::Errno, Action::Kill, Action::Log] {
                let deny = super::super::deny_return(action);
                let p = default_list(arch, deny);
                for (name, rule) in DEFAULT {
                    let nr = arch.number(name).unwrap();
                    let want = match rule {
                        Rule::Always => deny,
                        Rule::NewUser => ALLOW,
                        Rule::Enosys => ENOSYS,
                        Rule::Eacces | Rule::LocalSocketsOnly => unreachable!("not in the list"),
                    };
                    assert_eq!(run(&p, a, nr, 0), want, "{arch:?} {name}");
                }
                for name in [
                    "read", "write", "openat", "execve", "getpid", "socket", "wait4",
                ] {
                    let nr = arch.number(name).unwrap();
                    assert_eq!(run(&p, a, nr, 0), ALLOW, "{arch:?} {name}");
                }
            }
        }
    }

    #[test]
    fn the_network_cut_leaves_only_local_sockets_whatever_the_action() {
        for arch in Arch::ALL {
            let a = arch.audit();
            for (default, action) in [(false, Action::Errno), (true, Action::Log)] {
                let s = Seccomp {
                    default,
                    action,
                    ..Seccomp::default()
                };
                let deny = super::super::deny_return(action);
                let p = assemble(arch, &super::super::rules_with(&s, true, arch), deny);
                let socket = arch.number("socket").unwrap();
                for family in [libc::AF_UNIX, libc::AF_NETLINK] {
                    assert_eq!(run(&p, a, socket, family as u64), ALLOW, "{arch:?}");
                }
                for family in [
                    libc::AF_INET,
                    libc::AF_INET6,
                    libc::AF_PACKET,
                    libc::AF_VSOCK,
                ] {
                    assert_eq!(run(&p, a, socket, family as u64), EACCES, "{arch:?}");
                }
                // The kernel reads an int: high bits do not make AF_INET local.
                assert_eq!(run(&p, a, socket, 2 | 1 << 40), EACCES);
                assert_eq!(run(&p, a, socket, 1 | 1 << 40), ALLOW);
                let uring = arch.number("io_uring_setup").unwrap();
                assert_eq!(run(&p, a, uring, 0), EACCES, "{arch:?} over the action");
                let read = arch.number("read").unwrap();
                assert_eq!(run(&p, a, read, 0), ALLOW);
            }
        }
    }

    #[test]
    fn clone_and_unshare_are_denied_only_with_clone_newuser() {
        for arch in Arch::ALL {
            let p = default_list(arch, EPERM);
            let a = arch.audit();
            for name in ["clone", "unshare"] {
                let nr = arch.number(name).unwrap();
                let thread = 0x003d_0f00; // CLONE_VM | CLONE_FS | ... | CLONE_THREAD | ...
                assert_eq!(run(&p, a, nr, thread), ALLOW, "{arch:?} {name}");
                assert_eq!(run(&p, a, nr, libc::SIGCHLD as u64), ALLOW);
                assert_eq!(run(&p, a, nr, 0x2000_0000), ALLOW, "CLONE_NEWNS and others");
                let newuser = u64::from(CLONE_NEWUSER) | libc::SIGCHLD as u64;
                assert_eq!(run(&p, a, nr, newuser), EPERM, "{arch:?} {name}");
                // The high word of the argument does not hide the flag.
                assert_eq!(run(&p, a, nr, newuser | 1 << 40), EPERM);
            }
        }
    }

    #[test]
    fn x32_calls_are_killed_on_x86_64_and_a_skipped_call_runs() {
        let p = default_list(Arch::X86_64, EPERM);
        let a = Arch::X86_64.audit();
        let x32_ptrace = X32_SYSCALL_BIT | 521;
        assert_eq!(run(&p, a, x32_ptrace, 0), KILL);
        assert_eq!(run(&p, a, X32_SYSCALL_BIT | 39, 0), KILL);
        assert_eq!(run(&p, a, u32::MAX, 0), ALLOW);
        // aarch64 has no such ABI: no such block.
        let p = default_list(Arch::Aarch64, EPERM);
        assert_ne!(p[4].code, JEQ, "{:?}", p[4]);
    }

    #[test]
    fn every_number_is_decided_in_a_few_instructions() {
        for arch in Arch::ALL {
            let p = default_list(arch, EPERM);
            let longest = (0..600)
                .map(|nr| steps(&p, arch.audit(), nr, u64::MAX).1)
                .max()
                .unwrap();
            assert!(longest <= 20, "{arch:?}: {longest} of {}", p.len());
        }
    }

    #[test]
    fn every_call_denied_still_fits_in_a_filter() {
        // BPF_MAXINSNS is 4096.
        for arch in Arch::ALL {
            let all: Vec<(u32, Rule)> = (0..600).map(|nr| (nr, Rule::Always)).collect();
            let p = assemble(arch, &all, EPERM);
            assert!(p.len() < 4096, "{}", p.len());
            for nr in 0..600 {
                assert_eq!(run(&p, arch.audit(), nr, 0), EPERM, "{nr}");
            }
            assert_eq!(run(&p, arch.audit(), 600, 0), ALLOW);
            let (_, n) = steps(&p, arch.audit(), 300, 0);
            assert!(n <= 30, "{n}");
        }
    }
}
