//! The systemd-like cgroup layout the suite runs in, and the checks that nothing is left in it.
//!
//! Unified: controllers enabled from `/` down to each `user@UID.service` (as systemd does for
//! delegated user managers), root's terminal at `…/user@0.service/app.slice/term.scope`, and uid
//! 1000's subtree delegated (Delegate=yes: the directory, cgroup.procs, cgroup.subtree_control and
//! cgroup.threads owned by the user; everything the user manager creates below fully owned).
//! Hybrid: controllers on v1 hierarchies (mounted by /init), the runner in
//! `/user.slice/user-0.slice/session-1.scope` of the controller-less unified hierarchy.

use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    Unified,
    Hybrid,
}

/// Everything a test needs to know about where it runs.
pub struct Env {
    pub layout: Layout,
    /// Where the cgroup2 hierarchy is mounted.
    pub mount: PathBuf,
    /// root's caller cgroup (relative to the mount): its agents go to its parent's synwire/agents.
    pub caller: String,
    /// uid 1000's caller cgroup, inside its delegated subtree (unified only).
    pub user_caller: String,
    /// The suite's own cgroup; the only non-root cgroup allowed to hold a process between tests.
    pub runner_cg: String,
    /// Kernel (major, minor).
    pub kernel: (u32, u32),
}

pub const USER_UID: u32 = 1000;
const WANTED: [&str; 4] = ["cpu", "memory", "pids", "io"];
const REQUIRED: [&str; 3] = ["cpu", "memory", "pids"];

impl Env {
    /// Absolute path of a cgroup given relative to the mount.
    pub fn path(&self, cg: &str) -> PathBuf {
        cg_path(&self.mount, cg)
    }

    /// The parent of root's caller cgroup: where its agents' `synwire/` lives.
    pub fn caller_parent(&self) -> &str {
        parent(&self.caller)
    }
}

pub fn parent(cg: &str) -> &str {
    match cg.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &cg[..i],
    }
}

fn cg_path(mount: &Path, cg: &str) -> PathBuf {
    mount.join(cg.trim_start_matches('/'))
}

pub fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

pub fn write(path: &Path, s: &str) -> Result<(), String> {
    fs::write(path, s).map_err(|e| format!("write {s:?} to {}: {e}", path.display()))
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Result<PathBuf, String> {
    let info = read(Path::new("/proc/self/mountinfo"))?;
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if post.split(' ').next() == Some("cgroup2") {
            if let Some(mp) = pre.split(' ').nth(4) {
                return Ok(PathBuf::from(mp));
            }
        }
    }
    Err("no cgroup2 mount in /proc/self/mountinfo".into())
}

/// Written by tests/vm/mkinitramfs: present only inside the test VM.
const VM_MARKER: &str = "/etc/synwire-vm";

/// Refuses to create, change or join cgroups anywhere but inside the test VM, so running the
/// suite or a helper on a development machine cannot disturb the host's cgroups.
fn in_vm() -> Result<(), String> {
    if Path::new(VM_MARKER).exists() {
        Ok(())
    } else {
        Err(format!(
            "{VM_MARKER} missing: refusing to touch cgroups outside the test VM (use tests/vm/run)"
        ))
    }
}

/// Enables memory, pids and cpu (those available) in `dir`'s cgroup.subtree_control, as the
/// slice or runtime above a unit or container does.
pub fn pass_controllers(dir: &Path) -> Result<(), String> {
    let available = read(&dir.join("cgroup.controllers"))?;
    for c in ["memory", "pids", "cpu"] {
        if available.split_whitespace().any(|a| a == c) {
            write(&dir.join("cgroup.subtree_control"), &format!("+{c}"))?;
        }
    }
    Ok(())
}

/// Moves the calling process into `cg` (relative to the cgroup2 mount).
pub fn move_self(cg: &str) -> Result<(), String> {
    in_vm()?;
    let mount = cgroup2_mount()?;
    write(&cg_path(&mount, cg).join("cgroup.procs"), "0")
}

fn kernel_version() -> Result<(u32, u32), String> {
    let uts = nix::sys::utsname::uname().map_err(|e| format!("uname: {e}"))?;
    let rel = uts.release().to_string_lossy().into_owned();
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    let major = it.next().and_then(|s| s.parse().ok());
    let minor = it.next().and_then(|s| s.parse().ok());
    match (major, minor) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!("cannot parse kernel release {rel}")),
    }
}

fn mkdirs(mount: &Path, cg: &str) -> Result<(), String> {
    let p = cg_path(mount, cg);
    fs::create_dir_all(&p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

/// Enables the wanted controllers on `cg`'s subtree_control, one at a time; the required ones
/// must be available.
fn enable(mount: &Path, cg: &str) -> Result<(), String> {
    let dir = cg_path(mount, cg);
    let available = read(&dir.join("cgroup.controllers"))?;
    for c in WANTED {
        if available.split_whitespace().any(|a| a == c) {
            write(&dir.join("cgroup.subtree_control"), &format!("+{c}"))?;
        } else if REQUIRED.contains(&c) {
            return Err(format!("controller {c} not available in {}", dir.display()));
        }
    }
    Ok(())
}

fn chown_all(dir: &Path, uid: u32) -> Result<(), String> {
    let own = |p: &Path| {
        chown(p, Some(uid), Some(uid)).map_err(|e| format!("chown {}: {e}", p.display()))
    };
    own(dir)?;
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let p = entry.path();
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            chown_all(&p, uid)?;
        } else {
            own(&p)?;
        }
    }
    Ok(())
}

/// Builds the layout and moves the suite into its runner cgroup.
pub fn setup(layout: Layout) -> Result<Env, String> {
    in_vm()?;
    let mount = cgroup2_mount()?;
    let expected = match layout {
        Layout::Unified => "/sys/fs/cgroup",
        Layout::Hybrid => "/sys/fs/cgroup/unified",
    };
    if mount != Path::new(expected) {
        return Err(format!(
            "cgroup2 mounted at {}, expected {expected}",
            mount.display()
        ));
    }
    let kernel = kernel_version()?;
    let root_mgr = "/user.slice/user-0.slice/user@0.service";
    let user_mgr = format!("/user.slice/user-{USER_UID}.slice/user@{USER_UID}.service");
    let env = match layout {
        Layout::Unified => {
            for cg in ["/init.scope", &format!("{root_mgr}/app.slice/term.scope")] {
                mkdirs(&mount, cg)?;
            }
            mkdirs(&mount, &user_mgr)?;
            for cg in [
                "/",
                "/user.slice",
                "/user.slice/user-0.slice",
                root_mgr,
                &format!("/user.slice/user-{USER_UID}.slice"),
                &user_mgr,
            ] {
                enable(&mount, cg)?;
            }
            // Delegate=yes: the user manager may create cgroups and move processes below.
            let mgr_dir = cg_path(&mount, &user_mgr);
            for p in [
                mgr_dir.clone(),
                mgr_dir.join("cgroup.procs"),
                mgr_dir.join("cgroup.subtree_control"),
                mgr_dir.join("cgroup.threads"),
            ] {
                chown(&p, Some(USER_UID), Some(USER_UID))
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
            // What the user manager itself creates is entirely the user's.
            let user_caller = format!("{user_mgr}/app.slice/term.scope");
            mkdirs(&mount, &user_caller)?;
            chown_all(&mgr_dir.join("app.slice"), USER_UID)?;
            Env {
                layout,
                mount,
                caller: format!("{root_mgr}/app.slice/term.scope"),
                user_caller,
                runner_cg: "/init.scope".into(),
                kernel,
            }
        }
        Layout::Hybrid => {
            let session = "/user.slice/user-0.slice/session-1.scope";
            mkdirs(&mount, session)?;
            Env {
                layout,
                mount,
                caller: session.into(),
                user_caller: String::new(),
                runner_cg: session.into(),
                kernel,
            }
        }
    };
    move_self(&env.runner_cg)?;
    Ok(env)
}

/// Every cgroup below the mount, as paths relative to it (parents before children).
pub fn walk(env: &Env) -> Vec<String> {
    fn go(dir: &Path, rel: &str, out: &mut Vec<String>) {
        out.push(if rel.is_empty() {
            "/".into()
        } else {
            rel.to_string()
        });
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut subs: Vec<_> = rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        subs.sort();
        for s in subs {
            go(&dir.join(&s), &format!("{rel}/{s}"), out);
        }
    }
    let mut out = Vec::new();
    go(&env.mount, "", &mut out);
    out
}

fn procs(env: &Env, cg: &str) -> Vec<i32> {
    fs::read_to_string(env.path(cg).join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The common postcondition: no agent cgroup left, and no process outside the root cgroup and the
/// suite's own (the suite itself).
pub fn check_clean(env: &Env) -> Result<(), String> {
    let me = std::process::id() as i32;
    let mut problems = Vec::new();
    for cg in walk(env) {
        if parent(&cg).ends_with("/synwire/agents") {
            problems.push(format!("agent cgroup left: {cg}"));
        }
        if cg == "/" {
            continue;
        }
        let left: Vec<String> = procs(env, &cg)
            .into_iter()
            .filter(|&p| p != me)
            .map(|p| format!("{p} ({})", comm(p)))
            .collect();
        if !left.is_empty() {
            problems.push(format!("processes left in {cg}: {}", left.join(", ")));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Kills whatever a failed test left and removes leftover agent cgroups, so the next test starts
/// clean. Best effort.
pub fn force_clean(env: &Env) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut any = false;
        for cg in walk(env) {
            if cg == "/" {
                continue;
            }
            for p in procs(env, &cg).into_iter().filter(|&p| p != me) {
                any = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        reap();
        if !any || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cgs = walk(env);
    cgs.reverse();
    for cg in cgs {
        if cg.contains("/synwire/agents/") {
            let _ = fs::remove_dir(env.path(&cg));
        }
    }
}

/// The state letter of process `pid` (R, S, D, T, …) while it still runs; None once it is gone
/// or a zombie waiting for its reaper (either way it no longer runs).
pub fn live_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may itself contain spaces and parentheses.
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    (!matches!(state, 'Z' | 'X')).then_some(state)
}

/// Reaps orphans that were reparented to the suite (it is a child subreaper).
pub fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    // Only zombies that nobody else waits for: std's Child handles are always waited for before
    // a test returns, so anything left is an orphan.
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}
