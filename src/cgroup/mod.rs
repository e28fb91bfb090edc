//! The agent's cgroup: find the hierarchy, choose the place, enable the controllers on every level
//! from the parent down, create the leaf, write the limits, and at the end kill, wait for it to
//! empty, read the statistics and remove it. Errors always carry the path and name the fix.

pub mod delegate;
pub mod discover;
pub mod room;
pub mod stats;
mod teardown;

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::profile::Limits;
use discover::{join, Mounts};

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
            fs::read_to_string(p).map_err(|source| CgroupError::Proc {
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
        let wsl = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| r.to_ascii_lowercase().contains("microsoft"))
            .unwrap_or(false);
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

/// The placement, with systemd's help where [`delegate::systemd_step`] says so. Returns our new
/// own cgroup when we were moved into a transient scope.
fn with_systemd(
    h: &Hierarchy,
    req: &Request,
) -> Result<(delegate::Placement, Option<String>), CgroupError> {
    use crate::systemd::scope::{self, Manager};
    use delegate::{Placement, Step};
    let placement = h.placement();
    let euid = nix::unistd::geteuid().as_raw();
    let step = delegate::systemd_step(
        &placement,
        &h.own,
        req.manager,
        delegate::systemd_booted(),
        euid,
        |rel| delegate::is_delegated(&h.path(rel)),
    );
    let refusal = || match &placement {
        Placement::Refuse { own, parent } => CgroupError::NotDelegatedUnit {
            own: h.path(own),
            parent: h.path(parent),
        }
        .to_string(),
        _ => "--scope or `[cgroup] manager = \"systemd\"` asks for a transient scope".into(),
    };
    match step {
        Step::Keep => return Ok((placement, None)),
        Step::AskDelegate {
            uid,
            iface,
            then_scope,
        } => match scope::unit_delegates(Manager::User(uid), std::process::id(), iface) {
            Ok(true) => {
                tracing::debug!("the user manager says {} has Delegate=yes", h.own);
                return Ok((Placement::Nest(h.own.clone()), None));
            }
            Ok(false) if !then_scope => return Ok((placement, None)),
            Err(tried) if !then_scope => {
                tracing::debug!("cannot ask the user manager about Delegate=: {tried}");
                return Ok((placement, None));
            }
            _ => {}
        },
        Step::Scope => {}
    }
    let manager = Manager::for_euid(euid);
    let unit = format!("synwire-{}.scope", &req.id[..req.id.len().min(8)]);
    let asked = Instant::now();
    let started = scope::start_scope(
        manager,
        &scope::ScopeRequest {
            unit: &unit,
            description: req.description,
            pid: std::process::id(),
        },
    );
    let manager_name = match manager {
        Manager::System => "the system manager (PID 1)",
        Manager::User(_) => "your user manager",
    };
    if let Err(tried) = started {
        return Err(CgroupError::NoScope {
            refusal: refusal(),
            manager: manager_name,
            tried: tried.to_string(),
        });
    }
    let text = fs::read_to_string("/proc/self/cgroup").map_err(|source| CgroupError::Proc {
        path: "/proc/self/cgroup".into(),
        source,
    })?;
    let own = discover::parse_own_cgroup(&text).ok_or(CgroupError::NoOwnCgroup)?;
    if !own.ends_with(&format!("/{unit}")) {
        return Err(CgroupError::NoScope {
            refusal: refusal(),
            manager: manager_name,
            tried: format!("{unit} started, but synwire-run is still in {own}"),
        });
    }
    tracing::debug!(
        "in transient scope {unit} after {:?} ({} status {unit})",
        asked.elapsed(),
        manager.systemctl()
    );
    Ok((Placement::Nest(own.clone()), Some(own)))
}

/// A controller with the limits that need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }
}

/// Something the profile asked for that this run does not enforce (degraded mode).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unenforced {
    pub what: String,
    pub why: String,
}

/// The request: where to put the agent and what to write there.
pub struct Request<'a> {
    pub id: &'a str,
    pub parent: Option<&'a str>,
    pub limits: &'a Limits,
    pub profile: &'a str,
    /// Run without what cannot be enforced, instead of failing.
    pub degraded_ok: bool,
    /// Whether (and when) to ask systemd for a transient scope.
    pub manager: delegate::ManagerMode,
    /// The scope's Description (the profile and the command).
    pub description: &'a str,
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
    /// Who we are, as the leaf's launcher tag says.
    launcher: crate::gc::Launcher,
    /// In a transient scope synwire-run asked systemd for: systemd removes the whole tree when
    /// the scope ends (right after synwire-run exits).
    pub in_own_scope: bool,
}

fn tokens(path: &Path) -> Result<Vec<String>, CgroupError> {
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
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

/// Enables `c` in `dir`'s cgroup.subtree_control unless it is already there.
fn enable(dir: &Path, c: Controller) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    if tokens(&control)?.iter().any(|t| t == c.name()) {
        return Ok(());
    }
    write_file(&control, &format!("+{}", c.name())).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => CgroupError::InternalProcesses {
            controller: c.name().into(),
            path: dir.to_path_buf(),
        },
        _ => io_err("write", &control)(e),
    })
}

impl AgentCgroup {
    /// Creates the agent cgroup with its controllers and limits. Returns what is not enforced
    /// (only ever non-empty with `degraded_ok`). Checks everything it can before creating anything.
    pub fn create(
        h: &Hierarchy,
        req: &Request,
    ) -> Result<(AgentCgroup, Vec<Unenforced>), CgroupError> {
        // The cgroup whose processes must move into a leaf of it first, and that leaf.
        let mut room: Option<(String, &str)> = None;
        let scoped;
        let in_own_scope;
        let (h, placement) = match req.parent {
            Some(_) => {
                in_own_scope = false;
                (h, None)
            }
            None => {
                let (placement, own) = with_systemd(h, req)?;
                in_own_scope = own.is_some();
                let h = match own {
                    Some(own) => {
                        scoped = Hierarchy { own, ..h.clone() };
                        &scoped
                    }
                    None => h,
                };
                (h, Some(placement))
            }
        };
        let (parent_rel, levels): (String, Vec<String>) = match (req.parent, placement) {
            (Some(p), _) => {
                let p = discover::normalise(p).ok_or_else(|| CgroupError::BadParent(p.into()))?;
                (p.clone(), vec![p])
            }
            (None, placement) => {
                let parent = match placement.expect("a placement without --cgroup-parent") {
                    // The root of a container's cgroup namespace: we (and whatever runs beside
                    // us) move into `init`; the host's real root needs no room.
                    delegate::Placement::Parent(p)
                        if h.own == "/" && room::is_namespace_root(&h.mount) =>
                    {
                        room = Some((p.clone(), room::NS_ROOT_LEAF));
                        p
                    }
                    delegate::Placement::Parent(p) => p,
                    delegate::Placement::Nest(own) => {
                        room = Some((own.clone(), delegate::SUPERVISOR_LEAF));
                        own
                    }
                    delegate::Placement::Refuse { own, parent } => {
                        return Err(CgroupError::NotDelegatedUnit {
                            own: h.path(&own),
                            parent: h.path(&parent),
                        })
                    }
                };
                let synwire = join(&parent, "synwire");
                let agents = join(&parent, AGENTS_SUBDIR);
                (parent.clone(), vec![parent, synwire, agents])
            }
        };
        let parent_dir = h.path(&parent_rel);
        if !parent_dir.is_dir() {
            return Err(CgroupError::ParentMissing { path: parent_dir });
        }
        let available = tokens(&parent_dir.join("cgroup.controllers"))?;
        let has = |c: Controller| available.iter().any(|t| t == c.name());

        let l = req.limits;
        let needed: Vec<(Controller, bool)> = [
            (Controller::Memory, l.needs_memory()),
            (Controller::Cpu, l.needs_cpu()),
            (Controller::Pids, l.needs_pids()),
        ]
        .into_iter()
        .collect();
        let missing: Vec<Controller> = needed
            .iter()
            .filter(|(c, n)| *n && !has(*c))
            .map(|(c, _)| *c)
            .collect();
        let mut unenforced = Vec::new();
        let mut limits = l.clone();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
            if !req.degraded_ok {
                return Err(CgroupError::MissingControllers {
                    controllers: names.join(" "),
                    needed_by: format!("profile `{}`", req.profile),
                    parent: parent_dir,
                    available: if available.is_empty() {
                        "nothing".into()
                    } else {
                        available.join(" ")
                    },
                    fix: h.controller_fix(&parent_rel),
                });
            }
            for c in &missing {
                let why = format!(
                    "the {} controller is not available in {}",
                    c.name(),
                    parent_dir.display()
                );
                for what in drop_limits(&mut limits, *c) {
                    unenforced.push(Unenforced {
                        what,
                        why: why.clone(),
                    });
                }
            }
        }
        // Memory and pids are also enabled where available without a limit: they give the
        // memory peak, OOM events and the tasks peak. cpu only when limited (it costs scheduling).
        let controllers: Vec<Controller> = needed
            .iter()
            .filter(|(c, n)| has(*c) && (*n || *c != Controller::Cpu))
            .map(|(c, _)| *c)
            .collect();

        if let Some((cg, leaf)) = room {
            // Our own cgroup is ours to arrange (a delegated unit, a container's root): leave it
            // for a leaf, with whatever else runs there, so that it may pass controllers down.
            let dir = h.path(&cg);
            room::clear(&dir, leaf)?;
            tracing::debug!("moved into {}", dir.join(leaf).display());
        }
        for (i, level) in levels.iter().enumerate() {
            let dir = h.path(level);
            if i > 0 {
                mkdir(&dir)?;
            }
            for &c in &controllers {
                let required = needed.iter().any(|(n, need)| *n == c && *need);
                match enable(&dir, c) {
                    Ok(()) => {}
                    Err(e) if !required => {
                        tracing::debug!("not accounting {}: {e}", c.name());
                    }
                    Err(e) if req.degraded_ok => {
                        let why = e.to_string();
                        for what in drop_limits(&mut limits, c) {
                            unenforced.push(Unenforced {
                                what,
                                why: why.clone(),
                            });
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let agents_dir = h.path(levels.last().expect("at least the parent"));
        let enabled = tokens(&agents_dir.join("cgroup.subtree_control"))?;
        let controllers: Vec<Controller> = controllers
            .into_iter()
            .filter(|c| enabled.iter().any(|t| t == c.name()))
            .collect();

        let launcher = crate::gc::Launcher::current();
        let rel = join(levels.last().expect("at least the parent"), req.id);
        let dir = h.path(&rel);
        fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        // Who launched it, for `synwire-run gc` after a launcher was killed (user xattrs on
        // cgroupfs: Linux 5.7+; without them gc cannot tell and keeps a populated cgroup).
        if let Err(e) =
            crate::sys::setxattr(&dir, crate::gc::LAUNCHER_XATTR, launcher.tag().as_bytes())
        {
            tracing::debug!("cannot tag {} with its launcher: {e}", dir.display());
        }
        let fd = match open_dir(&dir) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let mut cg = AgentCgroup {
            rel,
            dir,
            fd,
            controllers,
            limits_applied: Limits::default(),
            removed: false,
            launcher,
            in_own_scope,
        };
        // From here on, drop removes the leaf on any error.
        cg.apply_limits(&limits, req.degraded_ok, &mut unenforced)?;
        cg.limits_applied = limits;
        Ok((cg, unenforced))
    }

    fn apply_limits(
        &self,
        l: &Limits,
        degraded_ok: bool,
        unenforced: &mut Vec<Unenforced>,
    ) -> Result<(), CgroupError> {
        let mut writes: Vec<(&str, String, &str)> = Vec::new();
        if let Some(m) = l.memory {
            writes.push(("memory.max", m.to_cgroup(), "limits.memory"));
            // An OOM kills the whole agent, not one random process in it.
            writes.push(("memory.oom.group", "1".into(), "limits.memory"));
        }
        if let Some(m) = l.memory_high {
            writes.push(("memory.high", m.to_cgroup(), "limits.memory_high"));
        }
        if let Some(m) = l.swap {
            writes.push(("memory.swap.max", m.to_cgroup(), "limits.swap"));
        }
        if let Some(c) = l.cpu_max() {
            writes.push(("cpu.max", c, "limits.cpu"));
        }
        if let Some(w) = l.cpu_weight {
            writes.push(("cpu.weight", w.to_string(), "limits.cpu_weight"));
        }
        if let Some(p) = l.pids {
            writes.push(("pids.max", p.to_string(), "limits.pids"));
        }
        for (file, value, key) in writes {
            let path = self.dir.join(file);
            if let Err(source) = write_file(&path, &value) {
                let fix = match file {
                    "memory.swap.max" if source.kind() == ErrorKind::NotFound => {
                        "this kernel does not account swap: boot with swapaccount=1 (or a kernel with CONFIG_MEMCG_SWAP), or remove limits.swap".to_string()
                    }
                    _ => format!("check the value of {key}, or run with --allow-degraded"),
                };
                let err = CgroupError::Limit {
                    path,
                    value: value.clone(),
                    source,
                    fix,
                };
                if degraded_ok {
                    unenforced.push(Unenforced {
                        what: format!("{file} = {value}"),
                        why: err.to_string(),
                    });
                } else {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Removes the agent cgroups beside this one whose launchers were killed together with their
    /// guardians. Called once the agent runs, so that it overlaps with the agent's start instead
    /// of delaying it.
    pub fn remove_stale_siblings(&self) {
        if let Some(agents) = self.dir.parent() {
            crate::gc::remove_stale(agents, &self.launcher);
        }
    }

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
}

fn open_dir(dir: &Path) -> Result<OwnedFd, CgroupError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(io_err("open", dir))
}

/// Clears the limits that need `c`, returning their descriptions.
fn drop_limits(l: &mut Limits, c: Controller) -> Vec<String> {
    let mut out = Vec::new();
    match c {
        Controller::Memory => {
            if let Some(m) = l.memory.take() {
                out.push(format!("memory limit {m} (memory.max)"));
            }
            if let Some(m) = l.memory_high.take() {
                out.push(format!("memory.high {m}"));
            }
            if let Some(m) = l.swap.take() {
                out.push(format!("swap limit {m} (memory.swap.max)"));
            }
        }
        Controller::Cpu => {
            if let Some(cpu) = l.cpu.take() {
                out.push(format!("CPU limit {cpu} CPUs (cpu.max)"));
            }
            if let Some(w) = l.cpu_weight.take() {
                out.push(format!("cpu.weight {w}"));
            }
        }
        Controller::Pids => {
            if let Some(p) = l.pids.take() {
                out.push(format!("tasks limit {p} (pids.max)"));
            }
        }
    }
    out
}
