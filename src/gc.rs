//! `synwire-run gc`: removes agent cgroups left by a launcher that was killed. Each agent cgroup
//! carries its launcher in the extended attribute `user.synwire.launcher` ("PID:STARTTIME", the
//! start time from /proc/PID/stat, so a reused PID is not mistaken for it). Empty ones whose
//! launcher is gone are removed; with `--kill`, so are those whose processes outlived it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::delegate::Placement;
use crate::cgroup::{discover, CgroupError, Hierarchy, AGENTS_SUBDIR};

pub const LAUNCHER_XATTR: &str = "user.synwire.launcher";

/// This process's start time (field 22 of /proc/PID/stat), which with the PID names it uniquely.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// "PID:STARTTIME" for this process.
pub fn launcher_tag() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or(0))
}

fn launcher_alive(tag: &str) -> bool {
    let Some((pid, start)) = tag.split_once(':') else {
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

/// The agents directory `gc` looks in: as a run would place agents, or under --cgroup-parent.
fn agents_dir(h: &Hierarchy, parent: Option<&str>) -> Result<PathBuf, CgroupError> {
    Ok(match parent {
        Some(p) => h.path(&discover::normalise(p).ok_or_else(|| CgroupError::BadParent(p.into()))?),
        None => match h.placement() {
            Placement::Parent(p) | Placement::Nest(p) => h.path(&discover::join(&p, AGENTS_SUBDIR)),
            Placement::Refuse { own, parent } => {
                return Err(CgroupError::NotDelegatedUnit {
                    own: h.path(&own),
                    parent: h.path(&parent),
                })
            }
        },
    })
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| crate::cgroup::stats::key_value(&t, "populated") != Some(0))
        .unwrap_or(true)
}

/// Collects; returns the report lines and the exit code (0 unless something could not be done).
pub fn run(parent: Option<&str>, kill: bool) -> Result<(String, i32), crate::Error> {
    let h = Hierarchy::discover()?;
    let dir = agents_dir(&h, parent)?;
    let mut out = String::new();
    let mut code = 0;
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((
                format!(
                    "synwire-run gc: no agents directory at {}: nothing to do\n",
                    dir.display()
                ),
                0,
            ))
        }
        Err(source) => {
            return Err(CgroupError::Io {
                op: "read",
                path: dir,
                source,
            }
            .into())
        }
    };
    let (mut removed, mut kept) = (0, 0);
    for e in entries.flatten() {
        let cg = e.path();
        if !cg.is_dir() || uuid::Uuid::parse_str(&e.file_name().to_string_lossy()).is_err() {
            continue;
        }
        let tag = crate::sys::getxattr(&cg, LAUNCHER_XATTR)
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        match &tag {
            Some(t) if launcher_alive(t) => {
                kept += 1;
                continue;
            }
            None if populated(&cg) => {
                out.push_str(&format!("kept {}: its launcher is unknown (no {LAUNCHER_XATTR}) and processes run in it; kill them and rmdir it by hand\n", cg.display()));
                kept += 1;
                continue;
            }
            _ => {}
        }
        if populated(&cg) {
            if !kill {
                let n = std::fs::read_to_string(cg.join("cgroup.procs"))
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                out.push_str(&format!("kept {}: its launcher is gone but {n} process(es) outlived it; `synwire-run gc --kill` ends them\n", cg.display()));
                kept += 1;
                continue;
            }
            let killed = std::fs::read_to_string(cg.join("cgroup.procs"))
                .map(|t| t.lines().count())
                .unwrap_or(0);
            crate::cgroup::kill_dir(&cg)?;
            if !crate::cgroup::wait_dir_empty(&cg, Duration::from_secs(10))? {
                out.push_str(&format!("could not empty {} within 10 s\n", cg.display()));
                code = 1;
                continue;
            }
            out.push_str(&format!(
                "killed {killed} process(es) left by a dead launcher in {}\n",
                cg.display()
            ));
        }
        match std::fs::remove_dir(&cg) {
            Ok(()) => {
                out.push_str(&format!("removed {}\n", cg.display()));
                removed += 1;
            }
            Err(e) => {
                out.push_str(&format!("could not remove {}: {e}\n", cg.display()));
                code = 1;
            }
        }
    }
    out.push_str(&format!(
        "synwire-run gc: removed {removed}, kept {kept} in {}\n",
        dir.display()
    ));
    Ok((out, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_tag_is_alive_and_a_stale_one_is_not() {
        let tag = launcher_tag();
        assert!(launcher_alive(&tag), "{tag}");
        let (pid, start) = tag.split_once(':').unwrap();
        assert!(!launcher_alive(&format!(
            "{pid}:{}",
            start.parse::<u64>().unwrap() + 1
        )));
        assert!(!launcher_alive("garbage"));
    }
}
