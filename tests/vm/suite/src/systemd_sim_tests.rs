//! Placement under systemd's delegation rules, in the busybox VM: the suite plays systemd's part
//! (/run/systemd/system exists, unit cgroups under /system.slice, `trusted.delegate` set on the
//! delegated ones, as systemd 252 does). A real systemd is exercised by tests/systemd.

use crate::harness::{ensure, expect_agent_cgroup, run, v2_line, Caller, Spawn};
use crate::layout::{self, Env};
use crate::tests::TestFn;

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    t.push((
        "systemd-sim/delegated-unit-nests".into(),
        Box::new(delegated_nests),
    ));
    t.push((
        "systemd-sim/supervisor-leaf".into(),
        Box::new(supervisor_leaf),
    ));
    t.push((
        "systemd-sim/undelegated-refused".into(),
        Box::new(undelegated_refused),
    ));
}

/// /run/systemd/system for the length of one test: removed on drop, whatever happens.
pub(crate) struct Booted;

impl Booted {
    pub(crate) fn new() -> Result<Booted, String> {
        std::fs::create_dir_all("/run/systemd/system")
            .map_err(|e| format!("mkdir /run/systemd/system: {e}"))?;
        Ok(Booted)
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir("/run/systemd/system");
        let _ = std::fs::remove_dir("/run/systemd");
    }
}

/// A unit's cgroup under /system.slice, delegated (trusted.delegate=1) or not.
pub(crate) fn unit(env: &Env, name: &str, delegated: bool) -> Result<String, String> {
    let slice = env.path("/system.slice");
    std::fs::create_dir_all(&slice).map_err(|e| format!("mkdir system.slice: {e}"))?;
    layout::pass_controllers(&slice)?;
    let cg = format!("/system.slice/{name}");
    let dir = env.path(&cg);
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {cg}: {e}"))?;
    if delegated {
        set_xattr(&dir, "trusted.delegate", b"1")?;
    }
    Ok(cg)
}

/// setxattr(2), as systemd marks a delegated cgroup.
fn set_xattr(path: &std::path::Path, name: &str, value: &[u8]) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let n = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: NUL-terminated strings and a value slice valid for its length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "setxattr {name} on {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ))
    }
}

fn delegated_nests(env: &Env) -> Result<(), String> {
    let _booted = Booted::new()?;
    let cg = unit(env, "deleg.service", true)?;
    let r = run(
        env,
        &Caller::root_in(&cg),
        Spawn::Clone3,
        &["-q", "--profile", "small", "--", "cat", "/proc/self/cgroup"],
    )?;
    r.expect_code(0)?;
    expect_agent_cgroup(v2_line(&r.stdout)?, &cg)?;
    ensure(env.path(&format!("{cg}/supervisor")).is_dir(), || {
        format!("no {cg}/supervisor: {}", r.show())
    })?;
    let procs = layout::read(&env.path(&cg).join("cgroup.procs"))?;
    ensure(procs.trim().is_empty(), || {
        format!("processes left in the unit's own cgroup: {procs}")
    })
}

fn supervisor_leaf(env: &Env) -> Result<(), String> {
    let _booted = Booted::new()?;
    let cg = unit(env, "deleg2.service", true)?;
    let sup = format!("{cg}/supervisor");
    std::fs::create_dir_all(env.path(&sup)).map_err(|e| format!("mkdir {sup}: {e}"))?;
    let r = run(
        env,
        &Caller::root_in(&sup),
        Spawn::Clone3,
        &["-q", "--profile", "small", "--", "cat", "/proc/self/cgroup"],
    )?;
    r.expect_code(0)?;
    expect_agent_cgroup(v2_line(&r.stdout)?, &cg)
}

fn undelegated_refused(env: &Env) -> Result<(), String> {
    let _booted = Booted::new()?;
    let cg = unit(env, "plain.service", false)?;
    let before = layout::walk(env);
    let r = run(
        env,
        &Caller::root_in(&cg),
        Spawn::Clone3,
        &["-q", "--", "true"],
    )?;
    r.expect_code(125)?;
    ensure(
        r.stderr.contains("Delegate=cpu memory pids io")
            && r.stderr.contains("DelegateSubgroup=supervisor"),
        || format!("the refusal does not give the unit lines: {}", r.show()),
    )?;
    let new: Vec<_> = layout::walk(env)
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    ensure(
        new.is_empty() && !env.path("/system.slice/synwire").exists(),
        || format!("created {new:?} under systemd's slice: {}", r.show()),
    )
}
