//! The read-only view of `[filesystem]` ([`crate::view`]), built by the agent's child in its new
//! mount namespace (already private, so nothing propagates to the host), before /proc and
//! cgroup2 are mounted there.

use rustix::mount::MountFlags;

use super::raw;
use crate::ns::Step;
use crate::view::ViewPlan;

/// Builds the view: every mount read-only, then the write paths writable, then a private /tmp,
/// then the hide paths covered (a hide path wins over a write path it contains), then the
/// working directory entered again (under a write path it is the bind now). Errors are
/// the step and its errno; a working directory that is gone inside (it was in /tmp) is Ok(Some).
pub(crate) fn build(v: &ViewPlan) -> Result<Option<i32>, (Step, i32)> {
    for m in &v.read_only {
        // A mount point we cannot reach (EACCES, ENOENT), or where another mount covers the one
        // listed (EINVAL: the path is no mount's root), is not a mount the agent can reach there:
        // the mount it reaches instead has an entry of its own.
        let flags = match raw::mount_flags(m) {
            Ok(f) => f,
            Err(libc::EACCES | libc::ENOENT) => continue,
            Err(e) => return Err((Step::ViewReadOnly, e)),
        };
        match raw::remount_bind(m, flags | MountFlags::RDONLY) {
            Ok(()) | Err(libc::EACCES | libc::ENOENT | libc::EINVAL) => {}
            Err(e) => return Err((Step::ViewReadOnly, e)),
        }
    }
    for w in &v.write {
        raw::bind_onto_itself(w).map_err(|e| (Step::ViewWrite, e))?;
        // The bind has the flags of the read-only mount it came from: keep all but read-only.
        let flags = raw::mount_flags(w).map_err(|e| (Step::ViewWrite, e))?;
        raw::remount_bind(w, flags - MountFlags::RDONLY).map_err(|e| (Step::ViewWrite, e))?;
    }
    if let Some(tmp) = &v.tmp {
        // Its pages are charged to the agent's cgroup: the memory limit bounds it.
        raw::mount(
            &v.tmpfs,
            tmp,
            &v.tmpfs,
            MountFlags::NOSUID | MountFlags::NODEV,
        )
        .map_err(|e| (Step::ViewTmp, e))?;
        // Landlock follows a path up past a mount without looking at the directory it covers:
        // the private /tmp needs a rule of its own to be writable, and gets one, as private.
        if let Some((ruleset, access)) = v.tmp_rule {
            raw::landlock_add_path_rule(ruleset, tmp, access).map_err(|e| (Step::ViewTmp, e))?;
        }
    }
    hide(v).map_err(|e| (Step::ViewHide, e))?;
    if let Some(cwd) = &v.cwd {
        if let Err(e) = raw::chdir(cwd) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Covers the hidden paths: the files first (a hidden directory may hold one), each with a
/// read-only bind of an empty file; then the directories, each with an empty read-only tmpfs.
/// The empty file is made on a tmpfs mounted on /proc for the moment it takes, then detached:
/// the binds keep its file system alive, and nothing of it stays in sight.
fn hide(v: &ViewPlan) -> Result<(), i32> {
    let sealed = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if !v.hide_files.is_empty() {
        raw::mount(&v.tmpfs, &v.staging, &v.tmpfs, sealed)?;
        let bound = bind_empty_file(v);
        raw::unmount_detach(&v.staging)?;
        bound?;
    }
    for d in &v.hide_dirs {
        raw::mount_data(
            &v.tmpfs,
            d,
            &v.tmpfs,
            sealed | MountFlags::RDONLY,
            &v.hide_data,
        )?;
    }
    Ok(())
}

/// Binds the staging file, read-only, over every hidden file.
fn bind_empty_file(v: &ViewPlan) -> Result<(), i32> {
    raw::create_empty_file(&v.staging_file)?;
    for f in &v.hide_files {
        raw::bind(&v.staging_file, f)?;
        let flags = raw::mount_flags(f)?;
        raw::remount_bind(f, flags | MountFlags::RDONLY)?;
    }
    Ok(())
}
