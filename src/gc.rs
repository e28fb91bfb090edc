//! Agent cgroups left by a launcher that was killed: `synwire-run gc`, and the cheap pass every
//! launch makes over its agents directory ([`remove_stale`]).
//!
//! Each agent cgroup carries its launcher in the extended attribute `user.synwire.launcher`:
//! `BOOTID:PIDNS:PID:STARTTIME` (the boot id, the inode of the launcher's pid namespace, its pid
//! there and its start time from /proc/PID/stat), so that neither a reused PID, nor a launcher in
//! another pid namespace (a container sharing the hierarchy), nor a reboot is mistaken for it.
//! Tags written before the boot id and namespace were added (`PID:STARTTIME`) are still read.
//! Empty cgroups whose launcher is dead are removed; with `--kill`, so are those whose processes
//! outlived it.
//!
//! Above 400 lines by its tests: the launcher tag's two forms and every verdict on a launcher.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::delegate::Placement;
use crate::cgroup::{discover, CgroupError, Hierarchy, Reap, AGENTS_SUBDIR};

pub use crate::cgroup::LAUNCHER_XATTR;

/// Who launched an agent, as its tag records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// /proc/sys/kernel/random/boot_id; None in an old `PID:STARTTIME` tag.
    pub boot: Option<String>,
    /// Inode of the launcher's /proc/self/ns/pid; None in an old tag.
    pub pidns: Option<u64>,
    pub pid: u32,
    pub start: u64,
}

/// What /proc says of a PID: its start time and state letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub start: u64,
    pub state: char,
}

/// Whether a tagged launcher still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// Definitely dead, with why.
    Dead(&'static str),
    /// Cannot be told from here, with why: never treated as dead.
    Unknown(&'static str),
}

/// The PID's start time and state, from /proc/PID/stat (fields 22 and 3).
pub fn proc_info(pid: u32) -> Option<ProcInfo> {
    let stat = crate::sys::read_file(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<ProcInfo> {
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some(ProcInfo { start, state })
}

/// This process's start time (field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> Option<u64> {
    proc_info(pid).map(|p| p.start)
}

/// This boot's id.
fn boot_id() -> Option<String> {
    let id = crate::sys::read_file("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && !id.contains(':')).then(|| id.to_string())
}

/// The inode of this process's pid namespace.
fn pid_ns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

impl Launcher {
    /// This process, as a tag would record it.
    pub fn current() -> Launcher {
        let pid = std::process::id();
        Launcher {
            boot: boot_id(),
            pidns: pid_ns(),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// The tag's text: `BOOTID:PIDNS:PID:STARTTIME`, or the old form when the boot id or the
    /// namespace could not be read.
    pub fn tag(&self) -> String {
        match (&self.boot, self.pidns) {
            (Some(b), Some(ns)) => format!("{b}:{ns}:{}:{}", self.pid, self.start),
            _ => format!("{}:{}", self.pid, self.start),
        }
    }

    /// Reads either form of the tag.
    pub fn parse(tag: &str) -> Option<Launcher> {
        let fields: Vec<&str> = tag.trim().split(':').collect();
        match fields[..] {
            [pid, start] => Some(Launcher {
                boot: None,
                pidns: None,
                pid: pid.parse().ok()?,
                start: start.parse().ok()?,
            }),
            [boot, ns, pid, start] if !boot.is_empty() => Some(Launcher {
                boot: Some(boot.to_string()),
                pidns: Some(ns.parse().ok()?),
                pid: pid.parse().ok()?,
                start: start.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// Judges this launcher from `here` (the judging process), looking PIDs up with `probe`.
    /// A different boot id is a reboot: dead. A different pid namespace: the PID means nothing
    /// here, never dead. Otherwise the PID decides: gone, reused (another start time) or a
    /// zombie is dead.
    pub fn judge(&self, here: &Launcher, probe: impl Fn(u32) -> Option<ProcInfo>) -> Verdict {
        if let (Some(theirs), Some(ours)) = (&self.boot, &here.boot) {
            if theirs != ours {
                return Verdict::Dead("it ran before the last reboot");
            }
        }
        if self.pidns.is_some() && self.pidns != here.pidns {
            return Verdict::Unknown("it runs in another pid namespace");
        }
        match probe(self.pid) {
            None => Verdict::Dead("it is gone"),
            Some(p) if p.start != self.start => Verdict::Dead("it is gone (its PID was reused)"),
            Some(p) if matches!(p.state, 'Z' | 'X') => Verdict::Dead("it is a zombie"),
            Some(_) => Verdict::Alive,
        }
    }
}

/// "BOOTID:PIDNS:PID:STARTTIME" for this process.
pub fn launcher_tag() -> String {
    Launcher::current().tag()
}

/// The tag of the agent cgroup `cg`, if it has one that parses.
fn read_tag(cg: &Path) -> Option<Result<Launcher, String>> {
    let raw = crate::sys::getxattr(cg, LAUNCHER_XATTR)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    Some(Launcher::parse(&text).ok_or(text))
}

/// The agents directories `gc` looks in: --cgroup-parent alone when given; else where a run
/// from here would place agents and, for a non-root caller under systemd, every
/// `synwire/agents` in its user manager's subtree (`user@UID.service`): its agents may have been
/// launched from any of its units, scopes or terminals, and gc is often typed in a login
/// session, where a launch would be refused but a collection trespasses on nothing.
fn agents_dirs(h: &Hierarchy, parent: Option<&str>) -> Result<Vec<PathBuf>, CgroupError> {
    if let Some(p) = parent {
        let rel = discover::normalise(p).ok_or_else(|| CgroupError::BadParent(p.into()))?;
        return Ok(vec![h.path(&rel)]);
    }
    let placed = match h.placement() {
        Placement::Parent(p) | Placement::Nest(p) => Ok(h.path(&discover::join(&p, AGENTS_SUBDIR))),
        Placement::Refuse { own, parent } => Err(CgroupError::NotDelegatedUnit {
            own: h.path(&own),
            parent: h.path(&parent),
        }),
    };
    let uid = nix::unistd::geteuid().as_raw();
    let manager = (uid != 0 && crate::cgroup::delegate::systemd_booted())
        .then(|| h.path(&format!("/user.slice/user-{uid}.slice/user@{uid}.service")))
        .filter(|d| d.is_dir());
    let mut dirs = Vec::new();
    match (placed, &manager) {
        (Ok(d), _) => dirs.push(d),
        (Err(e), None) => return Err(e),
        (Err(_), Some(_)) => {}
    }
    if let Some(m) = manager {
        find_agents_dirs(&m, 8, &mut dirs);
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    Ok(dirs)
}

/// Every `…/synwire/agents` directory below `dir`, `depth` levels down at most; agent cgroups
/// themselves are not descended into.
fn find_agents_dirs(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = e.path();
        if e.file_name() == "agents" && dir.file_name().is_some_and(|n| n == "synwire") {
            out.push(path);
        } else {
            find_agents_dirs(&path, depth - 1, out);
        }
    }
}

fn populated(dir: &Path) -> bool {
    crate::sys::read_file(dir.join("cgroup.events"))
        .map(|t| crate::cgroup::stats::key_value(&t, "populated") != Some(0))
        .unwrap_or(true)
}

/// The agent cgroups in `dir`: subdirectories named by a UUID.
fn agent_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| uuid::Uuid::parse_str(&e.file_name().to_string_lossy()).is_ok())
        .map(|e| e.path())
        .collect())
}

/// Collects; returns the report lines and the exit code (0 unless something could not be done).
pub fn run(parent: Option<&str>, kill: bool) -> Result<(String, i32), crate::Error> {
    let h = Hierarchy::discover()?;
    let dirs = agents_dirs(&h, parent)?;
    let here = Launcher::current();
    let mut out = String::new();
    let (mut removed, mut kept, mut failed, mut looked) = (0, 0, 0, Vec::new());
    for dir in &dirs {
        let entries = match agent_entries(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push_str(&format!("error: cannot read {}: {e}\n", dir.display()));
                failed += 1;
                continue;
            }
        };
        looked.push(dir.display().to_string());
        for cg in entries {
            match collect_one(&cg, &here, kill) {
                Ok(Collected::Removed(lines)) => {
                    out.push_str(&lines);
                    removed += 1;
                }
                Ok(Collected::Kept(line)) => {
                    out.push_str(&line);
                    kept += 1;
                }
                Err(e) => {
                    // One cgroup that fails does not stop the pass.
                    out.push_str(&format!("error: {e}\n"));
                    failed += 1;
                }
            }
        }
    }
    if looked.is_empty() && failed == 0 {
        let all: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        out.push_str(&if all.is_empty() {
            "synwire-run gc: no agents directory found: nothing to do\n".to_string()
        } else {
            format!(
                "synwire-run gc: no agents directory at {}: nothing to do\n",
                all.join(", ")
            )
        });
        return Ok((out, 0));
    }
    out.push_str(&format!(
        "synwire-run gc: removed {removed}, kept {kept}, failed {failed} in {}\n",
        looked.join(", ")
    ));
    Ok((out, i32::from(failed > 0)))
}

enum Collected {
    /// What was done, ending with the `removed` line.
    Removed(String),
    /// Why it stays ("" for a live launcher, which needs no word).
    Kept(String),
}

fn collect_one(cg: &Path, here: &Launcher, kill: bool) -> Result<Collected, String> {
    let tag = read_tag(cg);
    let tagged = matches!(tag, Some(Ok(_)));
    let verdict = match tag {
        Some(Ok(l)) => l.judge(here, proc_info),
        Some(Err(text)) => Verdict::Unknown(if text.is_empty() {
            "its launcher tag is empty"
        } else {
            "its launcher tag is unreadable"
        }),
        None => Verdict::Unknown("its launcher is unknown (no user.synwire.launcher)"),
    };
    let why = match verdict {
        Verdict::Alive => return Ok(Collected::Kept(String::new())),
        Verdict::Unknown(why) if tagged || populated(cg) => {
            let what = if populated(cg) {
                " and processes run in it; if it is stale, kill them and rmdir it by hand"
            } else {
                "; if it is stale, rmdir it by hand"
            };
            return Ok(Collected::Kept(format!(
                "kept {}: {why}{what}\n",
                cg.display()
            )));
        }
        // Empty and without a tag: as before tags, removing an empty cgroup loses nothing.
        Verdict::Unknown(why) => why,
        Verdict::Dead(why) => why,
    };
    let mut lines = String::new();
    if populated(cg) {
        let n = crate::cgroup::count_procs(cg).unwrap_or(0);
        if !kill {
            return Ok(Collected::Kept(format!(
                "kept {}: its launcher is dead ({why}) but {n} process(es) outlived it; `synwire-run gc --kill` ends them\n",
                cg.display()
            )));
        }
        crate::cgroup::kill_dir(cg).map_err(|e| e.to_string())?;
        if !crate::cgroup::wait_dir_empty(cg, Duration::from_secs(10), Reap::Nothing)
            .map_err(|e| e.to_string())?
        {
            return Err(format!("could not empty {} within 10 s", cg.display()));
        }
        lines.push_str(&format!(
            "killed {n} process(es) left by a dead launcher ({why}) in {}\n",
            cg.display()
        ));
    }
    match std::fs::remove_dir(cg) {
        Ok(()) => {}
        // Someone else (its guardian, another gc) was quicker.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("could not remove {}: {e}", cg.display())),
    }
    lines.push_str(&format!("removed {}\n", cg.display()));
    Ok(Collected::Removed(lines))
}

/// What a launch spends at most on the stale cgroups of its agents directory.
const STALE_BUDGET: Duration = Duration::from_millis(500);

/// Removes the agent cgroups in `agents` whose launcher is definitely dead (killed before it or
/// its guardian could), killing what still runs there. Runs at every launch, so it is cheap: one
/// readdir, one getxattr per entry and one kill(PID, 0) per tagged entry of this pid namespace:
/// ESRCH is dead; anything else counts as alive here, a zombie or a reused PID included (`gc`
/// reads /proc and catches those), so that 200 concurrent launches do not each read /proc 200
/// times. Only tags of the current form are judged (an old tag cannot tell a launcher in another
/// pid namespace from a dead one: `gc` handles those). Never fails the launch: problems are
/// logged.
pub fn remove_stale(agents: &Path, here: &Launcher) {
    let entries = match agent_entries(agents) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!("cannot list {} for stale agents: {e}", agents.display());
            return;
        }
    };
    let start = Instant::now();
    for cg in entries {
        let Some(Ok(l)) = read_tag(&cg) else { continue };
        if l.boot.is_none() {
            continue;
        }
        let exists = |pid: u32| {
            (nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None)
                != Err(nix::errno::Errno::ESRCH))
            .then_some(ProcInfo {
                start: l.start,
                state: 'S',
            })
        };
        let Verdict::Dead(why) = l.judge(here, exists) else {
            continue;
        };
        let left = STALE_BUDGET.saturating_sub(start.elapsed());
        if left.is_zero() {
            tracing::debug!("stale agents: out of time, {} stays", cg.display());
            return;
        }
        if populated(&cg) {
            if let Err(e) = crate::cgroup::kill_dir(&cg) {
                tracing::warn!("stale agent cgroup {} ({why}): {e}", cg.display());
                continue;
            }
            match crate::cgroup::wait_dir_empty(&cg, left, Reap::Nothing) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(
                        "stale agent cgroup {} ({why}) did not empty in time; `synwire-run gc --kill` retries",
                        cg.display()
                    );
                    continue;
                }
                Err(e) => {
                    tracing::debug!("stale agent cgroup {}: {e}", cg.display());
                    continue;
                }
            }
        }
        match std::fs::remove_dir(&cg) {
            Ok(()) => tracing::debug!(
                "removed the stale agent cgroup {} (its launcher {} {why})",
                cg.display(),
                l.pid
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove the stale agent cgroup {}: {e}", cg.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "4f3c1d2e-8a9b-4c7d-9e0f-123456789abc";

    fn launcher(boot: Option<&str>, ns: Option<u64>, pid: u32, start: u64) -> Launcher {
        Launcher {
            boot: boot.map(str::to_string),
            pidns: ns,
            pid,
            start,
        }
    }

    fn alive(start: u64, state: char) -> impl Fn(u32) -> Option<ProcInfo> {
        move |_| Some(ProcInfo { start, state })
    }

    #[test]
    fn the_tag_round_trips_in_both_forms() {
        let new = launcher(Some(BOOT), Some(4026531836), 812, 12345);
        assert_eq!(new.tag(), format!("{BOOT}:4026531836:812:12345"));
        assert_eq!(Launcher::parse(&new.tag()), Some(new));
        let old = Launcher::parse("812:12345").unwrap();
        assert_eq!(old, launcher(None, None, 812, 12345));
        assert_eq!(old.tag(), "812:12345");
    }

    #[test]
    fn garbage_tags_do_not_parse() {
        for t in [
            "",
            "garbage",
            "1:2:3",
            ":1:2:3",
            "b:x:1:2",
            "b:1:2:3:4",
            "a:b",
        ] {
            assert_eq!(Launcher::parse(t), None, "{t:?}");
        }
    }

    #[test]
    fn our_own_tag_fits_the_getxattr_buffer_and_is_alive() {
        let me = Launcher::current();
        assert!(me.tag().len() < 128, "{}", me.tag());
        assert_eq!(Launcher::parse(&me.tag()).as_ref(), Some(&me));
        assert_eq!(me.judge(&me, proc_info), Verdict::Alive);
        let mut later = me.clone();
        later.start += 1;
        assert!(matches!(later.judge(&me, proc_info), Verdict::Dead(_)));
    }

    #[test]
    fn a_zombie_launcher_is_dead() {
        let here = launcher(Some(BOOT), Some(7), 1, 1);
        let l = launcher(Some(BOOT), Some(7), 812, 100);
        assert_eq!(l.judge(&here, alive(100, 'S')), Verdict::Alive);
        assert_eq!(
            l.judge(&here, alive(100, 'Z')),
            Verdict::Dead("it is a zombie")
        );
        assert!(matches!(l.judge(&here, |_| None), Verdict::Dead(_)));
        assert!(matches!(l.judge(&here, alive(101, 'S')), Verdict::Dead(_)));
    }

    #[test]
    fn a_launcher_in_another_pid_namespace_is_never_dead_by_pid() {
        let here = launcher(Some(BOOT), Some(7), 1, 1);
        let l = launcher(Some(BOOT), Some(8), 812, 100);
        // Whatever its PID shows here: gone, reused, a zombie.
        for probe in [None, Some((5, 'S')), Some((100, 'Z'))] {
            let v = l.judge(&here, |_| {
                probe.map(|(start, state)| ProcInfo { start, state })
            });
            assert!(matches!(v, Verdict::Unknown(_)), "{probe:?}: {v:?}");
        }
    }

    #[test]
    fn another_boot_id_is_a_reboot_whatever_the_namespace() {
        let here = launcher(Some(BOOT), Some(7), 1, 1);
        let other = "00000000-0000-4000-8000-000000000000";
        for ns in [7, 8] {
            let l = launcher(Some(other), Some(ns), 812, 100);
            assert!(matches!(l.judge(&here, alive(100, 'S')), Verdict::Dead(_)));
        }
    }

    #[test]
    fn an_old_tag_is_judged_by_pid_here() {
        let here = launcher(Some(BOOT), Some(7), 1, 1);
        let l = Launcher::parse("812:100").unwrap();
        assert_eq!(l.judge(&here, alive(100, 'R')), Verdict::Alive);
        assert!(matches!(l.judge(&here, |_| None), Verdict::Dead(_)));
    }

    #[test]
    fn every_agents_directory_of_a_subtree_is_found_but_not_entered() {
        let t = tempfile::tempdir().unwrap();
        let mk = |p: &str| std::fs::create_dir_all(t.path().join(p)).unwrap();
        mk("app.slice/synwire/agents/4f3c1d2e-8a9b-4c7d-9e0f-123456789abc/synwire/agents");
        mk("app.slice/run-u7.service/synwire/agents");
        mk("app.slice/other/agents");
        mk("synwire.slice/synwire-1a2b3c4d.scope/synwire/agents");
        let mut found = Vec::new();
        find_agents_dirs(t.path(), 8, &mut found);
        let mut found: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(t.path()).unwrap().display().to_string())
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                "app.slice/run-u7.service/synwire/agents",
                "app.slice/synwire/agents",
                "synwire.slice/synwire-1a2b3c4d.scope/synwire/agents"
            ]
        );
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let mut fields = vec!["0"; 50];
        fields[0] = "Z";
        fields[19] = "4242";
        let line = format!("812 (a) b (c) {}", fields.join(" "));
        assert_eq!(
            parse_stat(&line),
            Some(ProcInfo {
                start: 4242,
                state: 'Z'
            })
        );
        assert_eq!(parse_stat("812 (x"), None);
    }
}
