//! The clone3 fallback reached the way it is in the wild (issue 11, item 5): a seccomp filter that
//! fails clone3(2) with ENOSYS or EPERM, as container runtimes' default profiles do, and E2BIG, as
//! a kernel older than CLONE_INTO_CGROUP (5.7) answers. synwire-run must take the fork +
//! cgroup.procs path on its own (no SYNWIRE_SPAWN), with the agent in its cgroup and the limits
//! applied, alone and with a pid namespace.

use crate::harness::{ensure, expect_agent_cgroup, run_with, v2_line, Setup, Spawn, VMTEST};
use crate::layout::Env;
use crate::tests::{root, TestFn, SHOW_LIMITS};

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    for (name, errno) in [
        ("enosys", libc::ENOSYS),
        ("eperm", libc::EPERM),
        ("e2big", libc::E2BIG),
    ] {
        t.push((
            format!("fallback/clone3-{name}"),
            Box::new(move |e: &Env| fallback(e, errno, false)),
        ));
    }
    t.push((
        "fallback/clone3-eperm-pid-namespace".into(),
        Box::new(|e: &Env| fallback(e, libc::EPERM, true)),
    ));
}

fn fallback(env: &Env, errno: i32, pid_ns: bool) -> Result<(), String> {
    let setup = Setup {
        wrapper: vec![
            VMTEST.into(),
            "deny-clone3".into(),
            errno.to_string(),
            "--".into(),
        ],
        ..Setup::default()
    };
    let mut args = vec!["-q", "--profile", "small"];
    if pid_ns {
        args.extend(["--unshare", "pid,mount"]);
    }
    args.extend(["--", "sh", "-c", SHOW_LIMITS]);
    let r = run_with(env, &root(env), Spawn::Clone3, &setup, &args)?;
    r.expect_code(0)?;
    let spawn = r.stat("spawn")?;
    ensure(spawn.as_str() == Some("fork"), || {
        format!("spawn is {spawn}, not the fork fallback: {}", r.show())
    })?;
    let seen = v2_line(&r.stdout)?;
    if !pid_ns {
        expect_agent_cgroup(seen, env.caller_parent())?;
    }
    let limits: Vec<&str> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("0::"))
        .skip(1)
        .take(2)
        .collect();
    ensure(limits == ["536870912", "64"], || {
        format!(
            "memory.max/pids.max seen by the agent: {limits:?}: {}",
            r.show()
        )
    })
}
