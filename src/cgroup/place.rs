//! Where the agents go, decided before anything is created, by one analysis that a run and
//! `synwire-run check` share: the placement rule of [`delegate`], the user manager asked about
//! `Delegate=` where it marks nothing, and whether a transient scope is needed ([`decide`]); then
//! the cgroups that make up the place and what must move out of the way first ([`Layout`]). Only a
//! run starts the scope (`resolve`).

use std::time::Instant;

use super::delegate::{self, Placement, Step};
use super::discover::{self, join};
use super::{room, CgroupError, Hierarchy, Request, AGENTS_SUBDIR};
use crate::profile::ManagerMode;
use crate::systemd::scope::{self, Manager};

/// What the analysis decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The placement stands (after asking the user manager, where the rule says so).
    Keep(Placement),
    /// Ask systemd for a transient scope with delegation and nest in it; `placement` is what
    /// would stand without one.
    Scope { placement: Placement, why: ScopeWhy },
}

/// Why a run asks for a transient scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeWhy {
    /// `--scope` or `[cgroup] manager = "systemd"`.
    Asked,
    /// A login session, or anything else of a user's slice outside its user manager.
    Session,
    /// A unit of our user manager that has no `Delegate=yes` (or could not be asked).
    NoDelegate,
}

/// Decides, as a run would, where the agents of a launch from our cgroup go under `mode`.
pub fn decide(h: &Hierarchy, mode: ManagerMode) -> Decision {
    let placement = h.placement();
    let step = delegate::systemd_step(
        &placement,
        &h.own,
        mode,
        delegate::systemd_booted(),
        nix::unistd::geteuid().as_raw(),
        |rel| delegate::is_delegated(&h.path(rel)),
    );
    let (uid, iface, then_scope) = match step {
        Step::Keep => return Decision::Keep(placement),
        Step::Scope if mode == ManagerMode::Systemd => {
            let why = ScopeWhy::Asked;
            return Decision::Scope { placement, why };
        }
        Step::Scope => {
            let why = ScopeWhy::Session;
            return Decision::Scope { placement, why };
        }
        Step::AskDelegate {
            uid,
            iface,
            then_scope,
        } => (uid, iface, then_scope),
    };
    match scope::unit_delegates(Manager::User(uid), std::process::id(), iface) {
        Ok(true) => {
            tracing::debug!("the user manager says {} has Delegate=yes", h.own);
            Decision::Keep(Placement::Nest(h.own.clone()))
        }
        Ok(false) if !then_scope => Decision::Keep(placement),
        Err(tried) if !then_scope => {
            tracing::debug!("cannot ask the user manager about Delegate=: {tried}");
            Decision::Keep(placement)
        }
        _ => Decision::Scope {
            placement,
            why: ScopeWhy::NoDelegate,
        },
    }
}

/// The placement a run uses, with the transient scope started where [`decide`] says so. Returns
/// our new own cgroup when we were moved into a scope.
pub(super) fn resolve(
    h: &Hierarchy,
    req: &Request,
) -> Result<(Placement, Option<String>), CgroupError> {
    match decide(h, req.manager) {
        Decision::Keep(placement) => Ok((placement, None)),
        Decision::Scope { placement, .. } => {
            let own = start_scope(h, req, &placement)?;
            Ok((Placement::Nest(own.clone()), Some(own)))
        }
    }
}

/// Asks systemd for `synwire-<id>.scope` with delegation, moving synwire-run into it; returns
/// our cgroup there. `placement` is what stands without a scope, for the error.
fn start_scope(h: &Hierarchy, req: &Request, placement: &Placement) -> Result<String, CgroupError> {
    let refusal = || match placement {
        Placement::Refuse { own, parent } => CgroupError::NotDelegatedUnit {
            own: h.path(own),
            parent: h.path(parent),
        }
        .to_string(),
        _ => "--scope or `[cgroup] manager = \"systemd\"` asks for a transient scope".into(),
    };
    let manager = Manager::for_euid(nix::unistd::geteuid().as_raw());
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
    if let Err(tried) = started {
        return Err(CgroupError::NoScope {
            refusal: refusal(),
            manager: manager.name(),
            tried: tried.to_string(),
        });
    }
    let text = crate::sys::read_file("/proc/self/cgroup").map_err(|source| CgroupError::Proc {
        path: "/proc/self/cgroup".into(),
        source,
    })?;
    let own = discover::parse_own_cgroup(&text).ok_or(CgroupError::NoOwnCgroup)?;
    if !own.ends_with(&format!("/{unit}")) {
        return Err(CgroupError::NoScope {
            refusal: refusal(),
            manager: manager.name(),
            tried: format!("{unit} started, but synwire-run is still in {own}"),
        });
    }
    tracing::debug!(
        "in transient scope {unit} after {:?} ({} status {unit})",
        asked.elapsed(),
        manager.systemctl()
    );
    Ok(own)
}

/// A cgroup whose processes move into a leaf of it first, so that it may pass controllers down
/// (see [`room`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Room {
    /// The root of a container's cgroup namespace: we and whatever runs beside us move into
    /// `init`.
    NamespaceRoot(String),
    /// Our own delegated unit: we (and anything beside us) move into its `supervisor` leaf.
    Unit(String),
}

impl Room {
    /// The cgroup to clear, relative to the mount.
    pub fn cgroup(&self) -> &str {
        match self {
            Room::NamespaceRoot(cg) | Room::Unit(cg) => cg,
        }
    }

    /// The leaf its processes move into.
    pub fn leaf(&self) -> &'static str {
        match self {
            Room::NamespaceRoot(_) => room::NS_ROOT_LEAF,
            Room::Unit(_) => delegate::SUPERVISOR_LEAF,
        }
    }

    /// The leaf, relative to the mount.
    pub fn leaf_cgroup(&self) -> String {
        join(self.cgroup(), self.leaf())
    }
}

/// The cgroups of a place, relative to the mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The agents' parent.
    pub parent: String,
    /// The cgroups that pass the controllers down, from the parent to the agents directory (the
    /// parent alone for `--cgroup-parent`).
    pub levels: Vec<String>,
    /// What must move out of the way first.
    pub room: Option<Room>,
}

impl Layout {
    /// `--cgroup-parent`: the agents go directly below it.
    pub fn given(parent: &str) -> Result<Layout, CgroupError> {
        let p = discover::normalise(parent).ok_or_else(|| CgroupError::BadParent(parent.into()))?;
        Ok(Layout {
            parent: p.clone(),
            levels: vec![p],
            room: None,
        })
    }

    /// A placement's: the agents go to `<parent>/synwire/agents`.
    pub fn of(h: &Hierarchy, placement: Placement) -> Result<Layout, CgroupError> {
        let (parent, room) = match placement {
            // The root of a container's cgroup namespace needs room; the host's real root not.
            Placement::Parent(p) if h.own == "/" && room::is_namespace_root(&h.mount) => {
                (p.clone(), Some(Room::NamespaceRoot(p)))
            }
            Placement::Parent(p) => (p, None),
            Placement::Nest(own) => (own.clone(), Some(Room::Unit(own))),
            Placement::Refuse { own, parent } => {
                return Err(CgroupError::NotDelegatedUnit {
                    own: h.path(&own),
                    parent: h.path(&parent),
                })
            }
        };
        let synwire = join(&parent, "synwire");
        let agents = join(&parent, AGENTS_SUBDIR);
        Ok(Layout {
            parent: parent.clone(),
            levels: vec![parent, synwire, agents],
            room,
        })
    }

    /// The agents directory, relative to the mount.
    pub fn agents(&self) -> &str {
        self.levels.last().expect("at least the parent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hierarchy(mount: &std::path::Path, own: &str) -> Hierarchy {
        Hierarchy {
            mount: mount.to_path_buf(),
            own: own.into(),
            v1_controllers: Vec::new(),
        }
    }

    #[test]
    fn a_given_parent_holds_the_agents_directly() {
        let l = Layout::given("/synwire.slice/").unwrap();
        assert_eq!(l.parent, "/synwire.slice");
        assert_eq!(l.levels, ["/synwire.slice"]);
        assert_eq!((l.agents(), &l.room), ("/synwire.slice", &None));
        assert!(matches!(
            Layout::given("/a/../b"),
            Err(CgroupError::BadParent(_))
        ));
    }

    #[test]
    fn a_placement_puts_the_agents_two_levels_below_its_parent_with_the_room_it_needs() {
        let t = tempfile::tempdir().unwrap();
        let h = hierarchy(t.path(), "/user.slice/user-1000.slice/session-2.scope");
        let l = Layout::of(&h, Placement::Parent("/user.slice/user-1000.slice".into())).unwrap();
        assert_eq!(
            l.levels,
            [
                "/user.slice/user-1000.slice",
                "/user.slice/user-1000.slice/synwire",
                "/user.slice/user-1000.slice/synwire/agents"
            ]
        );
        assert_eq!(l.room, None);

        let unit = "/system.slice/agent.service";
        let l = Layout::of(&h, Placement::Nest(unit.into())).unwrap();
        assert_eq!(l.agents(), "/system.slice/agent.service/synwire/agents");
        let room = l.room.unwrap();
        assert_eq!(room, Room::Unit(unit.into()));
        assert_eq!(room.leaf_cgroup(), "/system.slice/agent.service/supervisor");

        let refused = Placement::Refuse {
            own: unit.into(),
            parent: "/system.slice".into(),
        };
        let e = Layout::of(&h, refused).unwrap_err();
        assert!(matches!(e, CgroupError::NotDelegatedUnit { .. }), "{e}");
    }

    #[test]
    fn the_root_of_a_cgroup_namespace_needs_room_and_the_real_root_not() {
        let t = tempfile::tempdir().unwrap();
        let h = hierarchy(t.path(), "/");
        let l = Layout::of(&h, Placement::Parent("/".into())).unwrap();
        assert_eq!((l.agents(), &l.room), ("/synwire/agents", &None));
        std::fs::write(t.path().join("cgroup.events"), "populated 1\n").unwrap();
        let l = Layout::of(&h, Placement::Parent("/".into())).unwrap();
        let room = l.room.unwrap();
        assert_eq!(room, Room::NamespaceRoot("/".into()));
        assert_eq!(h.path(&room.leaf_cgroup()), t.path().join("init"));
    }
}
