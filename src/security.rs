//! Least privilege, applied in the child just before execve: rlimits, the capability bounding set,
//! the user and group switch (supplementary groups cleared), the capabilities kept, and
//! PR_SET_NO_NEW_PRIVS. Everything is resolved before fork into a [`SecPlan`]; the child only
//! makes raw system calls (`postfork::security::apply`). Also the inherited file descriptors: all
//! but `--preserve-fds` are marked close-on-exec before fork.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::profile::privilege::{Rlimit, Rlimits, Security};

/// What the child does, in order, prepared before fork.
#[derive(Debug, Default)]
pub struct SecPlan {
    pub rlimits: Vec<(rustix::process::Resource, u64)>,
    /// Capabilities to drop from the bounding set (needs CAP_SETPCAP; skipped without it).
    pub drop_bounding: Vec<u32>,
    /// (uid, gid) to switch to.
    pub switch: Option<(u32, u32)>,
    /// Capabilities kept in the effective, permitted, inheritable and ambient sets.
    pub keep: Option<u64>,
    pub no_new_privs: bool,
    /// The descriptor of the Landlock ruleset, enforced last (see [`SecPlan::set_landlock`]).
    pub landlock: Option<RawFd>,
    /// The ruleset itself, prepared before fork: owned by the plan the child uses, so that it is
    /// open for as long as the plan is.
    ruleset: Option<OwnedFd>,
    /// A second Landlock layer that only denies TCP (the network cut of `--network none` without
    /// a network namespace), enforced after the first.
    pub landlock_net: Option<RawFd>,
    net_ruleset: Option<OwnedFd>,
    /// The `[seccomp]` filter, installed last, just before execve (see [`SecPlan::set_seccomp`]).
    pub seccomp: Option<crate::seccomp::Program>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("invalid security.user: switching user needs root, and synwire-run runs as uid {uid}; remove security.user (and security.group), or run as root")]
    NotRoot { uid: u32 },
    #[error("invalid security.user: inside a user namespace only root (the caller) is mapped, so the agent cannot switch to another user; remove security.user or namespaces.user")]
    UserInUserNs,
    #[error("invalid {key} = {value}: it exceeds the hard limit {hard} that this non-root caller may raise; lower it, or run as root")]
    RlimitAboveHard {
        key: &'static str,
        value: u64,
        hard: u64,
    },
    #[error("invalid --preserve-fds {n}: file descriptor {fd} is not open; pass the descriptors 3 to {last} to synwire-run, or lower N")]
    FdNotOpen { n: u32, fd: i32, last: i32 },
    #[error("cannot read /proc/self/fd to close inherited descriptors: {0}")]
    Fds(io::Error),
}

/// The highest capability this kernel knows.
fn cap_last_cap() -> u32 {
    crate::sys::read_file("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// CapEff of this process.
pub fn effective_caps() -> u64 {
    crate::sys::effective_caps().unwrap_or(0)
}

/// True when this process has CAP_SYS_ADMIN in its own user namespace (CapEff bit 21).
pub fn has_cap_sys_admin() -> bool {
    effective_caps() & (1 << CAP_SYS_ADMIN) != 0
}

const CAP_SETPCAP: u32 = 8;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;

impl SecPlan {
    /// Resolves the profile's sections for this caller. `in_user_ns`: the child runs as root of a
    /// new user namespace, with every capability there.
    pub fn new(sec: &Security, rl: &Rlimits, in_user_ns: bool) -> Result<SecPlan, SecurityError> {
        let euid = nix::unistd::geteuid().as_raw();
        let caps = if in_user_ns {
            u64::MAX
        } else {
            effective_caps()
        };
        if sec.user.is_some() && euid != 0 && !in_user_ns {
            return Err(SecurityError::NotRoot { uid: euid });
        }
        if in_user_ns && sec.user.is_some_and(|u| u != 0) {
            return Err(SecurityError::UserInUserNs);
        }
        let mut rlimits = Vec::new();
        for &(which, value) in &rl.limits {
            if caps & (1 << CAP_SYS_RESOURCE) == 0 {
                let hard = nix::sys::resource::getrlimit(resource(which))
                    .map(|(_, h)| h)
                    .unwrap_or(u64::MAX);
                if value > hard {
                    return Err(SecurityError::RlimitAboveHard {
                        key: which.key(),
                        value,
                        hard,
                    });
                }
            }
            rlimits.push((which.resource(), value));
        }
        let drop_bounding = match sec.capabilities {
            Some(keep) if caps & (1 << CAP_SETPCAP) != 0 => (0..=cap_last_cap())
                .filter(|c| keep & (1 << c) == 0)
                .collect(),
            Some(_) => {
                tracing::debug!("no CAP_SETPCAP: the bounding set stays; no_new_privileges and the empty permitted set hold");
                Vec::new()
            }
            None => Vec::new(),
        };
        Ok(SecPlan {
            rlimits,
            drop_bounding,
            switch: sec.user.map(|u| (u, sec.group.unwrap_or(u))),
            keep: sec.capabilities,
            no_new_privs: sec.no_new_privileges,
            landlock: None,
            ruleset: None,
            landlock_net: None,
            net_ruleset: None,
            seccomp: None,
        })
    }

    /// Hands the plan the network cut's ruleset ([`crate::landlock::network_cut`]).
    pub fn set_landlock_net(&mut self, ruleset: OwnedFd) {
        self.landlock_net = Some(ruleset.as_raw_fd());
        self.net_ruleset = Some(ruleset);
    }

    /// Hands the plan the `[filesystem]` ruleset to enforce.
    pub fn set_landlock(&mut self, ruleset: OwnedFd) {
        self.landlock = Some(ruleset.as_raw_fd());
        self.ruleset = Some(ruleset);
    }

    /// Hands the plan the `[seccomp]` filter to install. Without CAP_SYS_ADMIN the kernel accepts
    /// a filter only under no_new_privs, and with it a setuid program would run filtered as root:
    /// a filter always brings no_new_privs, as a Landlock ruleset does.
    pub fn set_seccomp(&mut self, program: crate::seccomp::Program) {
        self.no_new_privs = true;
        self.seccomp = Some(program);
    }
}

fn resource(r: Rlimit) -> nix::sys::resource::Resource {
    use nix::sys::resource::Resource;
    match r {
        Rlimit::Nofile => Resource::RLIMIT_NOFILE,
        Rlimit::Core => Resource::RLIMIT_CORE,
        Rlimit::Cpu => Resource::RLIMIT_CPU,
        Rlimit::Fsize => Resource::RLIMIT_FSIZE,
        Rlimit::Nproc => Resource::RLIMIT_NPROC,
    }
}

/// Marks every inherited descriptor from 3 up close-on-exec, except 3 .. 3+preserve-1, which
/// are checked to be open and made inheritable. Runs before synwire-run opens anything of its own.
pub fn prepare_fds(preserve: u32) -> Result<(), SecurityError> {
    let keep_below = 3 + preserve as i32;
    for fd in 3..keep_below {
        crate::sys::set_cloexec(fd, false).map_err(|_| SecurityError::FdNotOpen {
            n: preserve,
            fd,
            last: keep_below - 1,
        })?;
    }
    if crate::sys::cloexec_from(keep_below).is_ok() {
        return Ok(());
    }
    // Before Linux 5.11: each open descriptor, as /proc/self/fd lists them.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(SecurityError::Fds)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory handle read_dir held is closed by now: EBADF on its number is expected.
    for fd in fds.into_iter().filter(|fd| *fd >= keep_below) {
        let _ = crate::sys::set_cloexec(fd, true);
    }
    Ok(())
}
