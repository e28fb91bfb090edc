//! Kernel features, asked of this kernel rather than read off its version (backports, seccomp
//! filters and missing controllers all make the version lie): clone3 with CLONE_INTO_CGROUP by a
//! probe, cgroup interface files by looking for them where they would be.

use std::path::PathBuf;

use super::{ok, warn, Check};
use crate::cgroup::{discover, Hierarchy};
use crate::probe::{probe_file, FileProbe};

/// The findings for every feature; `parent` is the agents' parent, where known.
pub(super) fn features(h: &Hierarchy, parent: Option<&str>) -> Vec<Check> {
    let dirs = probe_dirs(h, parent);
    vec![
        clone3_feature(crate::sys::clone3_into_cgroup_errno()),
        file_feature(
            "cgroup.kill",
            &dirs,
            ("cgroup.events", "cgroup below the root"),
            "teardown freezes and kills each process instead",
        ),
        file_feature(
            "memory.peak",
            &dirs,
            ("memory.current", "cgroup with the memory controller"),
            "the memory peak comes from wait4 (the largest process)",
        ),
        file_feature(
            "pids.peak",
            &dirs,
            ("pids.current", "cgroup with the pids controller"),
            "the tasks peak is reported as null",
        ),
    ]
}

/// The cgroup directories a probe may look in, nearest first: ours and its ancestors below the
/// root, the agents' parent with synwire/ and synwire/agents, then the root's children and the
/// root itself (a container's cgroup namespace root is not the real root and has every file).
fn probe_dirs(h: &Hierarchy, parent: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut own = h.own.trim_end_matches('/');
    while !own.is_empty() {
        dirs.push(h.path(own));
        own = own.rsplit_once('/').map_or("", |(up, _)| up);
    }
    if let Some(p) = parent {
        for rel in [
            p.to_string(),
            discover::join(p, "synwire"),
            discover::join(p, "synwire/agents"),
        ] {
            dirs.push(h.path(&rel));
        }
    }
    if let Ok(entries) = std::fs::read_dir(&h.mount) {
        let mut children: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        children.sort();
        dirs.extend(children);
    }
    dirs.push(h.mount.clone());
    dirs
}

/// The finding for a feature that is an interface file, probed in `dirs`; `anchor` names what
/// a directory must have to tell (`what` says it in words), `fallback` what synwire-run does
/// without the feature.
fn file_feature(
    name: &'static str,
    dirs: &[PathBuf],
    (anchor, what): (&str, &str),
    fallback: &str,
) -> Check {
    match probe_file(dirs, anchor, name) {
        FileProbe::Present(d) => ok(name, format!("yes (in {})", d.display())),
        FileProbe::Absent(d) => warn(name, format!("no (not in {})", d.display()), fallback),
        FileProbe::Nowhere => warn(
            name,
            format!("unknown: no {what} to look in (none has {anchor})"),
            fallback,
        ),
    }
}

const CLONE3_NAME: &str = "clone3 CLONE_INTO_CGROUP";
const CLONE3_FALLBACK: &str = "synwire-run falls back to fork and cgroup.procs (slower)";

/// The finding for what [`crate::sys::clone3_into_cgroup_errno`] answered.
fn clone3_feature(probe: std::io::Result<i32>) -> Check {
    use nix::errno::Errno;
    let errno = match probe {
        Ok(e) => e,
        Err(e) => {
            return warn(
                CLONE3_NAME,
                format!("unknown: cannot probe ({e})"),
                CLONE3_FALLBACK,
            )
        }
    };
    // The kernel took the flag and looked for the cgroup (0: it even started a process).
    if errno == libc::EBADF || errno == 0 {
        return ok(CLONE3_NAME, "yes (probed)".into());
    }
    let name = Errno::from_raw(errno);
    match name {
        Errno::EINVAL | Errno::E2BIG => warn(
            CLONE3_NAME,
            format!("no: clone3 refuses the flag ({name:?}), as kernels before 5.7 do"),
            CLONE3_FALLBACK,
        ),
        Errno::ENOSYS => warn(
            CLONE3_NAME,
            "no: no clone3 here (ENOSYS: a kernel before 5.3, or a seccomp filter)".into(),
            CLONE3_FALLBACK,
        ),
        Errno::EPERM | Errno::EACCES => warn(
            CLONE3_NAME,
            format!("no: clone3 is forbidden ({name:?}: a seccomp filter or a security module)"),
            CLONE3_FALLBACK,
        ),
        _ => warn(
            CLONE3_NAME,
            format!("unknown: the probe failed ({name:?})"),
            CLONE3_FALLBACK,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Level;

    #[test]
    fn a_feature_file_is_looked_for_where_its_anchor_is() {
        let t = tempfile::tempdir().unwrap();
        let dir = |name: &str, files: &[&str]| {
            let d = t.path().join(name);
            std::fs::create_dir(&d).unwrap();
            for f in files {
                std::fs::write(d.join(f), "").unwrap();
            }
            d
        };
        // The root has neither; a cgroup without the memory controller has no memory.current.
        let root = dir("root", &["cgroup.procs"]);
        let bare = dir("bare", &["cgroup.events", "cgroup.kill"]);
        let old = dir("old", &["memory.current", "cgroup.events"]);
        let new = dir("new", &["memory.current", "memory.peak"]);
        let probe = |dirs: &[&PathBuf], file| {
            let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
            probe_file(&dirs, "memory.current", file)
        };
        assert_eq!(
            probe(&[&root, &bare, &new], "memory.peak"),
            FileProbe::Present(new.clone())
        );
        assert_eq!(
            probe(&[&bare, &old, &new], "memory.peak"),
            FileProbe::Absent(old)
        );
        assert_eq!(probe(&[&root, &bare], "memory.peak"), FileProbe::Nowhere);
        let kill = probe_file(
            &[root.clone(), bare.clone()],
            "cgroup.events",
            "cgroup.kill",
        );
        assert_eq!(kill, FileProbe::Present(bare));
        let c = file_feature(
            "memory.peak",
            &[root],
            ("memory.current", "cgroup with the memory controller"),
            "fallback",
        );
        assert_eq!(c.status, Level::Warn);
        assert!(
            c.detail
                .starts_with("unknown: no cgroup with the memory controller"),
            "{c:?}"
        );
    }

    #[test]
    fn what_the_clone3_probe_answers_is_reported_as_such() {
        for (errno, status, detail) in [
            (libc::EBADF, Level::Ok, "yes (probed)"),
            (
                libc::E2BIG,
                Level::Warn,
                "no: clone3 refuses the flag (E2BIG), as kernels before 5.7 do",
            ),
            (
                libc::EINVAL,
                Level::Warn,
                "no: clone3 refuses the flag (EINVAL), as kernels before 5.7 do",
            ),
            (
                libc::ENOSYS,
                Level::Warn,
                "no: no clone3 here (ENOSYS: a kernel before 5.3, or a seccomp filter)",
            ),
            (
                libc::EPERM,
                Level::Warn,
                "no: clone3 is forbidden (EPERM: a seccomp filter or a security module)",
            ),
            (
                libc::EAGAIN,
                Level::Warn,
                "unknown: the probe failed (EAGAIN)",
            ),
        ] {
            let c = clone3_feature(Ok(errno));
            assert_eq!((c.status, c.detail.as_str()), (status, detail), "{errno}");
            assert_eq!(c.fix.is_some(), status == Level::Warn, "{errno}");
        }
    }
}
