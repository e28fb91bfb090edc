//! An agent that tries to move itself out of its cgroup. A non-root launcher's agent runs as the
//! same user, who owns the cgroup files of its delegated subtree: without a cgroup namespace it can
//! write its PID into another cgroup of that subtree (the launcher's own scope) and escape its
//! limits and teardown. This is the documented limitation of the profiles without namespaces;
//! `isolated` and `agent` stop it: the agent's cgroup namespace and its own cgroup2 mount show
//! nothing above its cgroup, and the kernel refuses migrations outside the namespace's root.
//! These are the torture rows `escape-default`, `escape-isolated` and `escape-agent`.

use crate::harness::{ensure, run, user, Spawn};
use crate::layout::Env;

/// The agent tries to move into the launcher's scope, through /sys/fs/cgroup and through a fresh
/// cgroup2 mount of its own (root of a user namespace may mount one). It prints `refused` for
/// each write that failed and `escaped` if one went through, then the cgroup it is in.
fn script(target: &str) -> String {
    format!(
        "mkdir -p /tmp/cg 2>/dev/null; mount -t cgroup2 none /tmp/cg 2>/dev/null; \
         for p in /sys/fs/cgroup{target} /tmp/cg{target}; do \
           if echo $$ > $p/cgroup.procs 2>/dev/null; then echo escaped; break; fi; echo refused; \
         done; sed -n 's/^0:://p' /proc/self/cgroup"
    )
}

/// The torture rows `escape-default`, `escape-isolated` and `escape-agent` (torture_tests.rs):
/// returns the row's figure, how many of the agent's moves the kernel refused.
pub fn attempt(env: &Env, profile: &str, expect_escape: bool) -> Result<String, String> {
    let caller = user(env);
    let target = caller.cgroup.clone();
    let r = run(
        env,
        &caller,
        Spawn::Clone3,
        &[
            "-q",
            "--profile",
            profile,
            "--",
            "sh",
            "-c",
            &script(&target),
        ],
    )?;
    r.expect_code(0)?;
    let escaped = r.stdout.lines().any(|l| l == "escaped");
    let refused = r.stdout.lines().filter(|l| *l == "refused").count();
    let last = r.stdout.lines().last().unwrap_or("").to_string();
    if expect_escape {
        // The limitation, shown: the agent left its cgroup for the launcher's scope.
        ensure(escaped && last == target, || {
            format!("expected the documented escape into {target}: {}", r.show())
        })?;
        Ok(format!("escaped on move {} (limitation)", refused + 1))
    } else {
        ensure(!escaped, || {
            format!("the agent moved itself out under `{profile}`: {}", r.show())
        })?;
        ensure(last == "/", || {
            format!(
                "the agent should still see its own cgroup as /: {}",
                r.show()
            )
        })?;
        ensure(refused == 2, || {
            format!("expected both moves tried and refused: {}", r.show())
        })?;
        Ok(format!("{refused}/2 moves refused"))
    }
}
