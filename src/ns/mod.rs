//! Namespaces: which ones the agent gets, the clone flags, the id maps the parent writes for a
//! user namespace, the set-up steps the child runs inside them, and the errors that name the
//! cause and the fix. The PID-1 init for a new pid namespace is in [`crate::postfork::init`].

mod kinds;
mod obstacle;

use std::ffi::CString;
use std::io;

pub use kinds::*;
pub use obstacle::{create_error, preflight, userns_obstacle, UsernsObstacle};

/// Everything the child needs to enter and set up its namespaces, prepared before fork.
pub struct NsPlan {
    /// Namespaces created by clone (the cgroup namespace is unshared later, once the child is in
    /// its cgroup, so that the cgroup is its root).
    pub clone_flags: u64,
    pub user: bool,
    pub pid: bool,
    pub mount: bool,
    pub cgroup: bool,
    pub net: bool,
    pub uts: bool,
    pub hostname: CString,
    /// "0 <uid> 1" and "0 <gid> 1": the caller becomes root inside.
    pub uid_map: String,
    pub gid_map: String,
    pub root: CString,
    pub proc_dir: CString,
    pub proc_fs: CString,
    pub cgroup_dir: CString,
    pub cgroup_fs: CString,
    pub tmpfs: CString,
    /// The read-only view of `[filesystem]`, built first in the new mount namespace.
    pub view: Option<crate::view::ViewPlan>,
    /// `[network] mode = "proxy"`: the child's end of the socket pair that the proxy's
    /// listeners, created in the new network namespace, are sent over.
    pub proxy_handoff: Option<std::os::fd::OwnedFd>,
    /// The loopback ports the child also listens on for the proxy to forward
    /// ([`crate::net::Policy::loopback_forwards`]).
    pub proxy_forwards: Vec<u16>,
}

impl NsPlan {
    pub fn new(ns: &Namespaces, view: Option<crate::view::ViewPlan>) -> Option<NsPlan> {
        if !ns.any() {
            return None;
        }
        let c = |s: &str| CString::new(s).expect("no NUL");
        Some(NsPlan {
            clone_flags: ns.clone_flags(),
            user: ns.user,
            pid: ns.pid,
            mount: ns.mount,
            cgroup: ns.cgroup,
            net: ns.net,
            uts: ns.uts,
            hostname: CString::new(ns.hostname.as_str()).expect("validated hostname"),
            uid_map: format!("0 {} 1\n", nix::unistd::geteuid()),
            gid_map: format!("0 {} 1\n", nix::unistd::getegid()),
            root: c("/"),
            proc_dir: c("/proc"),
            proc_fs: c("proc"),
            cgroup_dir: c("/sys/fs/cgroup"),
            cgroup_fs: c("cgroup2"),
            tmpfs: c("tmpfs"),
            view: view.filter(|_| ns.mount),
            proxy_handoff: None,
            proxy_forwards: Vec::new(),
        })
    }

    /// True when the child must wait for the parent before it goes on (id maps to write).
    pub fn needs_handshake(&self) -> bool {
        self.user
    }

    /// Writes the child's uid_map, "deny" to setgroups (required before an unprivileged gid_map),
    /// then gid_map.
    pub fn write_id_maps(&self, pid: i32) -> Result<(), NsError> {
        for (file, text) in [
            ("uid_map", self.uid_map.as_str()),
            ("setgroups", "deny"),
            ("gid_map", self.gid_map.as_str()),
        ] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, text).map_err(|source| NsError::IdMap { path, source })?;
        }
        Ok(())
    }
}

/// A set-up step in the child, reported with its errno when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Step {
    Exec = 0,
    CgroupNs = 1,
    PrivateMounts = 2,
    MountProc = 3,
    MountCgroup = 4,
    Hostname = 5,
    Loopback = 6,
    ForkInit = 7,
    Setup = 8,
    /// Not a failure: the working directory was unreachable inside, the agent starts in `/`.
    CwdFallback = 9,
    Rlimit = 10,
    Capabilities = 11,
    SwitchUser = 12,
    NoNewPrivs = 13,
    Landlock = 14,
    Seccomp = 15,
    ViewReadOnly = 16,
    ViewWrite = 17,
    ViewTmp = 18,
    ViewHide = 19,
    ProxyListen = 20,
    ProxyHandoff = 21,
}

impl Step {
    pub fn from_i32(v: i32) -> Step {
        match v {
            1 => Step::CgroupNs,
            2 => Step::PrivateMounts,
            3 => Step::MountProc,
            4 => Step::MountCgroup,
            5 => Step::Hostname,
            6 => Step::Loopback,
            7 => Step::ForkInit,
            8 => Step::Setup,
            9 => Step::CwdFallback,
            10 => Step::Rlimit,
            11 => Step::Capabilities,
            12 => Step::SwitchUser,
            13 => Step::NoNewPrivs,
            14 => Step::Landlock,
            15 => Step::Seccomp,
            16 => Step::ViewReadOnly,
            17 => Step::ViewWrite,
            18 => Step::ViewTmp,
            19 => Step::ViewHide,
            20 => Step::ProxyListen,
            21 => Step::ProxyHandoff,
            _ => Step::Exec,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::Exec => "execute the command",
            Step::CgroupNs => "create the cgroup namespace",
            Step::PrivateMounts => "make the new mount namespace private (mount --make-rprivate /)",
            Step::MountProc => "mount a fresh /proc for the new pid namespace",
            Step::MountCgroup => "mount cgroup2 at /sys/fs/cgroup for the new cgroup namespace",
            Step::Hostname => "set the hostname in the new uts namespace",
            Step::Loopback => "bring up the loopback interface in the new network namespace",
            Step::ForkInit => "start the agent under the pid namespace's init",
            Step::Setup => "prepare the agent",
            Step::CwdFallback => "keep the working directory",
            Step::Rlimit => "set the agent's resource limits ([rlimits])",
            Step::Capabilities => "drop the agent's capabilities ([security] capabilities)",
            Step::SwitchUser => "switch to the agent's user and group ([security] user, group)",
            Step::NoNewPrivs => "set no_new_privileges",
            Step::Landlock => "enforce the [filesystem] Landlock rules",
            Step::Seccomp => {
                "install the [seccomp] filter (seccomp(2); the kernel needs CONFIG_SECCOMP_FILTER)"
            }
            Step::ViewReadOnly => {
                "remount the agent's mounts read-only for the [filesystem] read-only view"
            }
            Step::ViewWrite => {
                "bind a [filesystem] write path writable in the read-only view (it must be a path the caller can reach)"
            }
            Step::ViewTmp => "mount a private tmpfs on /tmp for the read-only view",
            Step::ViewHide => "cover a [filesystem] hide path",
            Step::ProxyListen => {
                "listen on 127.0.0.1:3128, :1080 and the forwarded loopback ports in the agent's network namespace for the [network] proxy"
            }
            Step::ProxyHandoff => "pass the [network] proxy's listeners to synwire-run",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("cannot create the {names} namespace{s}: {source}; {fix}", s = if names.contains(", ") { "s" } else { "" })]
    Create {
        names: String,
        source: io::Error,
        fix: String,
    },
    #[error("cannot write {path}: {source}; the user namespace could not be given its id maps")]
    IdMap { path: String, source: io::Error },
    #[error("cannot {}: {source}", step.describe())]
    Setup { step: Step, source: io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_flags_leave_the_cgroup_namespace_to_the_child() {
        let mut ns = Namespaces::default();
        ns.unshare("all").unwrap();
        let plan = NsPlan::new(&ns, None).unwrap();
        assert_eq!(
            plan.clone_flags,
            CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC
        );
        assert!(plan.cgroup && plan.needs_handshake());
        assert!(NsPlan::new(&Namespaces::default(), None).is_none());
    }
}
