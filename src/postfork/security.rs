//! Least privilege in the agent's child, just before execve: the [`SecPlan`] resolved before
//! fork, applied with one system call per step.

use super::raw;
use crate::ns::Step;
use crate::security::SecPlan;

/// Applies `p` in order: rlimits, the bounding set, the user and group switch, the kept
/// capabilities, no_new_privs, Landlock (and its network cut). The first failure, with its step and errno.
pub(super) fn apply(p: &SecPlan) -> Result<(), (Step, i32)> {
    for &(res, value) in &p.rlimits {
        raw::setrlimit(res, value).map_err(|e| (Step::Rlimit, e))?;
    }
    for &cap in &p.drop_bounding {
        raw::capbset_drop(cap).map_err(|e| (Step::Capabilities, e))?;
    }
    if let Some((uid, gid)) = p.switch {
        if p.keep.is_some_and(|k| k != 0) {
            // Keep the permitted set across setuid so the kept capabilities survive it.
            raw::keep_caps().map_err(|e| (Step::Capabilities, e))?;
        }
        raw::setgroups_empty().map_err(|e| (Step::SwitchUser, e))?;
        raw::setgid(gid).map_err(|e| (Step::SwitchUser, e))?;
        raw::setuid(uid).map_err(|e| (Step::SwitchUser, e))?;
    }
    if let Some(keep) = p.keep {
        raw::clear_ambient().map_err(|e| (Step::Capabilities, e))?;
        raw::capset(keep).map_err(|e| (Step::Capabilities, e))?;
        // Ambient: what a non-root program keeps across execve.
        for cap in 0..64u32 {
            if keep & (1 << cap) != 0 {
                raw::raise_ambient(cap).map_err(|e| (Step::Capabilities, e))?;
            }
        }
    }
    // Landlock needs no_new_privs (or CAP_SYS_ADMIN): a ruleset always brings it.
    if p.no_new_privs || p.landlock.is_some() || p.landlock_net.is_some() {
        raw::no_new_privs().map_err(|e| (Step::NoNewPrivs, e))?;
    }
    // Two layers at most: [filesystem], then the network cut; each restricts on its own.
    for fd in [p.landlock, p.landlock_net].into_iter().flatten() {
        raw::landlock_restrict_self(fd).map_err(|e| (Step::Landlock, e))?;
    }
    Ok(())
}
