//! The `[seccomp]` filter: a deny list of system calls, built before fork into a classic BPF
//! program and installed by the agent's child as its very last step before execve
//! (`postfork::child`), after Landlock. The pid namespace's init, the guardian and synwire-run
//! itself never run under it.
//!
//! The list is the built-in [`DEFAULT`] (`default = true`) less `allow`, plus `deny`, for the
//! architecture synwire-run is built for (x86-64 or aarch64; the filter kills a process that makes
//! a system call of another ABI, whose numbers the list does not cover). A denied call fails with
//! EPERM, kills the agent with SIGSYS (exit 159), or only gets logged by the kernel.
//!
//! The BPF is assembled here ([`bpf`]) rather than by the seccompiler crate: seccompiler keeps its
//! name tables private (behind its JSON front end), gives one action to every rule of a filter
//! (clone3 needs ENOSYS while the rest get EPERM), and, built for allow lists, does not refuse
//! x32 system calls (x86-64's audit arch with bit 30 set in the number), which a deny list must.
//! The names come from the `syscalls` crate's tables.

mod bpf;

use std::str::FromStr;

use serde::Serialize;

use crate::profile::seccomp::{Action, Seccomp};

pub use bpf::Arch;

/// How the filter treats one call of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Denied whatever its arguments.
    Always,
    /// Denied when its first argument, the flags of clone(2) and unshare(2), has CLONE_NEWUSER: a
    /// user namespace makes the agent root there, and every capability check inside it passes,
    /// which is how most kernel exploits reach the code they attack.
    NewUser,
    /// Fails with ENOSYS, whatever the action. clone3(2) passes its flags in a struct that a
    /// seccomp filter cannot read (it sees only the pointer), so the filter cannot tell a thread
    /// from a new user namespace. ENOSYS is what a kernel without clone3 answers: the C libraries
    /// and language runtimes then fall back to clone(2), whose flags the filter checks. Container
    /// runtimes' default profiles do the same.
    Enosys,
    /// Fails with EACCES, whatever the action: the network cut of `[network] mode = "none"`
    /// without a network namespace (io_uring_setup: its IORING_OP_SOCKET makes sockets without
    /// socket(2)).
    Eacces,
    /// socket(2) of any family but AF_UNIX and AF_NETLINK (route queries) fails with EACCES,
    /// whatever the action: the same network cut.
    LocalSocketsOnly,
}

/// The network cut's rules, added to (and overriding) the list.
pub const NETWORK_CUT: &[(&str, Rule)] = &[
    ("socket", Rule::LocalSocketsOnly),
    ("io_uring_setup", Rule::Eacces),
];

/// The built-in list (`default = true`), family by family.
pub const DEFAULT: &[(&str, Rule)] = &[
    // Reading and writing other processes.
    ("ptrace", Rule::Always),
    ("process_vm_readv", Rule::Always),
    ("process_vm_writev", Rule::Always),
    ("pidfd_getfd", Rule::Always),
    // Kernel attack surface an agent has no use for.
    ("bpf", Rule::Always),
    ("perf_event_open", Rule::Always),
    ("io_uring_setup", Rule::Always),
    ("io_uring_enter", Rule::Always),
    ("io_uring_register", Rule::Always),
    ("userfaultfd", Rule::Always),
    // The kernel keyrings (shared by every process of a user).
    ("keyctl", Rule::Always),
    ("add_key", Rule::Always),
    ("request_key", Rule::Always),
    // Another kernel, kernel modules.
    ("kexec_load", Rule::Always),
    ("kexec_file_load", Rule::Always),
    ("init_module", Rule::Always),
    ("finit_module", Rule::Always),
    ("delete_module", Rule::Always),
    // Opening files by handle, past every path check.
    ("open_by_handle_at", Rule::Always),
    // Mounts: synwire-run's own are done by then.
    ("mount", Rule::Always),
    ("umount2", Rule::Always),
    ("pivot_root", Rule::Always),
    ("move_mount", Rule::Always),
    ("open_tree", Rule::Always),
    ("fsopen", Rule::Always),
    ("fsmount", Rule::Always),
    ("fsconfig", Rule::Always),
    ("fspick", Rule::Always),
    ("mount_setattr", Rule::Always),
    // Namespaces: entering others, and new user namespaces.
    ("setns", Rule::Always),
    ("unshare", Rule::NewUser),
    ("clone", Rule::NewUser),
    ("clone3", Rule::Enosys),
    // The machine's own administration.
    ("swapon", Rule::Always),
    ("swapoff", Rule::Always),
    ("reboot", Rule::Always),
    ("acct", Rule::Always),
    ("quotactl", Rule::Always),
    ("quotactl_fd", Rule::Always),
    ("syslog", Rule::Always),
];

/// True when `name` is in the built-in list.
pub fn in_default(name: &str) -> bool {
    DEFAULT.iter().any(|(n, _)| *n == name)
}

/// True when `name` is a system call of x86-64 or aarch64. A profile may name a call only one of
/// them has (`iopl`, `ioperm`): it is denied where it exists.
pub fn known(name: &str) -> bool {
    Arch::ALL.iter().any(|a| a.number(name).is_some())
}

impl Arch {
    /// The number of the system call `name` on this architecture.
    pub fn number(self, name: &str) -> Option<u32> {
        let id = match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
        };
        u32::try_from(id).ok()
    }
}

/// The rules for `arch`, by system call number (ascending, each once): the built-in list if
/// `default`, less `allow`, then `deny`, which denies a call whatever its arguments (also clone,
/// unshare and clone3). Names this architecture lacks are left out.
pub fn rules(s: &Seccomp, arch: Arch) -> Vec<(u32, Rule)> {
    rules_with(s, false, arch)
}

/// [`rules`], and with `cut_network` the [`NETWORK_CUT`] rules over them.
pub fn rules_with(s: &Seccomp, cut_network: bool, arch: Arch) -> Vec<(u32, Rule)> {
    let mut rules = std::collections::BTreeMap::new();
    if s.default {
        for (name, rule) in DEFAULT {
            if s.allow.iter().any(|a| a == name) {
                continue;
            }
            if let Some(nr) = arch.number(name) {
                rules.insert(nr, *rule);
            }
        }
    }
    for name in &s.deny {
        if let Some(nr) = arch.number(name) {
            rules.insert(nr, Rule::Always);
        }
    }
    if cut_network {
        for (name, rule) in NETWORK_CUT {
            if let Some(nr) = arch.number(name) {
                rules.insert(nr, *rule);
            }
        }
    }
    rules.into_iter().collect()
}

/// A filter ready for the agent's child: built before fork, only borrowed after it.
#[derive(Debug, Clone)]
pub struct Program {
    insns: Vec<libc::sock_filter>,
}

impl Program {
    /// The instructions, for seccomp(SECCOMP_SET_MODE_FILTER).
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.insns
    }
}

/// What the filter enforces, for the statistics (JSON key `seccomp`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// "enforced", or "off" (no `[seccomp]` list).
    pub status: &'static str,
    /// "errno", "kill" or "log"; null when off.
    pub action: Option<&'static str>,
}

impl Status {
    pub fn off() -> Status {
        Status {
            status: "off",
            action: None,
        }
    }

    /// True when the agent ran under the filter.
    pub fn enforced(&self) -> bool {
        self.status == "enforced"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the [seccomp] filter is built for x86-64 and aarch64 only, and this synwire-run is built for {arch}; set seccomp.default = false and seccomp.deny = [] to run without it")]
    Arch { arch: &'static str },
}

/// The filter `s` asks for, on this architecture, with the network cut of
/// [`NETWORK_CUT`] when `cut_network`; None when it denies nothing. The status is the
/// `[seccomp]` section's: `off` for a filter that only cuts the network (the statistics say that
/// under `network.via`).
pub fn prepare(s: &Seccomp, cut_network: bool) -> Result<Option<(Program, Status)>, SeccompError> {
    if !s.enabled() && !cut_network {
        return Ok(None);
    }
    let arch = Arch::native().ok_or(SeccompError::Arch {
        arch: std::env::consts::ARCH,
    })?;
    let rules = rules_with(s, cut_network, arch);
    let insns = bpf::assemble(arch, &rules, deny_return(s.action));
    tracing::debug!(
        "[seccomp]: {} instructions, {} calls in the list, action {}{}",
        insns.len(),
        rules.len(),
        s.action.name(),
        if cut_network { ", network cut" } else { "" }
    );
    let status = if s.enabled() {
        Status {
            status: "enforced",
            action: Some(s.action.name()),
        }
    } else {
        Status::off()
    };
    Ok(Some((Program { insns }, status)))
}

/// The filter's return value for a denied call.
fn deny_return(action: Action) -> u32 {
    match action {
        Action::Errno => libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        Action::Kill => libc::SECCOMP_RET_KILL_PROCESS,
        Action::Log => libc::SECCOMP_RET_LOG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(default: bool, deny: &[&str], allow: &[&str]) -> Seccomp {
        Seccomp {
            default,
            action: Action::Errno,
            deny: deny.iter().map(|s| s.to_string()).collect(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn every_call_of_the_built_in_list_exists_on_both_architectures() {
        for arch in Arch::ALL {
            for (name, _) in DEFAULT {
                assert!(arch.number(name).is_some(), "{name} on {arch:?}");
            }
            let rules = rules(&profile(true, &[], &[]), arch);
            assert_eq!(rules.len(), DEFAULT.len(), "{arch:?}: one rule per name");
        }
        // The numbers differ between the two: each table is the architecture's own.
        assert_eq!(Arch::X86_64.number("ptrace"), Some(101));
        assert_eq!(Arch::Aarch64.number("ptrace"), Some(117));
        assert_eq!(Arch::X86_64.number("clone3"), Some(435));
        assert_eq!(Arch::Aarch64.number("clone3"), Some(435));
    }

    #[test]
    fn the_built_in_list_denies_what_the_issue_names() {
        for name in [
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "userfaultfd",
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "mount",
            "umount2",
            "pivot_root",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsmount",
            "fsconfig",
            "setns",
            "swapon",
            "swapoff",
            "reboot",
            "acct",
            "quotactl",
            "syslog",
        ] {
            assert!(
                DEFAULT.contains(&(name, Rule::Always)),
                "{name} is denied outright"
            );
        }
        for name in ["clone", "unshare"] {
            assert!(DEFAULT.contains(&(name, Rule::NewUser)), "{name}");
        }
        assert!(DEFAULT.contains(&("clone3", Rule::Enosys)));
    }

    #[test]
    fn allow_takes_calls_out_and_deny_adds_them_whatever_their_arguments() {
        let arch = Arch::X86_64;
        let nr = |n| arch.number(n).unwrap();
        let r = rules(
            &profile(true, &["uname", "clone3"], &["ptrace", "clone"]),
            arch,
        );
        assert!(!r.iter().any(|(n, _)| *n == nr("ptrace")));
        assert!(!r.iter().any(|(n, _)| *n == nr("clone")));
        assert!(r.contains(&(nr("uname"), Rule::Always)));
        assert!(r.contains(&(nr("clone3"), Rule::Always)), "deny wins");
        assert!(r.contains(&(nr("unshare"), Rule::NewUser)));
        assert!(r.windows(2).all(|w| w[0].0 < w[1].0), "sorted, each once");
        // Without the built-in list only `deny` is left; allow has nothing to take out.
        let only = rules(&profile(false, &["uname"], &[]), arch);
        assert_eq!(only, [(nr("uname"), Rule::Always)]);
    }

    #[test]
    fn a_name_only_one_architecture_has_is_known_and_left_out_on_the_other() {
        assert!(known("iopl") && known("ptrace") && known("renameat"));
        assert!(!known("ptace") && !known("") && !known("PTRACE"));
        assert_eq!(Arch::Aarch64.number("iopl"), None);
        let s = profile(false, &["iopl"], &[]);
        assert!(rules(&s, Arch::Aarch64).is_empty());
        assert_eq!(rules(&s, Arch::X86_64).len(), 1);
    }

    #[test]
    fn an_empty_section_builds_no_filter_and_a_list_one_that_says_its_action() {
        assert!(prepare(&Seccomp::default(), false).unwrap().is_none());
        let mut s = profile(true, &[], &[]);
        s.action = Action::Kill;
        let (program, status) = prepare(&s, false).unwrap().unwrap();
        assert!(!program.instructions().is_empty());
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"status": "enforced", "action": "kill"})
        );
        assert_eq!(
            serde_json::to_value(Status::off()).unwrap(),
            serde_json::json!({"status": "off", "action": null})
        );
    }

    #[test]
    fn the_documentation_shows_a_section_that_parses_and_names_every_call_of_the_list() {
        let doc = include_str!("../../docs/security.md");
        let start = doc
            .find("```toml\n[seccomp]\n")
            .expect("a [seccomp] example")
            + 8;
        let block = &doc[start..start + doc[start..].find("```").unwrap()];
        let p = crate::profile::parse("doc", "docs/security.md", block).unwrap();
        assert_eq!(p.seccomp, Seccomp::default());
        for (name, _) in DEFAULT {
            assert!(
                doc.contains(&format!("`{name}`")),
                "{name} is not in the table"
            );
        }
    }
}
