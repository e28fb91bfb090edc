//! The clone3 fallback reached the way it is in the wild (issue 11, item 5): a seccomp filter that
//! fails clone3(2) with ENOSYS or EPERM, as container runtimes' default profiles do, and E2BIG, as
//! a kernel older than CLONE_INTO_CGROUP (5.7) answers. synwire-run must take the fork +
//! cgroup.procs path on its own (no SYNWIRE_SPAWN), with the agent in its cgroup and the limits
//! applied, alone and with a pid namespace.

use crate::harness::{ensure, run_with, Setup, Spawn, VMTEST};
use crate::layout::Env;
use crate::tests::{expect_limits, root, TestFn, SHOW_LIMITS};
use crate::torture_tests::with_leak_check;

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    for (name, errno) in [
        ("enosys", libc::ENOSYS),
        ("eperm", libc::EPERM),
        ("e2big", libc::E2BIG),
    ] {
        t.push((
            format!("fallback/clone3-{name}"),
            with_leak_check(move |e: &Env| fallback(e, errno, false)),
        ));
    }
    t.push((
        "fallback/clone3-eperm-pid-namespace".into(),
        with_leak_check(|e: &Env| fallback(e, libc::EPERM, true)),
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
    let spawn = r.stat("spawn")?;
    ensure(spawn.as_str() == Some("fork"), || {
        format!("spawn is {spawn}, not the fork fallback: {}", r.show())
    })?;
    expect_limits(&r, env.caller_parent(), "536870912", "64", "50000 100000")
}
