//! The agent's cgroup: find the hierarchy ([`Hierarchy`]), choose the place ([`place`],
//! [`delegate`], [`room`]), enable the controllers on every level from the parent down, create the
//! leaf and write the limits (`create`, `controllers`, `limits`), and at the end kill, wait for it
//! to empty, read the statistics ([`stats`]) and remove it (`teardown`). Errors always carry the
//! path and name the fix.

mod controllers;
mod create;
pub mod delegate;
pub mod discover;
mod limits;
pub mod place;
pub mod room;
pub mod stats;
mod teardown;

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::profile::Limits;
use discover::Mounts;

pub use controllers::{Available, Controller};
pub use create::{create_or_degrade, Request, LAUNCHER_XATTR};
pub use stats::{CgroupStats, EventsFile};
pub use teardown::{count_procs, kill_dir, wait_dir_empty, Reap};

/// Where agents go below the parent.
pub const AGENTS_SUBDIR: &str = "synwire/agents";

/// The cgroup v2 hierarchy and our own cgroup in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// Our own cgroup, relative to the mount ("/user.slice/…").
    pub own: String,
    /// cgroup v1 controllers bound elsewhere: a hybrid host.
    pub v1_controllers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup v2 hierarchy is mounted (none in /proc/self/mountinfo); mount one (`mount -t cgroup2 none /sys/fs/cgroup`), boot with systemd.unified_cgroup_hierarchy=1, or run with --allow-degraded")]
    NoHierarchy,
    #[error("cannot read {}: {source}; is /proc mounted?", path.display())]
    Proc { path: PathBuf, source: io::Error },
    #[error("/proc/self/cgroup has no cgroup v2 (`0::`) line, so synwire-run cannot tell where it runs; boot with systemd.unified_cgroup_hierarchy=1 or run with --allow-degraded")]
    NoOwnCgroup,
    #[error("invalid --cgroup-parent `{0}`: give a path below the cgroup2 mount such as /synwire.slice, without `..`")]
    BadParent(String),
    #[error("the cgroup parent {} does not exist; create it (and delegate it) or pass an existing --cgroup-parent", path.display())]
    ParentMissing { path: PathBuf },
    #[error("the {controllers} controller{plural} needed by {needed_by} {is_are} not available in {} (its cgroup.controllers has: {available}); {fix}",
        parent.display(), plural = if controllers.contains(' ') { "s" } else { "" },
        is_are = if controllers.contains(' ') { "are" } else { "is" })]
    MissingControllers {
        controllers: String,
        needed_by: String,
        parent: PathBuf,
        available: String,
        fix: String,
    },
    #[error("cannot {op} {}: permission denied; this cgroup is not delegated to uid {uid}: run synwire-run inside a delegated unit (e.g. `systemd-run --user --scope -p Delegate=yes synwire-run …`), pass --cgroup-parent to a cgroup you own, or run with --allow-degraded", path.display())]
    NotDelegated {
        op: &'static str,
        path: PathBuf,
        uid: u32,
    },
    #[error("cannot enable the {controller} controller in {}: that cgroup has processes of its own, and cgroup v2 lets only cgroups without processes pass controllers down; run synwire-run from a cgroup below it (a leaf) or pass --cgroup-parent to a cgroup without processes", path.display())]
    InternalProcesses { controller: String, path: PathBuf },
    #[error("cannot move {who} out of {} into {}: {source}; cgroup v2 lets only a cgroup without processes pass controllers down, and synwire-run may not move this one. Start synwire-run with `exec` (in a unit's start script: `exec synwire-run …`; in a container: make it the entrypoint or `exec` it), move the process yourself (`echo PID > {}/cgroup.procs`), or pass --cgroup-parent to a cgroup without processes", dir.display(), leaf.display(), leaf.display())]
    ProcessesInTheWay {
        dir: PathBuf,
        leaf: PathBuf,
        who: String,
        source: io::Error,
    },
    #[error("cannot {op} {}: the cgroup2 file system is mounted read-only here (a container's default); mount /sys/fs/cgroup read-write in the container (docker/podman: --cgroupns=private with --privileged or a rw cgroup mount; OCI config.json: drop \"ro\" from the /sys/fs/cgroup mount), or run with --allow-degraded", path.display())]
    ReadOnly { op: &'static str, path: PathBuf },
    #[error("cannot set {} to {value}: {source}; {fix}", path.display())]
    Limit {
        path: PathBuf,
        value: String,
        source: io::Error,
        fix: String,
    },
    #[error("synwire-run runs in {}, a systemd unit without delegation: its agents would need cgroups in {}, which belongs to systemd. Add to the unit `Delegate=cpu memory pids io` (and `DelegateSubgroup=supervisor` on systemd 254+), or start it with `{hint}`, or pass --cgroup-parent to a cgroup delegated to you", own.display(), parent.display(), hint = delegate::scope_hint())]
    NotDelegatedUnit { own: PathBuf, parent: PathBuf },
    #[error("{refusal}. synwire-run asked {manager} for a transient scope with delegation, and got none: {tried}")]
    NoScope {
        /// What would have been refused without a scope, or why a scope was asked for.
        refusal: String,
        manager: &'static str,
        tried: String,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| {
        if source.raw_os_error() == Some(libc::EROFS) {
            CgroupError::ReadOnly {
                op,
                path: path.to_path_buf(),
            }
        } else if source.kind() == ErrorKind::PermissionDenied {
            CgroupError::NotDelegated {
                op,
                path: path.to_path_buf(),
                uid: nix::unistd::geteuid().as_raw(),
            }
        } else {
            CgroupError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

impl Hierarchy {
    /// Reads /proc/self/mountinfo and /proc/self/cgroup.
    pub fn discover() -> Result<Hierarchy, CgroupError> {
        let read = |p: &str| {
            crate::sys::read_file(p).map_err(|source| CgroupError::Proc {
                path: p.into(),
                source,
            })
        };
        let Mounts {
            cgroup2,
            v1_controllers,
        } = discover::parse_mountinfo(&read("/proc/self/mountinfo")?);
        let mount = cgroup2.ok_or(CgroupError::NoHierarchy)?;
        let own = discover::parse_own_cgroup(&read("/proc/self/cgroup")?)
            .ok_or(CgroupError::NoOwnCgroup)?;
        Ok(Hierarchy {
            mount,
            own,
            v1_controllers,
        })
    }

    /// Where agents go by default, under the rules of [`delegate`].
    pub fn placement(&self) -> delegate::Placement {
        delegate::decide(&self.own, delegate::systemd_booted(), |rel| {
            delegate::is_delegated(&self.path(rel))
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            self.mount.clone()
        } else {
            self.mount.join(rel)
        }
    }

    /// The fix to print when `controllers` are missing in `parent`.
    pub fn controller_fix(&self, parent: &str) -> String {
        let wsl = crate::probe::sysctl("/proc/sys/kernel/osrelease")
            .is_some_and(|r| r.to_ascii_lowercase().contains("microsoft"));
        let degrade = "or run with --allow-degraded to run without these limits";
        if !self.v1_controllers.is_empty() {
            format!(
                "this host runs cgroups in hybrid mode (controllers bound to cgroup v1: {}), so the cgroup v2 hierarchy at {} has none: boot with systemd.unified_cgroup_hierarchy=1 on the kernel command line, {degrade}",
                self.v1_controllers.join(" "),
                self.mount.display()
            )
        } else if wsl {
            format!("on WSL2 enable systemd (`[boot]` `systemd=true` in /etc/wsl.conf, then `wsl --shutdown`) so cgroup v2 gets its controllers, {degrade}")
        } else if parent.contains("/user@") {
            format!("delegate them to your user manager with a drop-in /etc/systemd/system/user@.service.d/delegate.conf holding `[Service]` and `Delegate=cpu cpuset io memory pids`, then `systemctl daemon-reload` and log in again, {degrade}")
        } else {
            format!("enable them in cgroup.subtree_control of every cgroup above it (under systemd: `Delegate=cpu cpuset io memory pids` in the unit that owns it), pass --cgroup-parent to a cgroup that has them, {degrade}")
        }
    }
}

/// Something the profile asked for that this run does not enforce (degraded mode).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unenforced {
    pub what: String,
    pub why: String,
}

/// The agent's own cgroup, alive until [`AgentCgroup::teardown`] (or drop) removes it.
#[derive(Debug)]
pub struct AgentCgroup {
    /// Relative to the mount ("/…/synwire/agents/<uuid>").
    pub rel: String,
    pub dir: PathBuf,
    fd: OwnedFd,
    /// Controllers enabled for the leaf.
    pub controllers: Vec<Controller>,
    pub limits_applied: Limits,
    removed: bool,
    /// In a transient scope synwire-run asked systemd for: systemd removes the whole tree when
    /// the scope ends (right after synwire-run exits).
    pub in_own_scope: bool,
}

/// The cgroup directory's descriptor, borrowed: the guardian's, after fork.
impl std::os::fd::AsFd for AgentCgroup {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }
}

fn tokens(path: &Path) -> Result<Vec<String>, CgroupError> {
    let text = crate::sys::read_file(path).map_err(io_err("read", path))?;
    Ok(text.split_whitespace().map(str::to_string).collect())
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    // One write(2) per value: cgroup files take each write as a whole command.
    use std::io::Write;
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn mkdir(path: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err("create", path)(e)),
    }
}

impl AgentCgroup {
    /// An fd of the cgroup directory, for clone3(CLONE_INTO_CGROUP).
    pub fn dir_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Moves `pid` in (the fork fallback).
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let path = self.dir.join("cgroup.procs");
        write_file(&path, &pid.to_string()).map_err(io_err("write", &path))
    }

    pub fn has(&self, c: Controller) -> bool {
        self.controllers.contains(&c)
    }

    /// memory.events, open and armed for POLLPRI; None without the memory controller.
    pub fn memory_events(&self) -> Option<EventsFile> {
        if !self.has(Controller::Memory) {
            return None;
        }
        let path = self.dir.join("memory.events");
        EventsFile::open(&path)
            .inspect_err(|e| tracing::debug!("cannot watch {}: {e}", path.display()))
            .ok()
    }

    pub fn stats(&self) -> CgroupStats {
        CgroupStats::read(&self.dir, self)
    }

    /// The agents directory it lies in.
    pub fn agents_dir(&self) -> Option<&Path> {
        self.dir.parent()
    }
}
