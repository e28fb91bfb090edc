//! The cgroup findings: the hierarchy, our cgroup, where a run would place its agents (by the
//! analysis a run makes, [`place::decide`]), the controllers the agents' parent offers
//! ([`Available`], as a run reads them) and whether we may write there.

use super::{fail, ok, warn, Check};
use crate::cgroup::place::{self, Decision, Layout, Room, ScopeWhy};
use crate::cgroup::{count_procs, delegate, Available, Controller, Hierarchy};
use crate::profile::ManagerMode;
use crate::systemd::scope::Manager;

/// Pushes the cgroup findings; returns the hierarchy and the agents' parent (None where a run
/// would not place them by itself), or None without a cgroup v2 hierarchy.
pub(super) fn findings(out: &mut Vec<Check>) -> Option<(Hierarchy, Option<String>)> {
    let h = match Hierarchy::discover() {
        Ok(h) => h,
        Err(e) => {
            out.push(fail(
                "cgroup2",
                "no cgroup v2 hierarchy".into(),
                e.to_string(),
            ));
            return None;
        }
    };
    if h.v1_controllers.is_empty() {
        out.push(ok("cgroup2", format!("{} (unified)", h.mount.display())));
    } else {
        out.push(warn(
            "cgroup2",
            format!(
                "{} (hybrid: cgroup v1 holds {})",
                h.mount.display(),
                h.v1_controllers.join(" ")
            ),
            "boot with systemd.unified_cgroup_hierarchy=1 so cgroup v2 gets the controllers",
        ));
    }
    out.push(ok("own cgroup", h.own.clone()));
    let parent = placement(&h, out);
    if let Some(p) = &parent {
        controllers(&h, p, out);
        out.push(delegation(&h, p));
    }
    Some((h, parent))
}

/// The placement finding, as a run from here would decide it; returns the agents' parent.
fn placement(h: &Hierarchy, out: &mut Vec<Check>) -> Option<String> {
    let name = "placement";
    let placement = match place::decide(h, ManagerMode::Auto) {
        Decision::Keep(p) => p,
        Decision::Scope { why, .. } => {
            out.push(ok(name, scope_detail(&h.own, why)));
            return None;
        }
    };
    let layout = match Layout::of(h, placement) {
        Ok(l) => l,
        Err(refusal) => {
            let detail = "refused: a systemd unit without delegation".into();
            out.push(fail(name, detail, refusal.to_string()));
            return None;
        }
    };
    let agents = h.path(layout.agents());
    let agents = agents.display();
    let detail = match &layout.room {
        Some(r @ Room::NamespaceRoot(root)) => {
            let others = count_procs(&h.path(root)).map_or(0, |n| n.saturating_sub(1));
            format!(
                "a container's cgroup namespace root: synwire-run moves into {} with the {others} other process(es) there, agents go to {agents}",
                h.path(&r.leaf_cgroup()).display(),
            )
        }
        Some(r @ Room::Unit(_)) => format!(
            "delegated unit: synwire-run moves into {}, agents go to {agents}",
            h.path(&r.leaf_cgroup()).display(),
        ),
        None if delegate::systemd_booted() => format!("agents go to {agents} (under systemd)"),
        None => format!("agents go to {agents}"),
    };
    out.push(ok(name, detail));
    Some(layout.parent)
}

/// What each run does where the placement needs a transient scope of systemd's.
fn scope_detail(own: &str, why: ScopeWhy) -> String {
    let manager = Manager::for_euid(nix::unistd::geteuid().as_raw()).name();
    let what = match why {
        ScopeWhy::Session => format!("{own} is a login session"),
        ScopeWhy::NoDelegate => format!("{own} has no Delegate=yes"),
        ScopeWhy::Asked => "[cgroup] manager is \"systemd\"".into(),
    };
    format!("{what}: each run asks {manager} for a transient scope with delegation (synwire-<id>.scope in synwire.slice) and nests there; --no-scope refuses instead")
}

/// The controllers the agents' parent offers: those the limits need, and io.
fn controllers(h: &Hierarchy, parent: &str, out: &mut Vec<Check>) {
    let dir = h.path(parent);
    let available = Available::read(&dir).unwrap_or_default();
    for c in Controller::ALL.map(Controller::name) {
        if available.has(c) {
            out.push(ok(
                "controller",
                format!("{c} available in {}", dir.display()),
            ));
        } else {
            out.push(fail(
                "controller",
                format!("{c} missing in {}", dir.display()),
                h.controller_fix(parent),
            ));
        }
    }
    if available.has("io") {
        out.push(ok(
            "controller",
            format!("io available in {}", dir.display()),
        ));
    } else {
        out.push(warn(
            "controller",
            format!("io missing in {}", dir.display()),
            "only needed by io limits; delegate it like the others",
        ));
    }
}

/// Whether we may create cgroups and enable controllers in the agents' parent.
fn delegation(h: &Hierarchy, parent: &str) -> Check {
    use nix::unistd::{access, geteuid, AccessFlags};
    let dir = h.path(parent);
    if access(&dir.join("cgroup.subtree_control"), AccessFlags::W_OK).is_ok()
        && access(&dir, AccessFlags::W_OK).is_ok()
    {
        ok(
            "delegation",
            format!("{} is writable by uid {}", dir.display(), geteuid()),
        )
    } else {
        fail(
            "delegation",
            format!("{} is not writable by uid {}", dir.display(), geteuid()),
            "run inside a delegated unit (systemd-run --user --scope -p Delegate=yes), or pass --cgroup-parent to a cgroup you own".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_session_is_told_that_each_run_gets_a_scope() {
        let d = scope_detail(
            "/user.slice/user-1000.slice/session-2.scope",
            ScopeWhy::Session,
        );
        assert!(
            d.starts_with(
                "/user.slice/user-1000.slice/session-2.scope is a login session: each run asks "
            ),
            "{d}"
        );
        assert!(
            d.ends_with(" for a transient scope with delegation (synwire-<id>.scope in synwire.slice) and nests there; --no-scope refuses instead"),
            "{d}"
        );
        let d = scope_detail(
            "/user.slice/user-1000.slice/user@1000.service/app.slice/a.service",
            ScopeWhy::NoDelegate,
        );
        assert!(
            d.contains("a.service has no Delegate=yes: each run asks "),
            "{d}"
        );
    }
}
