//! Living under systemd: every cgroup outside a unit's delegated subtree belongs to systemd.
//! systemd marks a delegated cgroup with the `trusted.delegate` (and, for user managers,
//! `user.delegate`) extended attribute. When our own cgroup is delegated we nest: synwire-run moves
//! itself into `<own>/supervisor` (cgroup v2 lets only leaves hold processes) and the agents go
//! under `<own>/synwire/agents`. Under `DelegateSubgroup=supervisor` (systemd 254+) we start in
//! `<unit>/supervisor` already and the ordinary sibling rule lands inside the unit. Anything else
//! that would put agents directly under a systemd-owned `.slice` is refused with the unit lines to
//! add — except where [`systemd_step`] asks systemd for help: a login session gets a transient
//! scope with delegation (as `systemd-run --scope` would), and a unit of our user manager, which
//! on systemd 252 marks nothing, is asked about over D-Bus whether it has `Delegate=yes`.

use std::path::Path;

use super::discover::{default_parent, join};
use crate::profile::ManagerMode;

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

/// What to ask systemd, after [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing: the placement stands (no D-Bus at all).
    Keep,
    /// Ask for a transient scope with delegation and nest in it.
    Scope,
    /// Our unit runs under the user manager of this uid, which on systemd 252 marks no delegated
    /// cgroup: ask it whether our unit has `Delegate=yes` (then nest), with the unit type's
    /// D-Bus interface. `then_scope`: if not, a scope (the placement refused).
    AskDelegate {
        uid: u32,
        iface: &'static str,
        then_scope: bool,
    },
}

/// Decides whether systemd must help with `placement` of our cgroup `own`. `euid` is ours;
/// `delegated` as for [`decide`]. The rule, under systemd, in `auto`:
/// - a refusal in a login session or anything else of a user's `user-N.slice` outside its user
///   manager (`session-N.scope`, also after sudo or runuser) → a scope;
/// - our service inside our own user manager (`user@N.service/…/x.service`) without the mark →
///   ask the user manager whether it has `Delegate=yes` (a scope there keeps the sibling rule
///   without asking: launches from a desktop terminal pay nothing);
/// - a system unit without delegation (system.slice, machine.slice, …) → keep the refusal with
///   its unit lines: the fix belongs in the unit.
pub fn systemd_step(
    placement: &Placement,
    own: &str,
    mode: ManagerMode,
    systemd: bool,
    euid: u32,
    delegated: impl Fn(&str) -> bool,
) -> Step {
    match mode {
        ManagerMode::Cgroupfs => return Step::Keep,
        ManagerMode::Systemd => return Step::Scope,
        ManagerMode::Auto if !systemd => return Step::Keep,
        ManagerMode::Auto => {}
    }
    let refused = matches!(placement, Placement::Refuse { .. });
    let unit = own.rsplit('/').next().unwrap_or("");
    // A scope under the user manager (a desktop terminal's `vte-spawn-N.scope`, an app) is asked
    // about only when the placement is refused: the sibling rule already gives it a place inside
    // the user's delegated subtree, and every launch from a terminal would otherwise pay a D-Bus
    // round trip. A service (`systemctl --user`, `systemd-run --user`) is asked, so that a
    // `Delegate=yes` one holds its agents and its accounting shows them.
    let iface = if unit.ends_with(".service") {
        Some("org.freedesktop.systemd1.Service")
    } else if unit.ends_with(".scope") && refused {
        Some("org.freedesktop.systemd1.Scope")
    } else {
        None
    };
    if let (Some(uid), Some(iface), false) = (user_manager_uid(own), iface, delegated(own)) {
        if uid == euid && !matches!(placement, Placement::Nest(_)) {
            return Step::AskDelegate {
                uid,
                iface,
                then_scope: refused,
            };
        }
    }
    if refused && own.starts_with("/user.slice/") {
        return Step::Scope;
    }
    Step::Keep
}

/// The uid N when `own` lies inside `user@N.service` (below the manager's own cgroup).
fn user_manager_uid(own: &str) -> Option<u32> {
    let mut parts = own.split('/').skip_while(|p| !p.starts_with("user@"));
    let uid = parts
        .next()?
        .strip_prefix("user@")?
        .strip_suffix(".service")?;
    parts.next()?;
    uid.parse().ok()
}

/// The command that starts synwire-run in a delegated scope by hand, for this caller: root asks
/// PID 1; anyone else their user manager, which needs no password (PID 1 would ask polkit).
pub fn scope_hint() -> &'static str {
    if nix::unistd::geteuid().is_root() {
        "systemd-run --scope -p Delegate=yes synwire-run …"
    } else {
        "systemd-run --user --scope -p Delegate=yes synwire-run …"
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

    const SESSION: &str = "/user.slice/user-1000.slice/session-2.scope";

    fn step(own: &str, mode: ManagerMode, euid: u32, d: &'static [&'static str]) -> Step {
        let p = decide(own, true, marks(d));
        systemd_step(&p, own, mode, true, euid, marks(d))
    }

    #[test]
    fn a_login_session_asks_for_a_scope_as_root_and_as_a_user() {
        assert_eq!(step(SESSION, ManagerMode::Auto, 1000, &[]), Step::Scope);
        // sudo from a user's session, runuser -u from root's: the session is someone's, still a
        // user-N.slice; which manager answers follows the caller's uid.
        assert_eq!(step(SESSION, ManagerMode::Auto, 0, &[]), Step::Scope);
        assert_eq!(
            step(
                "/user.slice/user-0.slice/session-5.scope",
                ManagerMode::Auto,
                1000,
                &[]
            ),
            Step::Scope
        );
        // --no-scope / manager = "cgroupfs": today's refusal, no D-Bus.
        assert_eq!(step(SESSION, ManagerMode::Cgroupfs, 1000, &[]), Step::Keep);
        // Without systemd nothing is asked.
        let p = decide(SESSION, false, marks(&[]));
        assert_eq!(
            systemd_step(&p, SESSION, ManagerMode::Auto, false, 0, marks(&[])),
            Step::Keep
        );
    }

    #[test]
    fn a_system_service_without_delegation_keeps_its_refusal() {
        assert_eq!(
            step("/system.slice/agent.service", ManagerMode::Auto, 0, &[]),
            Step::Keep
        );
        assert_eq!(
            step("/machine.slice/x.scope", ManagerMode::Auto, 0, &[]),
            Step::Keep
        );
        // --scope / manager = "systemd" asks anyway.
        assert_eq!(
            step("/system.slice/agent.service", ManagerMode::Systemd, 0, &[]),
            Step::Scope
        );
    }

    #[test]
    fn a_unit_in_our_user_manager_without_the_mark_asks_about_delegate() {
        let m = &["/user.slice/user-1000.slice/user@1000.service"];
        let svc = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-u7.service";
        assert_eq!(
            step(svc, ManagerMode::Auto, 1000, m),
            Step::AskDelegate {
                uid: 1000,
                iface: "org.freedesktop.systemd1.Service",
                then_scope: false
            }
        );
        // A desktop terminal's scope has its place by the sibling rule: no D-Bus at all.
        let term = "/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope";
        assert_eq!(step(term, ManagerMode::Auto, 1000, m), Step::Keep);
        // Marked (a newer systemd): nest without asking.
        let both: &'static [&'static str] = &[
            "/user.slice/user-1000.slice/user@1000.service",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/run-u7.service",
        ];
        assert_eq!(step(svc, ManagerMode::Auto, 1000, both), Step::Keep);
        // Someone else's user manager is not ours to ask; a slice is no unit to ask about.
        assert_eq!(step(svc, ManagerMode::Auto, 0, m), Step::Keep);
        assert_eq!(
            step(
                "/user.slice/user-1000.slice/user@1000.service/app.slice",
                ManagerMode::Auto,
                1000,
                m
            ),
            Step::Keep
        );
        // The user manager's own cgroup is not inside it.
        assert_eq!(
            user_manager_uid("/user.slice/user-1000.slice/user@1000.service"),
            None
        );
        assert_eq!(user_manager_uid(svc), Some(1000));
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
