//! Creating the agent cgroup: the place ([`place`]), the controllers its limits need, enabled on
//! every level from the parent down ([`controllers`]), the leaf with its launcher tag, and the
//! limits ([`limits`]). Everything that can be checked is checked before anything is created.
//! Where the cgroup cannot be had and the run may degrade, [`create_or_degrade`] says what runs
//! unenforced instead.

use std::fs;
use std::os::fd::OwnedFd;

use super::controllers::{Available, Choice};
use super::place::{self, Layout};
use super::{io_err, limits, room, AgentCgroup, CgroupError, Hierarchy, Unenforced};
use crate::profile::{Limits, ManagerMode};

/// The extended attribute that names an agent cgroup's launcher, for `synwire-run gc`.
pub const LAUNCHER_XATTR: &str = "user.synwire.launcher";

/// The request: where to put the agent and what to write there.
pub struct Request<'a> {
    pub id: &'a str,
    pub parent: Option<&'a str>,
    pub limits: &'a Limits,
    pub profile: &'a str,
    /// Run without what cannot be enforced, instead of failing.
    pub degraded_ok: bool,
    /// Whether (and when) to ask systemd for a transient scope.
    pub manager: ManagerMode,
    /// The scope's Description (the profile and the command).
    pub description: &'a str,
    /// Who launches it, written to [`LAUNCHER_XATTR`] (see [`crate::gc`]).
    pub launcher_tag: &'a str,
}

/// Creates the agent cgroup (finding the hierarchy first). Where that fails and the request may
/// degrade, returns no cgroup and what runs unenforced without it.
pub fn create_or_degrade(
    req: &Request,
) -> Result<(Option<AgentCgroup>, Vec<Unenforced>), CgroupError> {
    match Hierarchy::discover().and_then(|h| AgentCgroup::create(&h, req)) {
        Ok((cg, unenforced)) => Ok((Some(cg), unenforced)),
        Err(e) if req.degraded_ok => Ok((None, limits::without_cgroup(req.limits, e.to_string()))),
        Err(e) => Err(e),
    }
}

impl AgentCgroup {
    /// Creates the agent cgroup with its controllers and limits. Returns what is not enforced
    /// (only ever non-empty with `degraded_ok`). Checks everything it can before creating anything.
    pub fn create(
        h: &Hierarchy,
        req: &Request,
    ) -> Result<(AgentCgroup, Vec<Unenforced>), CgroupError> {
        let (h, layout, in_own_scope) = &site(h, req)?;
        let parent_dir = h.path(&layout.parent);
        if !parent_dir.is_dir() {
            return Err(CgroupError::ParentMissing { path: parent_dir });
        }
        let available = Available::read(&parent_dir)?;
        let mut choice = Choice::new(
            &available,
            req.limits,
            &parent_dir,
            req.degraded_ok,
            |controllers, available| CgroupError::MissingControllers {
                controllers,
                needed_by: format!("profile `{}`", req.profile),
                parent: parent_dir.clone(),
                available,
                fix: h.controller_fix(&layout.parent),
            },
        )?;
        if let Some(r) = &layout.room {
            // Our own cgroup is ours to arrange (a delegated unit, a container's root): leave it
            // for a leaf, with whatever else runs there, so that it may pass controllers down.
            room::clear(&h.path(r.cgroup()), r.leaf())?;
            tracing::debug!("moved into {}", h.path(&r.leaf_cgroup()).display());
        }
        let controllers = choice.enable_down(h, layout, req.degraded_ok)?;
        let rel = super::discover::join(layout.agents(), req.id);
        let (dir, fd) = make_leaf(h, &rel, req.launcher_tag)?;
        let mut cg = AgentCgroup {
            rel,
            dir,
            fd,
            controllers,
            limits_applied: Limits::default(),
            removed: false,
            in_own_scope: *in_own_scope,
        };
        // From here on, drop removes the leaf on any error.
        let mut unenforced = choice.unenforced;
        cg.apply_limits(&choice.limits, req.degraded_ok, &mut unenforced)?;
        cg.limits_applied = choice.limits;
        Ok((cg, unenforced))
    }
}

/// Where the agent goes: our hierarchy (seen from the transient scope we were moved into, if so),
/// the layout, and whether that scope is ours.
fn site(h: &Hierarchy, req: &Request) -> Result<(Hierarchy, Layout, bool), CgroupError> {
    if let Some(p) = req.parent {
        return Ok((h.clone(), Layout::given(p)?, false));
    }
    let (placement, own) = place::resolve(h, req)?;
    let in_own_scope = own.is_some();
    let h = match own {
        Some(own) => Hierarchy { own, ..h.clone() },
        None => h.clone(),
    };
    let layout = Layout::of(&h, placement)?;
    Ok((h, layout, in_own_scope))
}

/// Creates the agent's own cgroup `rel`, tagged with its launcher, and opens it.
fn make_leaf(
    h: &Hierarchy,
    rel: &str,
    launcher_tag: &str,
) -> Result<(std::path::PathBuf, OwnedFd), CgroupError> {
    let dir = h.path(rel);
    fs::create_dir(&dir).map_err(io_err("create", &dir))?;
    // Who launched it, for `synwire-run gc` after a launcher was killed (user xattrs on
    // cgroupfs: Linux 5.7+; without them gc cannot tell and keeps a populated cgroup).
    if let Err(e) = crate::sys::setxattr(&dir, LAUNCHER_XATTR, launcher_tag.as_bytes()) {
        tracing::debug!("cannot tag {} with its launcher: {e}", dir.display());
    }
    match open_dir(&dir) {
        Ok(fd) => Ok((dir, fd)),
        Err(e) => {
            let _ = fs::remove_dir(&dir);
            Err(e)
        }
    }
}

fn open_dir(dir: &std::path::Path) -> Result<OwnedFd, CgroupError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(io_err("open", dir))
}
