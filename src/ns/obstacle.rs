//! What stands in the way of namespaces here, known before anything is created: our
//! capabilities and the user-namespace sysctls. One analysis for a launch (its refusal before
//! anything is created, and the fix in a failed clone's error) and for `synwire-run check`.

use std::io;
use std::path::Path;

use super::Namespaces;
use super::NsError;
use crate::probe::sysctl;

/// What keeps an unprivileged process from creating a user namespace here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernsObstacle {
    /// This kernel has no user namespaces (no /proc/self/ns/user).
    NotBuilt,
    /// `user.max_user_namespaces=0`: none for anyone.
    NoneAllowed,
    /// `kernel.unprivileged_userns_clone=0` (Debian's switch).
    UnprivilegedOff,
    /// `kernel.apparmor_restrict_unprivileged_userns=1` (Ubuntu's).
    AppArmor,
}

/// The first obstacle to an unprivileged user namespace, in the order their fixes must follow;
/// None when nothing stands in the way that the sysctls show.
pub fn userns_obstacle() -> Option<UsernsObstacle> {
    if !Path::new("/proc/self/ns/user").exists() {
        Some(UsernsObstacle::NotBuilt)
    } else if sysctl("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        Some(UsernsObstacle::NoneAllowed)
    } else if sysctl("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        Some(UsernsObstacle::UnprivilegedOff)
    } else if sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
        == Some("1")
        && apparmor_unconfined(&apparmor_label())
    {
        Some(UsernsObstacle::AppArmor)
    } else {
        None
    }
}

/// synwire-run's own AppArmor label: `unconfined`, or a profile's name and mode, such as
/// `synwire-run (unconfined)` once the profile the package installs is loaded. Empty where it
/// cannot be read.
fn apparmor_label() -> String {
    [
        "/proc/self/attr/apparmor/current",
        "/proc/self/attr/current",
    ]
    .iter()
    .find_map(|p| crate::sys::read_file(p).ok())
    .map(|l| l.trim_end_matches(['\n', '\0']).to_string())
    .unwrap_or_default()
}

/// Under Ubuntu's restriction only the unconfined get no user namespace without a rule: a
/// profile of ours (which grants `userns`) lets the clone decide, and its EPERM still names
/// AppArmor.
fn apparmor_unconfined(label: &str) -> bool {
    label.is_empty() || label == "unconfined"
}

/// Why the namespaces `ns` cannot be created here, with the fix, known from the sysctls and
/// `privileged` (CAP_SYS_ADMIN) before anything is created; None when nothing stands in the way
/// that we can see. A kernel without user namespaces is left to the clone, whose EINVAL says so.
fn known_obstacle(ns: &Namespaces, privileged: bool) -> Option<String> {
    if privileged {
        return None;
    }
    if !ns.user {
        return Some("creating namespaces needs CAP_SYS_ADMIN: add `user = true` to [namespaces] (or `--unshare user`) so they are created inside a user namespace, or run as root".into());
    }
    Some(match userns_obstacle()? {
        UsernsObstacle::NotBuilt => return None,
        UsernsObstacle::NoneAllowed => "user namespaces are disabled (user.max_user_namespaces=0): raise that sysctl, or run as root".into(),
        UsernsObstacle::UnprivilegedOff => "unprivileged user namespaces are disabled: `sysctl kernel.unprivileged_userns_clone=1` (and set it in /etc/sysctl.d), or run as root".into(),
        UsernsObstacle::AppArmor => "AppArmor restricts unprivileged user namespaces (Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1): load the AppArmor profile granting synwire-run `userns` (the Debian package installs it as /etc/apparmor.d/synwire-run; for a binary elsewhere copy /usr/share/synwire-run/apparmor/synwire-run, change its path and run apparmor_parser -r on it), set the sysctl to 0, or run as root".into(),
    })
}

/// Checks, before anything is created, that the namespaces asked for can be had here;
/// `privileged` says whether we have CAP_SYS_ADMIN (asked only when namespaces are).
pub fn preflight(ns: &Namespaces, privileged: impl FnOnce() -> bool) -> Result<(), NsError> {
    if !ns.any() {
        return Ok(());
    }
    match known_obstacle(ns, privileged()) {
        Some(fix) => Err(NsError::Create {
            names: ns.names().join(", "),
            source: io::Error::from_raw_os_error(libc::EPERM),
            fix,
        }),
        None => Ok(()),
    }
}

/// The error for a failed clone with namespace flags, with the cause and the fix;
/// `privileged`: we have CAP_SYS_ADMIN.
pub fn create_error(ns: &Namespaces, source: io::Error, privileged: bool) -> NsError {
    let names = ns.names().join(", ");
    let fix = match source.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EUSERS) => {
            "a namespace limit is exhausted: raise the sysctl user.max_user_namespaces (or the user.max_*_namespaces of the kind named), or end processes that hold namespaces".to_string()
        }
        Some(libc::EPERM) | Some(libc::EACCES) => known_obstacle(ns, privileged).unwrap_or_else(|| {
            "the kernel or a security module (seccomp, SELinux, AppArmor, a container runtime) forbids these namespaces here; run where they are allowed".into()
        }),
        Some(libc::EINVAL) => "this kernel does not support one of these namespaces (check its CONFIG_*_NS options)".into(),
        _ => "check that this kernel and sandbox allow these namespaces".into(),
    };
    NsError::Create { names, source, fix }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_of_our_own_lifts_ubuntus_restriction() {
        assert!(apparmor_unconfined("unconfined"));
        assert!(apparmor_unconfined(""));
        assert!(!apparmor_unconfined("synwire-run (unconfined)"));
        assert!(!apparmor_unconfined("synwire-run (enforce)"));
    }

    #[test]
    fn without_privilege_namespaces_need_a_user_namespace() {
        let ns = Namespaces {
            pid: true,
            ..Default::default()
        };
        let fix = known_obstacle(&ns, false).unwrap();
        assert!(
            fix.contains("CAP_SYS_ADMIN") && fix.contains("user = true"),
            "{fix}"
        );
        assert_eq!(known_obstacle(&ns, true), None);
        assert!(preflight(&Namespaces::default(), || unreachable!()).is_ok());
    }
}
