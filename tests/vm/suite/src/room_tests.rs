//! Processes in the way (issue 10, item 2): cgroup v2 lets only a cgroup without processes pass
//! controllers down. Where that cgroup is synwire-run's to arrange, everything in it moves into a
//! leaf first: the root of a container's cgroup namespace (synwire-run as the entrypoint, or
//! beside an orchestrator and its sidecar) goes to `init`; a delegated unit whose start script ran
//! synwire-run without `exec` goes to `supervisor`. Real crun/runc containers are in tests/systemd.

use crate::harness::{
    ensure, expect_agent_cgroup, run_with, v2_line, Caller, Setup, Spawn, VMTEST,
};
use crate::layout::{self, Env};
use crate::systemd_sim_tests::{unit, Booted};
use crate::tests::{expect_limits, TestFn, SHOW_LIMITS};
use crate::torture_tests::with_leak_check;

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    for m in [Spawn::Clone3, Spawn::Fork] {
        let n = m.name();
        t.push((
            format!("room/container-entrypoint/{n}"),
            with_leak_check(move |e: &Env| container(e, m, false)),
        ));
        t.push((
            format!("room/container-orchestrator/{n}"),
            with_leak_check(move |e: &Env| container(e, m, true)),
        ));
    }
    t.push((
        "room/delegated-start-script-without-exec".into(),
        with_leak_check(start_script),
    ));
}

/// The container's own cgroup with its memory limit (the ceiling, as a runtime sets it), removed
/// with everything synwire-run left in it (`init`, the empty agents directory) on drop.
struct ContainerCgroup<'a> {
    env: &'a Env,
    cg: String,
}

const CONTAINERS: &str = "/containers";
const CEILING: &str = "805306368"; // 768 MiB, above small's 512 MiB

impl<'a> ContainerCgroup<'a> {
    fn new(env: &'a Env, name: &str) -> Result<ContainerCgroup<'a>, String> {
        let parent = env.path(CONTAINERS);
        std::fs::create_dir_all(&parent).map_err(|e| format!("mkdir {CONTAINERS}: {e}"))?;
        layout::pass_controllers(&parent)?;
        let cg = format!("{CONTAINERS}/{name}");
        let c = ContainerCgroup { env, cg };
        std::fs::create_dir(env.path(&c.cg)).map_err(|e| format!("mkdir {}: {e}", c.cg))?;
        layout::write(&env.path(&c.cg).join("memory.max"), CEILING)?;
        Ok(c)
    }
}

impl Drop for ContainerCgroup<'_> {
    fn drop(&mut self) {
        for sub in ["synwire/agents", "synwire", "init", ""] {
            let p = self.env.path(&format!("{}/{sub}", self.cg));
            let _ = std::fs::remove_dir(p);
        }
        let _ = std::fs::remove_dir(self.env.path(CONTAINERS));
    }
}

/// synwire-run as a container's entrypoint (the only process in the container's cgroup), or
/// started by an orchestrator that stays in that cgroup with a sidecar: the agent runs in
/// `/synwire/agents/<uuid>` as the container sees it, with small's limits under the container's
/// ceiling; synwire-run and the processes beside it end up in `/init`.
fn container(env: &Env, spawn: Spawn, orchestrate: bool) -> Result<(), String> {
    let name = if orchestrate { "orch" } else { "entry" };
    let c = ContainerCgroup::new(env, &format!("{name}-{}", spawn.name()))?;
    let mut wrapper = vec![VMTEST.to_string(), "container".into()];
    if orchestrate {
        wrapper.push("--orchestrate".into());
    }
    wrapper.push("--".into());
    let setup = Setup {
        wrapper,
        ..Setup::default()
    };
    let script = format!("{SHOW_LIMITS}; echo launcher $(grep ^0:: /proc/$PPID/cgroup)");
    let r = run_with(
        env,
        &Caller::root_in(&c.cg),
        spawn,
        &setup,
        &["-v", "-q", "--profile", "small", "--", "sh", "-c", &script],
    )?;
    expect_limits(&r, "/", "536870912", "64", "50000 100000")?;
    ensure(r.stdout.contains("launcher 0::/init\n"), || {
        format!(
            "synwire-run did not run from the container's /init: {}",
            r.show()
        )
    })?;
    if orchestrate {
        for who in ["orchestrator", "sidecar"] {
            ensure(r.stdout.contains(&format!("{who} 0::/init\n")), || {
                format!("the {who} was not moved into /init: {}", r.show())
            })?;
        }
        ensure(
            r.stderr.contains("moved") && r.stderr.contains("(synwire-vmtest)"),
            || format!("-v does not say which processes were moved: {}", r.show()),
        )?;
    }
    // The container's ceiling is untouched and the agents directory is empty.
    let ceiling = layout::read(&env.path(&c.cg).join("memory.max"))?;
    ensure(ceiling.trim() == CEILING, || {
        format!("the container's memory.max changed to {ceiling}")
    })?;
    let agents = env.path(&format!("{}/synwire/agents", c.cg));
    let left = std::fs::read_dir(&agents)
        .map_err(|e| format!("{}: {e}", agents.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .count();
    ensure(left == 0, || {
        format!("{left} agent cgroup(s) left in {}", agents.display())
    })
}

/// A delegated unit whose ExecStart is a shell script that runs synwire-run without `exec`: the
/// shell stays in the unit's cgroup, and synwire-run moves it into `<unit>/supervisor` beside
/// itself instead of failing to enable controllers.
fn start_script(env: &Env) -> Result<(), String> {
    let _booted = Booted::new()?;
    let cg = unit(env, "script.service", true)?;
    let setup = Setup {
        wrapper: vec![
            "/bin/sh".into(),
            "-c".into(),
            "\"$@\"; echo shell-after=$?".into(),
            "sh".into(),
        ],
        ..Setup::default()
    };
    // The agent's parent is synwire-run; its parent is the script's shell.
    let script = "cat /proc/self/cgroup; \
        shell=$(cut -d' ' -f4 /proc/$PPID/stat); echo shell $(grep ^0:: /proc/$shell/cgroup)";
    let r = run_with(
        env,
        &Caller::root_in(&cg),
        Spawn::Clone3,
        &setup,
        &["-v", "-q", "--profile", "small", "--", "sh", "-c", script],
    )?;
    r.expect_code(0)?;
    expect_agent_cgroup(v2_line(&r.stdout)?, &cg)?;
    ensure(r.stdout.contains("shell-after=0"), || {
        format!("the script did not go on after synwire-run: {}", r.show())
    })?;
    ensure(
        r.stdout.contains(&format!("shell 0::{cg}/supervisor\n")),
        || {
            format!(
                "the script's shell was not moved into {cg}/supervisor: {}",
                r.show()
            )
        },
    )?;
    ensure(r.stderr.contains("(sh)"), || {
        format!("-v does not name the shell it moved: {}", r.show())
    })?;
    let procs = layout::read(&env.path(&cg).join("cgroup.procs"))?;
    ensure(procs.trim().is_empty(), || {
        format!("processes left in the unit's own cgroup: {procs}")
    })
}
