//! Making room: cgroup v2 lets only a cgroup without processes pass controllers down (the "no
//! internal processes" rule; the host's real root cgroup is exempt). When the cgroup that must
//! pass them down is ours to arrange — a delegated unit we run in, or the root of a container's
//! cgroup namespace — every process in it moves into a leaf first: synwire-run itself, and the
//! others beside it (the shell of a start script that ran synwire-run without `exec`, the
//! orchestrator or init of a container), as docker-in-docker entrypoints do with `init`.

use std::io::ErrorKind;
use std::path::Path;

use super::{io_err, mkdir, write_file, CgroupError};

/// The leaf that processes in the way of a container's cgroup-namespace root go to.
pub const NS_ROOT_LEAF: &str = "init";

/// How many passes over cgroup.procs before giving up on a cgroup whose processes keep forking.
const PASSES: usize = 100;

/// True when the cgroup2 mount's root is a cgroup namespace's root (a container's), not the
/// host's real root: the real root has no cgroup.events (the kernel gives it only to non-root
/// cgroups), and only it may pass controllers down while it holds processes.
pub fn is_namespace_root(mount: &Path) -> bool {
    mount.join("cgroup.events").exists()
}

fn comm(pid: i32) -> String {
    crate::sys::read_file(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = crate::sys::read_file(&path).map_err(io_err("read", &path))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Moves synwire-run and every other process of `dir` into its child `leaf` (created if needed),
/// so that `dir` holds no process and may enable controllers for its children. Returns the
/// processes moved besides ourselves, as "PID (comm)".
pub fn clear(dir: &Path, leaf: &str) -> Result<Vec<String>, CgroupError> {
    let leaf_dir = dir.join(leaf);
    mkdir(&leaf_dir)?;
    let target = leaf_dir.join("cgroup.procs");
    // Ourselves first: the common case (an entrypoint, an exec'ing unit) ends here.
    write_file(&target, "0").map_err(io_err("write", &target))?;
    let me = std::process::id() as i32;
    let mut moved = Vec::new();
    for _ in 0..PASSES {
        let left: Vec<i32> = procs(dir)?.into_iter().filter(|&p| p != me).collect();
        if left.is_empty() {
            for m in &moved {
                tracing::debug!(
                    "moved {m} from {} into {}: cgroup v2 lets only a cgroup without processes pass controllers down",
                    dir.display(),
                    leaf_dir.display()
                );
            }
            return Ok(moved);
        }
        for pid in left {
            let name = comm(pid);
            match write_file(&target, &pid.to_string()) {
                Ok(()) => moved.push(format!("{pid} ({name})")),
                // Gone meanwhile (ESRCH), or exiting and no longer movable (a zombie).
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && is_dying(pid) => {}
                Err(source) => {
                    return Err(CgroupError::ProcessesInTheWay {
                        dir: dir.to_path_buf(),
                        leaf: leaf_dir.clone(),
                        who: format!("{pid} ({name})"),
                        source,
                    })
                }
            }
        }
    }
    Err(CgroupError::ProcessesInTheWay {
        dir: dir.to_path_buf(),
        leaf: leaf_dir,
        who: "processes that keep forking".into(),
        source: std::io::Error::from_raw_os_error(libc::EAGAIN),
    })
}

/// A process the kernel is ending (a zombie, or past exit): nothing to move.
fn is_dying(pid: i32) -> bool {
    let Ok(stat) = crate::sys::read_file(format!("/proc/{pid}/stat")) else {
        return true;
    };
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|s| s == "Z" || s == "X")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_cannot_be_moved_is_named_with_the_fixes() {
        let e = CgroupError::ProcessesInTheWay {
            dir: "/sys/fs/cgroup/system.slice/agent.service".into(),
            leaf: "/sys/fs/cgroup/system.slice/agent.service/supervisor".into(),
            who: "412 (bash)".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        let msg = e.to_string();
        for part in [
            "cannot move 412 (bash) out of /sys/fs/cgroup/system.slice/agent.service",
            "`exec synwire-run …`",
            "echo PID > /sys/fs/cgroup/system.slice/agent.service/supervisor/cgroup.procs",
            "--cgroup-parent",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
    }

    #[test]
    fn the_hosts_real_root_is_not_a_namespace_root() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_namespace_root(dir.path()));
        std::fs::write(dir.path().join("cgroup.events"), "populated 1\n").unwrap();
        assert!(is_namespace_root(dir.path()));
    }
}
