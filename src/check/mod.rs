//! `synwire-run check`: diagnoses this host in one command. One line per check, OK / WARN /
//! FAIL, each WARN and FAIL with its fix (each distinct fix printed once); exit 0 only when the
//! `small` profile would run enforced. The findings come from the analyses a launch makes: the
//! placement and the controllers from [`crate::cgroup`], the user-namespace obstacles from
//! [`crate::ns`], kernel features from probes ([`crate::probe`]).

mod cgroup;
mod features;
mod render;

use serde::Serialize;

pub use render::render;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Level,
    pub detail: String,
    pub fix: Option<String>,
}

fn ok(check: &'static str, detail: String) -> Check {
    Check {
        check,
        status: Level::Ok,
        detail,
        fix: None,
    }
}

fn warn(check: &'static str, detail: String, fix: &str) -> Check {
    Check {
        check,
        status: Level::Warn,
        detail,
        fix: Some(fix.into()),
    }
}

fn fail(check: &'static str, detail: String, fix: String) -> Check {
    Check {
        check,
        status: Level::Fail,
        detail,
        fix: Some(fix),
    }
}

/// Runs every check.
pub fn run_checks() -> Vec<Check> {
    let mut out = Vec::new();
    let Some((h, parent)) = cgroup::findings(&mut out) else {
        return out;
    };
    out.extend(features::features(&h, parent.as_deref()));
    out.push(user_namespaces());
    out.push(network_namespace());
    out.push(match crate::landlock::abi_version() {
        Ok(abi) => ok("landlock", crate::landlock::abi_detail(abi)),
        Err(e) => warn(
            "landlock",
            format!("unavailable ({e})"),
            "Linux 5.13+ with landlock in the LSM list; [filesystem] best_effort runs without it",
        ),
    });
    out
}

/// Whether an unprivileged agent may have namespaces, from the analysis a launch refuses by.
fn user_namespaces() -> Check {
    use crate::ns::UsernsObstacle;
    let name = "user namespaces";
    match crate::ns::userns_obstacle() {
        Some(UsernsObstacle::NotBuilt) => warn(
            name,
            "not built into this kernel".into(),
            "namespaces need root",
        ),
        Some(UsernsObstacle::NoneAllowed) => warn(
            name,
            "disabled: user.max_user_namespaces=0".into(),
            "raise user.max_user_namespaces",
        ),
        Some(UsernsObstacle::UnprivilegedOff) => warn(
            name,
            "unprivileged ones disabled: kernel.unprivileged_userns_clone=0".into(),
            "sysctl kernel.unprivileged_userns_clone=1",
        ),
        Some(UsernsObstacle::AppArmor) => warn(
            name,
            "AppArmor restricts unprivileged ones".into(),
            "load the AppArmor profile granting synwire-run `userns` (the Debian package installs /etc/apparmor.d/synwire-run), or set kernel.apparmor_restrict_unprivileged_userns=0",
        ),
        None => ok(
            name,
            format!(
                "available (max {})",
                crate::probe::sysctl("/proc/sys/user/max_user_namespaces").unwrap_or_default()
            ),
        ),
    }
}

/// Whether `--network none` and `proxy` work for this caller: a network namespace, created in a
/// user namespace without CAP_SYS_ADMIN, as a launch would (probed by creating one).
fn network_namespace() -> Check {
    use crate::ns::{CLONE_NEWNET, CLONE_NEWUSER};
    let name = "network none/proxy";
    let privileged = crate::security::has_cap_sys_admin();
    let flags = if privileged {
        CLONE_NEWNET
    } else {
        CLONE_NEWUSER | CLONE_NEWNET
    };
    match crate::sys::probe_namespaces(flags) {
        Ok(()) if privileged => ok(name, "available (a network namespace)".into()),
        Ok(()) => ok(
            name,
            "available (a network namespace in a user namespace)".into(),
        ),
        Err(e) => {
            let ns = crate::ns::Namespaces {
                user: !privileged,
                net: true,
                ..Default::default()
            };
            // What `none` does instead for a caller refused the user namespace.
            let fallback = if privileged {
                String::new()
            } else {
                let landlock = crate::landlock::abi_version().is_ok_and(|abi| abi >= 4);
                format!(
                    "; `none` cuts the network with {}seccomp instead (AF_INET and AF_INET6 sockets refused), `proxy` is refused",
                    if landlock { "Landlock (TCP) and " } else { "" }
                )
            };
            match crate::ns::create_error(&ns, e, privileged) {
                crate::ns::NsError::Create { source, fix, .. } => warn(
                    name,
                    format!("no network namespace here ({source}){fallback}"),
                    &fix,
                ),
                other => warn(
                    name,
                    format!("no network namespace{fallback}"),
                    &other.to_string(),
                ),
            }
        }
    }
}

/// Prints the checks; the exit code is 0 when nothing FAILed.
pub fn report(json: bool) -> (String, i32) {
    let checks = run_checks();
    let code = if checks.iter().any(|c| c.status == Level::Fail) {
        1
    } else {
        0
    };
    if json {
        let mut s = serde_json::to_string_pretty(&checks).expect("serialises");
        s.push('\n');
        return (s, code);
    }
    (render(&checks), code)
}
