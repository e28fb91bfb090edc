//! Living under systemd: every cgroup outside a unit's delegated subtree belongs to systemd.
//! systemd marks a delegated cgroup with the `trusted.delegate` (and, for user managers,
//! `user.delegate`) extended attribute. When our own cgroup is delegated we nest: synwire-run moves
//! itself into `<own>/supervisor` (cgroup v2 lets only leaves hold processes) and the agents go
//! under `<own>/synwire/agents`. Under `DelegateSubgroup=supervisor` (systemd 254+) we start in
//! `<unit>/supervisor` already and the ordinary sibling rule lands inside the unit. Anything else
//! that would put agents directly under a systemd-owned `.slice` is refused with the unit lines to
//! add.

use std::path::Path;

use super::discover::{default_parent, join};

/// Where the agents' parent is, decided before anything is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Agents go under `<parent>/synwire/agents`.
    Parent(String),
    /// Our own cgroup is delegated: move into `<own>/supervisor`, agents under `<own>/synwire/agents`.
    Nest(String),
    /// Creating cgroups there would trespass on systemd's part of the tree.
    Refuse { own: String, parent: String },
}

/// True when systemd manages this system (sd_booted(3)).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// True when systemd marked `dir` as delegated.
pub fn is_delegated(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"]
        .iter()
        .any(|name| crate::sys::getxattr(dir, name).is_some_and(|v| v.first() == Some(&b'1')))
}

/// Decides the placement for our cgroup `own` (relative). `delegated(rel)` says whether a cgroup
/// carries systemd's delegation mark.
pub fn decide(own: &str, systemd: bool, delegated: impl Fn(&str) -> bool) -> Placement {
    let parent = default_parent(own);
    if !systemd || own == "/" {
        return Placement::Parent(parent);
    }
    if delegated(own) {
        return Placement::Nest(own.to_string());
    }
    // DelegateSubgroup=supervisor: our parent is the delegated unit.
    if own.ends_with("/supervisor") && delegated(&parent) {
        return Placement::Parent(parent);
    }
    let last = parent.rsplit('/').next().unwrap_or("");
    if last.ends_with(".slice") && !within_delegated(&parent, &delegated) {
        return Placement::Refuse {
            own: own.to_string(),
            parent,
        };
    }
    Placement::Parent(parent)
}

/// True when `cg` or one of its ancestors is delegated (a user manager's subtree, a unit's).
fn within_delegated(cg: &str, delegated: &impl Fn(&str) -> bool) -> bool {
    let mut c = cg.to_string();
    loop {
        if delegated(&c) {
            return true;
        }
        if c == "/" {
            return false;
        }
        c = default_parent(&c);
    }
}

/// The leaf of a delegated unit that synwire-run (and anything beside it) moves into.
pub const SUPERVISOR_LEAF: &str = "supervisor";

/// The cgroup synwire-run moves itself into when nesting.
pub fn supervisor(own: &str) -> String {
    join(own, SUPERVISOR_LEAF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(list: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |c| list.contains(&c)
    }

    #[test]
    fn a_terminal_in_a_user_manager_uses_the_sibling_rule() {
        let own = "/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope";
        let d = marks(&["/user.slice/user-1000.slice/user@1000.service"]);
        assert_eq!(
            decide(own, true, d),
            Placement::Parent("/user.slice/user-1000.slice/user@1000.service/app.slice".into())
        );
    }

    #[test]
    fn a_delegated_service_nests() {
        let own = "/system.slice/agent.service";
        assert_eq!(
            decide(own, true, marks(&["/system.slice/agent.service"])),
            Placement::Nest(own.into())
        );
        assert_eq!(supervisor(own), "/system.slice/agent.service/supervisor");
    }

    #[test]
    fn delegate_subgroup_supervisor_lands_inside_the_unit() {
        let own = "/system.slice/agent.service/supervisor";
        assert_eq!(
            decide(own, true, marks(&["/system.slice/agent.service"])),
            Placement::Parent("/system.slice/agent.service".into())
        );
    }

    #[test]
    fn a_service_without_delegation_is_refused() {
        let own = "/system.slice/agent.service";
        assert_eq!(
            decide(own, true, marks(&[])),
            Placement::Refuse {
                own: own.into(),
                parent: "/system.slice".into()
            }
        );
        // An ssh session's scope: its parent is systemd's user-1000.slice.
        assert!(matches!(
            decide(
                "/user.slice/user-1000.slice/session-2.scope",
                true,
                marks(&[])
            ),
            Placement::Refuse { .. }
        ));
    }

    #[test]
    fn without_systemd_or_at_the_root_the_sibling_rule_holds() {
        assert_eq!(
            decide("/system.slice/x.service", false, marks(&[])),
            Placement::Parent("/system.slice".into())
        );
        assert_eq!(decide("/", true, marks(&[])), Placement::Parent("/".into()));
        assert_eq!(
            decide("/init.scope", true, marks(&[])),
            Placement::Parent("/".into())
        );
    }
}
