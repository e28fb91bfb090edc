//! Issue 10 items 4-6: every signal synwire-run can receive is forwarded and none ends it without
//! its teardown; a launcher asked to stop by SIGTERM/SIGINT/SIGHUP whose agent died of it dies of
//! that signal too; `[limits] oom_policy`; what the limits did, in the summary and the JSON. Every
//! test ends with the torture suite's leak check.

use std::time::Duration;

use crate::harness::{ensure, run, start, Caller, Run, Spawn, Started, SIGNALED, VMTEST};
use crate::layout::{self, Env};
use crate::tests::{root, TestFn};
use crate::torture_tests::with_leak_check;

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    let mut add = |name: &str, f: TestFn| t.push((format!("signals/{name}"), with_leak_check(f)));
    add(
        "alrm-pwr-rt-forwarded",
        Box::new(|e| others_forwarded(e, false)),
    );
    add(
        "alrm-pwr-rt-forwarded/pid",
        Box::new(|e| others_forwarded(e, true)),
    );
    add("stop-signal-alrm/pid", Box::new(stop_signal_alrm_pid));
    add("ctrl-z-stops-both", Box::new(ctrl_z_stops_both));
    add("agent-mask-empty", Box::new(|e| agent_mask_empty(e, false)));
    add(
        "agent-mask-empty/pid",
        Box::new(|e| agent_mask_empty(e, true)),
    );
    for (name, sig) in [
        ("term", libc::SIGTERM),
        ("int", libc::SIGINT),
        ("hup", libc::SIGHUP),
    ] {
        add(
            &format!("launcher-dies-of-{name}"),
            Box::new(move |e| launcher_dies_of(e, sig)),
        );
    }
    add("oom-policy-kill-immune-parent", Box::new(oom_kill_immune));
    add("oom-policy-continue", Box::new(oom_continue));
    add("pids-limit-hits", Box::new(pids_limit_hits));
}

fn send(s: &Started, sig: i32) -> Result<(), String> {
    // SAFETY: kill(2) with integer arguments.
    if unsafe { libc::kill(s.pid(), sig) } != 0 {
        return Err(format!("kill {sig}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The summary's first line.
fn first_line(r: &Run) -> &str {
    r.stderr
        .lines()
        .find(|l| l.starts_with("synwire-run: agent "))
        .unwrap_or("")
}

/// SIGALRM, SIGPWR and SIGRTMIN+3 sent to synwire-run reach the agent, and synwire-run lives on
/// to end normally with its statistics.
fn others_forwarded(env: &Env, pid_ns: bool) -> Result<(), String> {
    let mut args = vec![];
    if pid_ns {
        args.extend(["--unshare", "pid"]);
    }
    args.extend(["--", VMTEST, "trap-any"]);
    let mut s = start(env, &root(env), Spawn::Clone3, &args)?;
    let mut seen = vec![s.read_line()];
    let rt = libc::SIGRTMIN() + 3;
    if seen[0].as_deref() == Ok("ready") {
        for sig in [libc::SIGALRM, libc::SIGPWR, rt] {
            send(&s, sig)?;
            let line = s.read_line();
            let bad = line.is_err();
            seen.push(line);
            if bad {
                break;
            }
        }
        send(&s, libc::SIGTERM)?;
    }
    let r = s.finish();
    let seen: Vec<String> = seen.into_iter().map(|l| l.unwrap_or_else(|e| e)).collect();
    let want = vec![
        "ready".to_string(),
        format!("got {}", libc::SIGALRM),
        format!("got {}", libc::SIGPWR),
        format!("got {rt}"),
    ];
    ensure(seen == want, || {
        format!("the agent saw {seen:?}, expected {want:?}; {}", r.show())
    })?;
    r.expect_code(42)?;
    r.expect_outcome("exited")?;
    ensure(first_line(&r).contains("exited with code 42"), || {
        format!("no summary: {}", r.show())
    })
}

/// `[stop] signal = "SIGALRM"` under `--unshare pid`: the init passes it on at the timeout, and
/// the agent ends long before the grace period.
fn stop_signal_alrm_pid(env: &Env) -> Result<(), String> {
    let path = "/tmp/stop-alrm.toml";
    std::fs::write(
        path,
        "[limits]\ntimeout = \"2s\"\n[stop]\nsignal = \"SIGALRM\"\ngrace = \"60s\"\n",
    )
    .map_err(|e| format!("write {path}: {e}"))?;
    let alrm = libc::SIGALRM.to_string();
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--profile",
            path,
            "--unshare",
            "pid",
            "--",
            VMTEST,
            "trap-any",
            &alrm,
        ],
    )?;
    ensure(r.stdout.contains(&format!("got {alrm}")), || {
        format!("the agent never got SIGALRM: {}", r.show())
    })?;
    r.expect_code(124)?;
    r.expect_outcome("timed_out")?;
    let wall = r.stat_u64("wall_time_us")?;
    ensure(wall < 40_000_000, || {
        format!("wall {wall} µs: the agent was killed at the end of the grace period")
    })
}

/// Polls (10 ms apart, up to 10 s) until `pred` holds for the states of `pids`.
fn wait_states(pids: &[i32], pred: impl Fn(Option<char>) -> bool) -> Vec<Option<char>> {
    let mut states = Vec::new();
    for _ in 0..1000 {
        states = pids.iter().map(|p| layout::live_state(*p)).collect();
        if states.iter().all(|s| pred(*s)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    states
}

/// Job control still works although synwire-run blocks SIGTSTP: ^Z on the terminal stops the
/// agent and synwire-run (the shell sees its job stopped), SIGCONT to the job resumes both, and
/// a SIGTERM then ends both, synwire-run by that SIGTERM: the shell sees 143.
fn ctrl_z_stops_both(env: &Env) -> Result<(), String> {
    let pty = crate::helpers::Pty::open()?;
    let caller = Caller {
        cgroup: env.caller.clone(),
        uid: None,
        tty: Some(pty.slave.clone()),
        cwd: None,
    };
    let mut s = start(
        env,
        &caller,
        Spawn::Clone3,
        &["-q", "--", "sh", "-c", "echo $$; exec sleep 1000"],
    )?;
    let agent: Option<i32> = s.read_line().ok().and_then(|l| l.parse().ok());
    // The guardian stays in the same cgroup (and ignores ^Z): only synwire-run is the job's.
    let synwire = crate::tests::launchers_in(env, &env.caller)?;
    let mut problems = Vec::new();
    if let (Some(agent), [launcher]) = (agent, synwire.as_slice()) {
        let both = [*launcher, agent];
        pty.write(b"\x1a")?;
        let stopped = wait_states(&both, |s| s == Some('T'));
        if stopped.iter().any(|s| *s != Some('T')) {
            problems.push(format!(
                "after ^Z: synwire-run and agent in states {stopped:?}, not stopped"
            ));
        }
        // What `fg` does: SIGCONT to the job's process group.
        // SAFETY: kill(2) with integer arguments.
        unsafe { libc::kill(-launcher, libc::SIGCONT) };
        let resumed = wait_states(&both, |s| s.is_some_and(|c| c != 'T'));
        if resumed.iter().any(|s| !s.is_some_and(|c| c != 'T')) {
            problems.push(format!("after SIGCONT: states {resumed:?}, not running"));
        }
        // SAFETY: kill(2) with integer arguments.
        unsafe { libc::kill(*launcher, libc::SIGTERM) };
    } else {
        problems.push(format!("agent pid {agent:?}, synwire-run {synwire:?}"));
        for p in &synwire {
            // SAFETY: kill(2) with integer arguments.
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
    }
    let r = s.finish();
    drop(pty);
    ensure(problems.is_empty(), || {
        format!("{}; {}", problems.join("; "), r.show())
    })?;
    // on-tty, the shell here, reports a job killed by signal N as 128+N.
    r.expect_code(128 + libc::SIGTERM)
}

/// synwire-run blocks every signal but the synchronous ones (real-time ones and the C library's
/// reserved 32 and 33 too); the agent gets back the mask synwire-run started with, empty here,
/// and no ignored signal (Rust's runtime ignores SIGPIPE in synwire-run).
fn agent_mask_empty(env: &Env, pid_ns: bool) -> Result<(), String> {
    let mut args = vec!["-q"];
    if pid_ns {
        args.extend(["--unshare", "pid"]);
    }
    args.extend(["--", "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]);
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    r.expect_code(0)?;
    let want = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000";
    ensure(r.stdout.trim_end() == want, || {
        format!(
            "the agent's signal masks: {:?}, expected {want:?}",
            r.stdout
        )
    })
}

/// synwire-run asked to stop by `sig`, with an agent that dies of it, dies of `sig` itself after
/// printing its summary and writing its statistics.
fn launcher_dies_of(env: &Env, sig: i32) -> Result<(), String> {
    let s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &["--", "sh", "-c", "echo ready; exec sleep 1000"],
    )?;
    let mut s = s;
    let ready = s.read_line();
    if ready.as_deref() == Ok("ready") {
        send(&s, sig)?;
    }
    let r = s.finish();
    ensure(ready.as_deref() == Ok("ready"), || {
        format!("agent not ready: {ready:?}; {}", r.show())
    })?;
    ensure(r.code == Some(SIGNALED + sig), || {
        format!(
            "expected synwire-run to die of signal {sig} (a shell sees {}), got {}",
            128 + sig,
            r.show()
        )
    })?;
    r.expect_outcome("signaled")?;
    ensure(
        r.stat_u64("signal")? == sig as u64 && r.stat_u64("exit_code")? == 128 + sig as u64,
        || format!("stats signal/exit_code: {:?}", r.stats),
    )?;
    ensure(first_line(&r).contains("killed by SIG"), || {
        format!("no summary before the end: {}", r.show())
    })
}

/// An OOM-immune parent (oom_score_adj -1000) whose child is OOM-killed: memory.oom.group
/// spares the parent, `oom_policy = "kill"` (the default) ends it anyway: 137, oom_killed.
fn oom_kill_immune(env: &Env) -> Result<(), String> {
    let mut s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "--profile",
            "small",
            "--memory",
            "64MiB",
            "--",
            VMTEST,
            "oom-parent",
            "256",
        ],
    )?;
    // Without the policy the parent sleeps forever: the run would end only at this deadline.
    s.set_deadline(Duration::from_secs(60));
    let r = s.finish();
    r.expect_code(137)?;
    r.expect_outcome("oom_killed")?;
    ensure(r.stat_u64("oom_kills")? >= 1, || {
        format!("oom_kills: {:?}", r.stat("oom_kills"))
    })?;
    ensure(first_line(&r).contains("out-of-memory killer"), || {
        format!("first line: {}", r.show())
    })
}

/// `oom_policy = "continue"`: the immune parent lives on and exits 0; the first line says the
/// OOM killer ended processes of the agent, the JSON counts them.
fn oom_continue(env: &Env) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "--profile",
            "small",
            "--memory",
            "64MiB",
            "--set",
            "limits.oom_policy=continue",
            "--",
            VMTEST,
            "oom-parent",
            "256",
            "exit",
        ],
    )?;
    r.expect_code(0)?;
    r.expect_outcome("exited")?;
    ensure(r.stdout.contains("child killed by SIGKILL"), || {
        format!("the hog was not OOM-killed: {}", r.show())
    })?;
    let kills = r.stat_u64("oom_kills")?;
    ensure(kills >= 1, || format!("oom_kills {kills}"))?;
    let line = first_line(&r);
    ensure(
        line.contains("exited with code 0; the out-of-memory killer ended"),
        || format!("first line: {line:?}; {}", r.show()),
    )
}

/// A fork bomb at pids.max: the JSON counts the refused forks, the first line says so.
fn pids_limit_hits(env: &Env) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["--pids", "16", "--", VMTEST, "forkbomb"],
    )?;
    r.expect_code(0)?;
    let hits = r.stat_u64("pids_limit_hits")?;
    ensure(hits > 0, || format!("pids_limit_hits {hits}: {}", r.show()))?;
    let line = first_line(&r);
    ensure(line.contains("failed at its tasks limit of 16"), || {
        format!("first line: {line:?}; {}", r.show())
    })
}
