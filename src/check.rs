//! `synwire-run check`: diagnoses this host in one command. One line per check, OK / WARN /
//! FAIL, each WARN and FAIL with its fix (each distinct fix printed once); exit 0 only when the
//! `small` profile would run enforced.

use std::path::PathBuf;

use serde::Serialize;

use crate::cgroup::delegate::{self, Placement};
use crate::cgroup::{discover, room, Hierarchy};
use crate::probe::{probe_file, sysctl, FileProbe};

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

/// Runs every check.
pub fn run_checks() -> Vec<Check> {
    let mut out = Vec::new();
    let h = match Hierarchy::discover() {
        Ok(h) => h,
        Err(e) => {
            out.push(fail(
                "cgroup2",
                "no cgroup v2 hierarchy".into(),
                e.to_string(),
            ));
            return out;
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
    let systemd = delegate::systemd_booted();
    let mut placement = h.placement();
    // A unit of our user manager without the mark (systemd 252): the manager says whether it
    // has Delegate=yes, as a run would ask.
    if let delegate::Step::AskDelegate { uid, iface, .. } = delegate::systemd_step(
        &placement,
        &h.own,
        crate::profile::ManagerMode::Auto,
        systemd,
        nix::unistd::geteuid().as_raw(),
        |rel| delegate::is_delegated(&h.path(rel)),
    ) {
        use crate::systemd::scope::{unit_delegates, Manager};
        if unit_delegates(Manager::User(uid), std::process::id(), iface) == Ok(true) {
            placement = Placement::Nest(h.own.clone());
        }
    }
    let parent = match placement.clone() {
        Placement::Parent(p) if h.own == "/" && room::is_namespace_root(&h.mount) => {
            let others = std::fs::read_to_string(h.path("/").join("cgroup.procs"))
                .map(|t| t.lines().count().saturating_sub(1))
                .unwrap_or(0);
            out.push(ok(
                "placement",
                format!(
                    "a container's cgroup namespace root: synwire-run moves into {} with the {others} other process(es) there, agents go to {}",
                    h.path(room::NS_ROOT_LEAF).display(),
                    h.path(&discover::join(&p, "synwire/agents")).display()
                ),
            ));
            Some(p)
        }
        Placement::Parent(p) => {
            let note = if systemd { " (under systemd)" } else { "" };
            out.push(ok(
                "placement",
                format!(
                    "agents go to {}{note}",
                    h.path(&discover::join(&p, "synwire/agents")).display()
                ),
            ));
            Some(p)
        }
        Placement::Nest(own) => {
            out.push(ok(
                "placement",
                format!(
                    "delegated unit: synwire-run moves into {}, agents go to {}",
                    h.path(&delegate::supervisor(&own)).display(),
                    h.path(&discover::join(&own, "synwire/agents")).display()
                ),
            ));
            Some(own)
        }
        Placement::Refuse { ref own, .. }
            if delegate::systemd_step(
                &placement,
                own,
                crate::profile::ManagerMode::Auto,
                systemd,
                nix::unistd::geteuid().as_raw(),
                |rel| delegate::is_delegated(&h.path(rel)),
            ) == delegate::Step::Scope =>
        {
            let manager = if nix::unistd::geteuid().is_root() {
                "the system manager (PID 1)"
            } else {
                "your user manager"
            };
            out.push(ok(
                "placement",
                format!(
                    "{own} is a login session: each run asks {manager} for a transient scope with delegation (synwire-<id>.scope in synwire.slice) and nests there; --no-scope refuses instead"
                ),
            ));
            None
        }
        Placement::Refuse { own, parent } => {
            let e = crate::cgroup::CgroupError::NotDelegatedUnit {
                own: h.path(&own),
                parent: h.path(&parent),
            };
            out.push(fail(
                "placement",
                "refused: a systemd unit without delegation".into(),
                e.to_string(),
            ));
            None
        }
    };
    if let Some(p) = &parent {
        let dir = h.path(p);
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| available.split_whitespace().any(|t| t == c);
        for c in ["memory", "cpu", "pids"] {
            if has(c) {
                out.push(ok(
                    "controller",
                    format!("{c} available in {}", dir.display()),
                ));
            } else {
                out.push(fail(
                    "controller",
                    format!("{c} missing in {}", dir.display()),
                    h.controller_fix(p),
                ));
            }
        }
        if has("io") {
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
        if nix::unistd::access(
            &dir.join("cgroup.subtree_control"),
            nix::unistd::AccessFlags::W_OK,
        )
        .is_ok()
            && nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_ok()
        {
            out.push(ok(
                "delegation",
                format!(
                    "{} is writable by uid {}",
                    dir.display(),
                    nix::unistd::geteuid()
                ),
            ));
        } else {
            out.push(fail(
                "delegation",
                format!("{} is not writable by uid {}", dir.display(), nix::unistd::geteuid()),
                "run inside a delegated unit (systemd-run --user --scope -p Delegate=yes), or pass --cgroup-parent to a cgroup you own".into(),
            ));
        }
    }
    // Kernel features are asked of this kernel, not read off its version: backports, seccomp
    // filters and missing controllers all make the version lie.
    out.push(clone3_feature(crate::sys::clone3_into_cgroup_errno()));
    let dirs = probe_dirs(&h, parent.as_deref());
    out.push(file_feature(
        "cgroup.kill",
        &dirs,
        ("cgroup.events", "cgroup below the root"),
        "teardown freezes and kills each process instead",
    ));
    out.push(file_feature(
        "memory.peak",
        &dirs,
        ("memory.current", "cgroup with the memory controller"),
        "the memory peak comes from wait4 (the largest process)",
    ));
    out.push(file_feature(
        "pids.peak",
        &dirs,
        ("pids.current", "cgroup with the pids controller"),
        "the tasks peak is reported as null",
    ));
    use crate::ns::UsernsObstacle;
    let name = "user namespaces";
    let userns = match crate::ns::userns_obstacle() {
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
        Some(UsernsObstacle::AppArmor) => warn(name, "AppArmor restricts unprivileged ones".into(), "grant `userns,` in an AppArmor profile for synwire-run, or set kernel.apparmor_restrict_unprivileged_userns=0"),
        None => ok(
            name,
            format!(
                "available (max {})",
                sysctl("/proc/sys/user/max_user_namespaces").unwrap_or_default()
            ),
        ),
    };
    out.push(userns);
    out.push(match crate::landlock::abi_version() {
        Ok(abi) => ok("landlock", format!("ABI {abi}")),
        Err(e) => warn(
            "landlock",
            format!("unavailable ({e})"),
            "Linux 5.13+ with landlock in the LSM list; [filesystem] best_effort runs without it",
        ),
    });
    out
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

/// The human report: one line per finding, and each distinct fix once. Findings in a row that
/// share a fix (the three controllers of a hybrid host) get it once, under the last of them; a fix
/// already given further up is referred to rather than repeated.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    // The fixes given so far, with the finding each was first given for.
    let mut given: Vec<(&str, &Check)> = Vec::new();
    let mut run = 0;
    for (i, c) in checks.iter().enumerate() {
        let label = match c.status {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        s.push_str(&format!("{label} {:<26} {}\n", c.check, c.detail));
        let Some(fix) = c.fix.as_deref() else {
            continue;
        };
        run += 1;
        if checks.get(i + 1).and_then(|n| n.fix.as_deref()) == Some(fix) {
            continue;
        }
        if let Some((_, first)) = given.iter().find(|(f, _)| *f == fix) {
            s.push_str(&format!("     fix: as for \"{}\" above\n", first.detail));
        } else {
            if run > 1 {
                s.push_str(&format!("     fix for the {run} lines above: {fix}\n"));
            } else {
                s.push_str(&format!("     fix: {fix}\n"));
            }
            given.push((fix, &checks[i + 1 - run]));
        }
        run = 0;
    }
    let failed = checks.iter().any(|c| c.status == Level::Fail);
    s.push_str(if failed {
        "synwire-run: the `small` profile would not run enforced here; see FAIL above\n"
    } else {
        "synwire-run: this host runs the `small` profile enforced\n"
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(check: &'static str, status: Level, detail: &str, fix: Option<&str>) -> Check {
        Check {
            check,
            status,
            detail: detail.into(),
            fix: fix.map(Into::into),
        }
    }

    /// The fix sentences of a rendering, as printed (references to an earlier fix left out).
    fn fixes(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.trim_start().strip_prefix("fix"))
            .filter_map(|l| l.split_once(": ").map(|(_, fix)| fix))
            .filter(|f| !f.starts_with("as for \""))
            .collect()
    }

    /// The findings of a hybrid host as `run_checks` makes them, with one fix repeated further
    /// down as well.
    fn hybrid() -> Vec<Check> {
        let hybrid = "this host runs cgroups in hybrid mode (…): boot with systemd.unified_cgroup_hierarchy=1 on the kernel command line, or run with --allow-degraded to run without these limits";
        vec![
            finding("cgroup2", Level::Warn, "/sys/fs/cgroup/unified (hybrid)", Some("boot with systemd.unified_cgroup_hierarchy=1 so cgroup v2 gets the controllers")),
            finding("own cgroup", Level::Ok, "/", None),
            finding("controller", Level::Fail, "memory missing in /sys/fs/cgroup/unified", Some(hybrid)),
            finding("controller", Level::Fail, "cpu missing in /sys/fs/cgroup/unified", Some(hybrid)),
            finding("controller", Level::Fail, "pids missing in /sys/fs/cgroup/unified", Some(hybrid)),
            finding("controller", Level::Warn, "io missing in /sys/fs/cgroup/unified", Some("only needed by io limits; delegate it like the others")),
            finding("delegation", Level::Ok, "/sys/fs/cgroup/unified is writable by uid 0", None),
            finding("elsewhere", Level::Fail, "something else", Some(hybrid)),
        ]
    }

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

    #[test]
    fn each_fix_is_printed_once_and_every_finding_keeps_its_line() {
        let checks = hybrid();
        let text = render(&checks);
        let fixes = fixes(&text);
        for (i, f) in fixes.iter().enumerate() {
            assert!(!fixes[..i].contains(f), "printed twice: {f}\n{text}");
        }
        for c in &checks {
            if let Some(fix) = &c.fix {
                assert!(
                    fixes.contains(&fix.as_str()),
                    "never printed: {fix}\n{text}"
                );
            }
            let label = format!("{:<26} {}\n", c.check, c.detail);
            assert_eq!(text.matches(&label).count(), 1, "{label}\n{text}");
        }
    }

    #[test]
    fn findings_in_a_row_share_one_fix_and_a_later_one_refers_back() {
        let text = render(&hybrid());
        assert!(
            text.contains("pids missing in /sys/fs/cgroup/unified\n     fix for the 3 lines above: this host runs cgroups in hybrid mode"),
            "{text}"
        );
        assert!(
            text.contains("FAIL elsewhere                  something else\n     fix: as for \"memory missing in /sys/fs/cgroup/unified\" above\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "(hybrid)\n     fix: boot with systemd.unified_cgroup_hierarchy=1 so cgroup v2"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("would not run enforced here; see FAIL above\n"),
            "{text}"
        );
    }
}
