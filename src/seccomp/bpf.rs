//! The filter as classic BPF over `struct seccomp_data` (seccomp(2)): the architecture check, then
//! one short block per call of the list. Every jump is forward by at most four instructions, so a
//! list of any length assembles (the 8-bit jump offsets never overflow).
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
//!     jeq NR, 0, +1         ; Rule::Always
//!     ret DENY
//!     jeq NR, 0, +4         ; Rule::NewUser: the low word of args[0] (little-endian)
//!     ld  [args[0]]
//!     jset CLONE_NEWUSER, 0, +1
//!     ret DENY
//!     ret ALLOW
//!     jeq NR, 0, +1         ; Rule::Enosys
//!     ret ERRNO(ENOSYS)
//!     ret ALLOW
//! ```
//!
//! The verdict for a call outside the list depends on nothing but its number, so kernels 5.11+
//! cache it per number and stop running the filter for it.

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

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

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

/// The program for `rules` on `arch`; `deny` is what a denied call returns.
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
    for &(nr, rule) in rules {
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
        }
    }
    p.push(stmt(RET, ALLOW));
    p
}

#[cfg(test)]
mod tests {
    use super::super::{rules, Seccomp, DEFAULT};
    use super::*;
    use crate::profile::seccomp::Action;

    /// Runs `p` the way the kernel does on one call: (arch, nr, args[0]) in, the verdict out.
    fn run(p: &[sock_filter], arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = p[pc];
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
                RET => return k,
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
        assert_eq!(p.len(), 4 + 2 * (DEFAULT.len() - 3) + 5 * 2 + 2 + 1);
    }

    #[test]
    fn every_call_denied_still_fits_in_a_filter() {
        // BPF_MAXINSNS is 4096.
        for arch in Arch::ALL {
            let all: Vec<(u32, Rule)> = (0..600).map(|nr| (nr, Rule::Always)).collect();
            let p = assemble(arch, &all, EPERM);
            assert!(p.len() < 4096, "{}", p.len());
            assert_eq!(run(&p, arch.audit(), 599, 0), EPERM);
            assert_eq!(run(&p, arch.audit(), 600, 0), ALLOW);
        }
    }
}
