//! The tests. Each is a plain fn returning Result<(), String>; the runner adds the common
//! postcondition (no agent cgroup, no process left) and prints `ok NAME` / `FAIL NAME: reason`.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{
    ensure, expect_agent_cgroup, run, start, v2_line, Caller, Run, Spawn, VMTEST,
};
use crate::layout::{self, Env, Layout, USER_UID};

pub(crate) type TestFn = Box<dyn Fn(&Env) -> Result<(), String>>;

/// Shell snippet run as the agent: prints its `0::` line, then memory.max, pids.max, cpu.max of
/// its own cgroup, read from inside.
pub(crate) const SHOW_LIMITS: &str = "l=$(grep ^0:: /proc/self/cgroup); echo \"$l\"; \
    cg=/sys/fs/cgroup${l#0::}; cat $cg/memory.max $cg/pids.max $cg/cpu.max";

pub(crate) fn root(env: &Env) -> Caller {
    Caller {
        cgroup: env.caller.clone(),
        uid: None,
        tty: None,
        cwd: None,
    }
}

fn all_tests(layout: Layout) -> Vec<(String, TestFn)> {
    let mut t: Vec<(String, TestFn)> = Vec::new();
    macro_rules! add {
        ($name:expr, $f:expr) => {
            t.push(($name.to_string(), Box::new($f)))
        };
    }
    if layout == Layout::Hybrid {
        add!("hybrid/small-refused", hybrid_small_refused);
        add!("hybrid/allow-degraded", hybrid_allow_degraded);
        add!("hybrid/required-false", hybrid_required_false);
        add!("hybrid/default-runs", hybrid_default_runs);
        add!("hybrid/daemon-killed", hybrid_daemon_killed);
        add!("hybrid/check", hybrid_check);
        return t;
    }
    for m in [Spawn::Clone3, Spawn::Fork] {
        let n = m.name();
        add!(format!("placement/{n}"), move |e: &Env| placement(e, m));
        add!(format!("limits/small/{n}"), move |e: &Env| limits_small(
            e, m
        ));
        add!(format!("limits/overrides/{n}"), move |e: &Env| {
            limits_overrides(e, m)
        });
        add!(format!("limits/profile-file/{n}"), move |e: &Env| {
            limits_file(e, m)
        });
        add!(format!("exit/code/{n}"), move |e: &Env| exit_code(e, m));
        add!(format!("exit/signal/{n}"), move |e: &Env| exit_signal(e, m));
        add!(format!("exit/timeout/{n}"), move |e: &Env| exit_timeout(
            e, m
        ));
        add!(
            format!("exit/bad-value/{n}"),
            move |e: &Env| exit_bad_value(e, m)
        );
        add!(format!("exit/not-executable/{n}"), move |e: &Env| {
            exit_not_executable(e, m)
        });
        add!(
            format!("exit/not-found/{n}"),
            move |e: &Env| exit_not_found(e, m)
        );
        add!(
            format!("delegated-user/{n}"),
            move |e: &Env| delegated_user(e, m)
        );
    }
    add!("limits/aliases", limits_aliases);
    add!("exit/bad-profile-file", exit_bad_profile_file);
    add!("stats/keys", stats_keys);
    add!("cpu-throttle", cpu_throttle);
    add!("sigterm-forwarded", sigterm_forwarded);
    add!("signals-forwarded", signals_forwarded);
    add!("ctrl-c-once", ctrl_c_once);
    add!("timeout/stop-signal", timeout_stop_signal);
    add!("exit/sigkill-not-oom", exit_sigkill_not_oom);
    add!("cgroup-parent", cgroup_parent);
    add!("daemon-killed", daemon_killed);
    add!("pdeathsig", pdeathsig);
    add!("root-cgroup", root_cgroup);
    add!("spawn-cost", spawn_cost);
    add!("check/unified", check_unified);
    add!("gc/kill-outlived", gc_kill_outlived);
    crate::ns_tests::add_all(&mut t);
    crate::sec_tests::add_all(&mut t);
    crate::stats_file_tests::add_all(&mut t);
    crate::signal_tests::add_all(&mut t);
    crate::landlock_tests::add_all(&mut t);
    crate::view_tests::add_all(&mut t);
    crate::seccomp_tests::add_all(&mut t);
    crate::systemd_sim_tests::add_all(&mut t);
    crate::torture_tests::add_all(&mut t);
    crate::room_tests::add_all(&mut t);
    crate::fallback_tests::add_all(&mut t);
    crate::lifecycle_tests::add_all(&mut t);
    crate::network_tests::add_all(&mut t);
    t
}

/// The test running now, for the panic hook.
static CURRENT: Mutex<String> = Mutex::new(String::new());

/// Prints a measurement as a `#` comment line: kept in the VM log, not counted as a result.
pub(crate) fn note(msg: &str) {
    println!("# {msg}");
}

/// Runs every test whose name contains `filter`; returns (passed, failed).
pub fn run_all(env: &Env, filter: Option<&str>) -> (usize, usize) {
    // Orphans of a test come back to us, like to a systemd user manager, and are reaped after it.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // The workspace's release profile aborts on panic: report which test it was, and print no
    // summary, so the rig counts the VM as failed.
    std::panic::set_hook(Box::new(|info| {
        let name = CURRENT.lock().map(|n| n.clone()).unwrap_or_default();
        println!(
            "FAIL {name}: panic: {}",
            info.to_string().replace('\n', " | ")
        );
        let _ = std::io::stdout().flush();
    }));
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in all_tests(env.layout) {
        if filter.is_some_and(|s| !name.contains(s)) {
            continue;
        }
        if let Ok(mut current) = CURRENT.lock() {
            current.clone_from(&name);
        }
        let result = f(env);
        layout::reap();
        let post = layout::check_clean(env);
        let result = match (result, post) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) => Err(e),
            (Ok(()), Err(p)) => Err(format!("postcondition: {p}")),
            (Err(e), Err(p)) => Err(format!("{e}; postcondition: {p}")),
        };
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {}", e.replace('\n', " | "));
                layout::force_clean(env);
            }
        }
        let _ = std::io::stdout().flush();
    }
    (passed, failed)
}

fn write_file(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {path}: {e}"))
}

/// Checks the output of SHOW_LIMITS (the first four lines; a test may print more after them):
/// placement under `parent` and the three limit files.
pub(crate) fn expect_limits(
    r: &Run,
    parent: &str,
    mem: &str,
    pids: &str,
    cpu: &str,
) -> Result<(), String> {
    r.expect_code(0)?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    let [cg, m, p, c, ..] = lines[..] else {
        return Err(format!("expected 4 lines from the agent, got {}", r.show()));
    };
    let cg = cg
        .strip_prefix("0::")
        .ok_or_else(|| format!("no 0:: line: {}", r.show()))?;
    expect_agent_cgroup(cg, parent)?;
    ensure((m, p, c) == (mem, pids, cpu), || {
        format!(
            "limits inside the agent: memory.max={m} pids.max={p} cpu.max={c:?}, expected {mem} {pids} {cpu:?}"
        )
    })
}

fn placement(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--", "cat", "/proc/self/cgroup"],
    )?;
    r.expect_code(0)?;
    let seen = v2_line(&r.stdout)?;
    expect_agent_cgroup(seen, env.caller_parent())?;
    let cg = r.stat("cgroup")?;
    ensure(cg.as_str() == Some(seen), || {
        format!("stats cgroup {cg} differs from the agent's view {seen:?}")
    })?;
    ensure(r.stderr.is_empty(), || {
        format!("-q but stderr: {}", r.show())
    })
}

fn limits_small(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--profile", "small", "--", "sh", "-c", SHOW_LIMITS],
    )?;
    expect_limits(&r, env.caller_parent(), "536870912", "64", "50000 100000")
}

fn limits_overrides(env: &Env, m: Spawn) -> Result<(), String> {
    let args = [
        "-q",
        "--profile",
        "small",
        "--memory",
        "256MiB",
        "--cpu",
        "1.5",
        "--pids",
        "20",
        "--",
        "sh",
        "-c",
        SHOW_LIMITS,
    ];
    let r = run(env, &root(env), m, &args)?;
    expect_limits(&r, env.caller_parent(), "268435456", "20", "150000 100000")
}

fn limits_file(env: &Env, m: Spawn) -> Result<(), String> {
    let path = format!("/tmp/limits-{}.toml", m.name());
    write_file(
        &path,
        "description = \"vm test\"\n[limits]\nmemory = \"1024000K\"\nmemory_high = \"448MiB\"\n\
         cpu = 0.25\ncpu_weight = 50\npids = 33\n",
    )?;
    let script = format!("{SHOW_LIMITS}; cat $cg/memory.high $cg/cpu.weight");
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--profile", &path, "--", "sh", "-c", &script],
    )?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure(lines.len() == 6, || {
        format!("expected 6 lines, got {}", r.show())
    })?;
    let first = lines[..4].join("\n");
    let four = Run {
        code: r.code,
        stdout: first,
        stderr: r.stderr.clone(),
        stats: None,
        stats_err: String::new(),
    };
    expect_limits(
        &four,
        env.caller_parent(),
        "1024000000",
        "33",
        "25000 100000",
    )?;
    ensure(lines[4] == "469762048" && lines[5] == "50", || {
        format!(
            "memory.high={} cpu.weight={}, expected 469762048 50",
            lines[4], lines[5]
        )
    })
}

fn limits_aliases(env: &Env) -> Result<(), String> {
    let path = "/tmp/aliases.toml";
    write_file(
        path,
        "[limits]\nmemory_bytes = 268435456\ncpu_quota = 0.5\nmax_pids = 40\nexec_timeout_secs = 600\n",
    )?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--profile", path, "--", "sh", "-c", SHOW_LIMITS],
    )?;
    expect_limits(&r, env.caller_parent(), "268435456", "40", "50000 100000")
}

fn exit_code(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(env, &root(env), m, &["-q", "--", "sh", "-c", "exit 7"])?;
    r.expect_code(7)?;
    r.expect_outcome("exited")?;
    ensure(r.stat_u64("exit_code")? == 7, || {
        "stats exit_code is not 7".into()
    })
}

fn exit_signal(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--", "sh", "-c", "kill -TERM $$"],
    )?;
    r.expect_code(143)?;
    r.expect_outcome("signaled")?;
    ensure(r.stat_u64("signal")? == 15, || {
        "stats signal is not 15".into()
    })
}

fn exit_timeout(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--timeout", "2s", "--", "sleep", "60"],
    )?;
    r.expect_code(124)?;
    r.expect_outcome("timed_out")?;
    let wall = r.stat_u64("wall_time_us")?;
    ensure((1_900_000..50_000_000).contains(&wall), || {
        format!("wall_time_us {wall} for a 2 s timeout on sleep 60")
    })
}

/// An error of synwire-run's own, as root: 125, an `error:` line, and no cgroup created.
fn expect_own_error(env: &Env, m: Spawn, args: &[&str], needles: &[&str]) -> Result<(), String> {
    crate::harness::expect_own_error(
        env,
        &root(env),
        m,
        &crate::harness::Setup::default(),
        args,
        needles,
    )
}

fn exit_bad_value(env: &Env, m: Spawn) -> Result<(), String> {
    expect_own_error(env, m, &["--memory", "lots", "--", "true"], &["lots"])
}

fn exit_bad_profile_file(env: &Env) -> Result<(), String> {
    let path = "/tmp/typo.toml";
    write_file(path, "[limits]\nmemroy = \"1G\"\n")?;
    expect_own_error(
        env,
        Spawn::Clone3,
        &["--profile", path, "--", "true"],
        &[path, "memroy", "2"],
    )
}

fn exit_not_executable(env: &Env, m: Spawn) -> Result<(), String> {
    let path = "/tmp/not-executable";
    write_file(path, "#!/bin/sh\necho should not run\n")?;
    let r = run(env, &root(env), m, &["-q", "--", path])?;
    r.expect_code(126)?;
    ensure(r.stderr.contains(path), || {
        format!("message does not name {path}: {}", r.show())
    })?;
    r.expect_outcome("exec_failed")
}

fn exit_not_found(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(env, &root(env), m, &["-q", "--", "no-such-command-xyz"])?;
    r.expect_code(127)?;
    ensure(r.stderr.contains("no-such-command-xyz"), || {
        format!("message does not name the command: {}", r.show())
    })?;
    r.expect_outcome("exec_failed")
}

fn delegated_user(env: &Env, m: Spawn) -> Result<(), String> {
    let caller = Caller {
        cgroup: env.user_caller.clone(),
        uid: Some(USER_UID),
        tty: None,
        cwd: None,
    };
    let script = format!("id -u; {SHOW_LIMITS}");
    let r = run(
        env,
        &caller,
        m,
        &["-q", "--profile", "small", "--", "sh", "-c", &script],
    )?;
    let (uid, rest) = r.stdout.split_once('\n').unwrap_or((&r.stdout, ""));
    ensure(uid == USER_UID.to_string(), || {
        format!("agent not running as {USER_UID}: {}", r.show())
    })?;
    let four = Run {
        code: r.code,
        stdout: rest.to_string(),
        stderr: r.stderr.clone(),
        stats: None,
        stats_err: String::new(),
    };
    expect_limits(
        &four,
        layout::parent(&env.user_caller),
        "536870912",
        "64",
        "50000 100000",
    )
}

fn stats_keys(env: &Env) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["--profile", "small", "--", "sh", "-c", "exit 3"],
    )?;
    r.expect_code(3)?;
    let s = r.stats()?;
    let obj = s
        .as_object()
        .ok_or_else(|| format!("stats is not an object: {s}"))?;
    let keys = [
        "id",
        "profile",
        "cgroup",
        "command",
        "outcome",
        "exit_code",
        "signal",
        "wall_time_us",
        "cpu_usage_us",
        "cpu_user_us",
        "cpu_system_us",
        "cpu_throttled_us",
        "cpu_nr_throttled",
        "memory_peak_bytes",
        "memory_limit_bytes",
        "oom_kills",
        "pids_peak",
        "pids_limit",
    ];
    let missing: Vec<_> = keys.iter().filter(|k| !obj.contains_key(**k)).collect();
    ensure(missing.is_empty(), || {
        format!("missing keys {missing:?} in {s}")
    })?;
    let id = s["id"].as_str().unwrap_or("");
    ensure(crate::harness::is_uuid_v4(id), || {
        format!("id {id:?} is not a uuid v4")
    })?;
    let cg = s["cgroup"].as_str().unwrap_or("");
    expect_agent_cgroup(cg, env.caller_parent())?;
    ensure(cg.ends_with(id), || {
        format!("cgroup {cg} does not end with id {id}")
    })?;
    ensure(s["profile"] == "small", || {
        format!("profile {}", s["profile"])
    })?;
    ensure(
        s["command"] == serde_json::json!(["sh", "-c", "exit 3"]),
        || format!("command {}", s["command"]),
    )?;
    r.expect_outcome("exited")?;
    ensure(s["exit_code"] == 3 && s["signal"].is_null(), || {
        format!("exit_code {} signal {}", s["exit_code"], s["signal"])
    })?;
    let wall = r.stat_u64("wall_time_us")?;
    let usage = r.stat_u64("cpu_usage_us")?;
    let user = r.stat_u64("cpu_user_us")?;
    let sys = r.stat_u64("cpu_system_us")?;
    ensure(wall > 0 && usage <= 2 * wall + 100_000, || {
        format!("wall_time_us {wall} cpu_usage_us {usage}")
    })?;
    ensure(user + sys <= usage + 10_000, || {
        format!("user {user} + system {sys} exceed usage {usage}")
    })?;
    r.stat_u64("cpu_throttled_us")?;
    r.stat_u64("cpu_nr_throttled")?;
    let peak = r.stat_u64("memory_peak_bytes")?;
    ensure((100_000..536_870_912).contains(&peak), || {
        format!("memory_peak_bytes {peak}")
    })?;
    ensure(r.stat_u64("memory_limit_bytes")? == 536_870_912, || {
        "memory_limit_bytes".into()
    })?;
    ensure(r.stat_u64("oom_kills")? == 0, || "oom_kills not 0".into())?;
    ensure(r.stat_u64("pids_limit")? == 64, || {
        "pids_limit not 64".into()
    })?;
    note(&format!(
        "stats: wall_time_us {wall} cpu_usage_us {usage} memory_peak_bytes {peak} pids_peak {}",
        s["pids_peak"]
    ));
    let has_pids_peak = env.path("/user.slice").join("pids.peak").exists();
    if has_pids_peak || !s["pids_peak"].is_null() {
        let p = r.stat_u64("pids_peak")?;
        ensure((1..=64).contains(&p), || format!("pids_peak {p}"))?;
    }
    // The human summary is on stderr without -q.
    ensure(!r.stderr.trim().is_empty(), || {
        format!("no summary on stderr: {}", r.show())
    })
}

fn cpu_throttle(env: &Env) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--cpu", "0.2", "--", VMTEST, "spin", "3"],
    )?;
    r.expect_code(0)?;
    let usage = r.stat_u64("cpu_usage_us")? as f64;
    let wall = r.stat_u64("wall_time_us")? as f64;
    let ratio = usage / wall;
    let nr = r.stat_u64("cpu_nr_throttled")?;
    note(&format!(
        "cpu-throttle: usage/wall {ratio:.3}, nr_throttled {nr}, throttled_us {}",
        r.stat("cpu_throttled_us")?
    ));
    ensure(ratio < 0.5 && nr > 0, || {
        format!("cpu 0.2: usage/wall {ratio:.3}, nr_throttled {nr}")
    })
}

fn sigterm_forwarded(env: &Env) -> Result<(), String> {
    let s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--", VMTEST, "trap-term"],
    )?;
    let r = s.sigterm_when_ready()?;
    r.expect_code(42)?;
    ensure(r.stdout.contains("got TERM"), || {
        format!("agent did not see TERM: {}", r.show())
    })
}

/// Runs `synwire-vmtest HELPER` with `--timeout 2s` under a profile file holding `profile`; it
/// must end as timed_out with 124.
pub(crate) fn run_timed_out(
    env: &Env,
    name: &str,
    profile: &str,
    helper: &str,
) -> Result<Run, String> {
    let path = format!("/tmp/{name}.toml");
    write_file(&path, profile)?;
    let args = [
        "-q",
        "--profile",
        &path,
        "--timeout",
        "2s",
        "--",
        VMTEST,
        helper,
    ];
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    r.expect_code(124)?;
    r.expect_outcome("timed_out")?;
    Ok(r)
}

fn daemon_killed(env: &Env) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--", VMTEST, "daemonize"],
    )?;
    r.expect_code(0)?;
    expect_gone(&r)
}

/// The daemonize helper printed its grandchild's pid: that process must no longer run.
fn expect_gone(r: &Run) -> Result<(), String> {
    let pid: i32 = r
        .stdout
        .trim()
        .parse()
        .map_err(|_| format!("daemonize output: {}", r.show()))?;
    let state = layout::live_state(pid);
    ensure(state.is_none(), || {
        format!(
            "daemonised grandchild {pid} still alive (state {state:?}) after synwire-run returned"
        )
    })
}

fn root_cgroup(env: &Env) -> Result<(), String> {
    let caller = Caller {
        cgroup: "/".into(),
        uid: None,
        tty: None,
        cwd: None,
    };
    let r = run(
        env,
        &caller,
        Spawn::Clone3,
        &["-q", "--profile", "small", "--", "sh", "-c", SHOW_LIMITS],
    )?;
    expect_limits(&r, "/", "536870912", "64", "50000 100000")
}

/// Measures a whole launch (`synwire-run -q --profile small -- true`, from exec to exit) in both
/// spawn modes, interleaved, and prints the medians as a `#` line for the README. Emulated time:
/// compare the two, not the absolute values. Passes when every launch exits 0.
fn spawn_cost(env: &Env) -> Result<(), String> {
    const ROUNDS: usize = 15;
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, m) in [Spawn::Clone3, Spawn::Fork].into_iter().enumerate() {
            let t0 = std::time::Instant::now();
            let r = run(
                env,
                &root(env),
                m,
                &["-q", "--profile", "small", "--", "true"],
            )?;
            times[i].push(t0.elapsed().as_micros() as u64);
            r.expect_code(0)?;
            ensure(r.stat("spawn")?.as_str() == Some(m.name()), || {
                format!(
                    "spawn mode {} reported for {}",
                    r.stat("spawn").unwrap(),
                    m.name()
                )
            })?;
        }
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (c, f) = (median(&mut times[0]), median(&mut times[1]));
    note(&format!(
        "spawn-cost: launch median clone3 {:.2} ms, fork+cgroup.procs {:.2} ms ({:+.2} ms), {ROUNDS} rounds",
        c as f64 / 1000.0,
        f as f64 / 1000.0,
        (f as f64 - c as f64) / 1000.0
    ));
    Ok(())
}

fn hybrid_small_refused(env: &Env) -> Result<(), String> {
    expect_own_error(
        env,
        Spawn::Clone3,
        &["--profile", "small", "--", "true"],
        &["systemd.unified_cgroup_hierarchy=1"],
    )?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["--profile", "small", "--", "true"],
    )?;
    let names = ["memory", "pids", "cpu"];
    ensure(names.iter().any(|n| r.stderr.contains(n)), || {
        format!("error names no missing controller: {}", r.show())
    })
}

/// Degraded runs keep the exit status and warn about each limit that is not enforced.
fn expect_degraded(r: &Run, limits: &[&str]) -> Result<(), String> {
    r.expect_code(7)?;
    let warnings: String = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("synwire-run: warning:"))
        .collect::<Vec<_>>()
        .join("\n");
    ensure(!warnings.is_empty(), || format!("no warning: {}", r.show()))?;
    for l in limits {
        ensure(warnings.contains(l), || {
            format!("warning does not name {l}: {}", r.show())
        })?;
    }
    Ok(())
}

fn hybrid_allow_degraded(env: &Env) -> Result<(), String> {
    let args = [
        "--allow-degraded",
        "--profile",
        "small",
        "--",
        "sh",
        "-c",
        "grep ^0:: /proc/self/cgroup; exit 7",
    ];
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    expect_degraded(&r, &["memory", "pids", "cpu"])?;
    // The unified hierarchy still gives the agent its own cgroup, for tracking and kill.
    expect_agent_cgroup(v2_line(&r.stdout)?, env.caller_parent())
}

/// Degraded mode still kills what the command left behind (on 5.10 without cgroup.kill).
fn hybrid_daemon_killed(env: &Env) -> Result<(), String> {
    let args = [
        "-q",
        "--allow-degraded",
        "--profile",
        "small",
        "--",
        VMTEST,
        "daemonize",
    ];
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    r.expect_code(0)?;
    expect_gone(&r)
}

fn hybrid_required_false(env: &Env) -> Result<(), String> {
    let path = "/tmp/optional.toml";
    write_file(
        path,
        "[limits]\nmemory = \"512MiB\"\n[cgroup]\nrequired = false\n",
    )?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["--profile", path, "--", "sh", "-c", "exit 7"],
    )?;
    expect_degraded(&r, &["memory"])
}

/// `synwire-run check` run from `cgroup` (as root): its exit code and output.
fn check_from(env: &Env, cgroup: &str) -> Result<(i32, String), String> {
    let _ = env;
    let o = std::process::Command::new(VMTEST)
        .args(["in-cgroup", cgroup, "--", crate::harness::SYNWIRE, "check"])
        .output()
        .map_err(|e| format!("run check: {e}"))?;
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    Ok((o.status.code().unwrap_or(-1), text))
}

/// `synwire-run gc ARGS` run from `cgroup` (as root): its exit code and output.
pub(crate) fn gc_from(cgroup: &str, args: &[&str]) -> Result<(i32, String), String> {
    let mut cmd = vec!["in-cgroup", cgroup, "--", crate::harness::SYNWIRE, "gc"];
    cmd.extend_from_slice(args);
    let o = std::process::Command::new(VMTEST)
        .args(&cmd)
        .output()
        .map_err(|e| format!("run gc: {e}"))?;
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    Ok((o.status.code().unwrap_or(-1), text))
}

/// Starts `synwire-run -q -- sh -c SCRIPT` (which must print `ready`), SIGKILLs synwire-run once
/// it is ready (with `guardian_too`, its guardian first, so that nothing cleans up after it), and
/// returns the agent cgroup it left, the lines before `ready` and when the SIGKILL was sent.
pub(crate) fn launcher_killed(
    env: &Env,
    script: &str,
    guardian_too: bool,
) -> Result<(String, Vec<String>, Instant), String> {
    let before = layout::walk(env);
    let mut s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--", "sh", "-c", script],
    )?;
    let mut lines = Vec::new();
    loop {
        let l = s.read_line()?;
        if l == "ready" {
            break;
        }
        lines.push(l);
    }
    let agent = layout::walk(env)
        .into_iter()
        .find(|c| !before.contains(c) && layout::parent(c).ends_with("/synwire/agents"))
        .ok_or("no agent cgroup while the agent ran")?;
    if guardian_too {
        let guardian = crate::lifecycle_tests::guardian_of(s.pid())
            .ok_or("synwire-run has no synwire-guard child")?;
        crate::lifecycle_tests::kill_and_wait(guardian)?;
    }
    let killed = Instant::now();
    let _ = kill(Pid::from_raw(s.pid()), Signal::SIGKILL);
    let _ = s.finish();
    Ok((agent, lines, killed))
}

/// Waits until `cg` has no process (`populated 0` in its cgroup.events), woken by the kernel's
/// POLLPRI notification on that file rather than by polling; false if it still has one after
/// 10 s.
pub(crate) fn wait_no_procs(env: &Env, cg: &str) -> bool {
    use std::io::{Read, Seek};
    use std::os::fd::AsRawFd;
    let events = env.path(cg).join("cgroup.events");
    let Ok(mut file) = std::fs::File::open(&events) else {
        // A cgroup that is gone holds no process.
        return !env.path(cg).exists();
    };
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        // Reading through the polled descriptor re-arms it: a change after this read wakes the
        // poll below, so none is missed.
        let mut text = String::new();
        if file
            .rewind()
            .and_then(|_| file.read_to_string(&mut text))
            .is_err()
        {
            return !env.path(cg).exists();
        }
        if text.lines().any(|l| l == "populated 0") {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(10_000) as libc::c_int) };
    }
}

/// A daemon that outlived its SIGKILLed launcher (and its guardian, killed first): `gc` keeps it
/// and says so, `gc --kill` ends it and removes the cgroup.
fn gc_kill_outlived(env: &Env) -> Result<(), String> {
    let script = format!("{VMTEST} daemonize; echo ready; exec sleep 1000");
    let (agent, lines, _) = launcher_killed(env, &script, true)?;
    let daemon: i32 = lines
        .first()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("no daemon pid in {lines:?}"))?;
    let (code, out) = gc_from(&env.caller, &[])?;
    ensure(
        code == 0 && out.contains("outlived") && env.path(&agent).exists(),
        || format!("gc without --kill: exit {code}:\n{out}"),
    )?;
    let (code, out) = gc_from(&env.caller, &["--kill"])?;
    ensure(
        code == 0
            && out.contains("killed")
            && out.contains(&format!("removed {}", env.path(&agent).display())),
        || format!("gc --kill: exit {code}:\n{out}"),
    )?;
    layout::reap();
    ensure(layout::live_state(daemon).is_none(), || {
        format!("daemon {daemon} survived gc --kill")
    })?;
    ensure(!env.path(&agent).exists(), || {
        format!("{agent} still exists after gc --kill")
    })
}

/// On the unified layout `check` passes: cgroup2, placement, the three controllers.
fn check_unified(env: &Env) -> Result<(), String> {
    let (code, out) = check_from(env, &env.caller)?;
    ensure(code == 0, || format!("check exited {code}:\n{out}"))?;
    for needle in [
        "OK   cgroup2",
        "OK   placement",
        "memory available",
        "cpu available",
        "pids available",
        "this host runs the `small` profile enforced",
    ] {
        ensure(out.contains(needle), || {
            format!("check output lacks {needle:?}:\n{out}")
        })?;
    }
    ensure(!out.contains("FAIL"), || format!("a FAIL line:\n{out}"))
}

/// On a hybrid layout `check` exits non-zero naming the problem and its fix.
fn hybrid_check(env: &Env) -> Result<(), String> {
    let (code, out) = check_from(env, &env.caller)?;
    ensure(code != 0, || {
        format!("check exited 0 on a hybrid layout:\n{out}")
    })?;
    for needle in [
        "WARN cgroup2",
        "hybrid",
        "FAIL controller",
        "memory missing",
        "systemd.unified_cgroup_hierarchy=1",
    ] {
        ensure(out.contains(needle), || {
            format!("check output lacks {needle:?}:\n{out}")
        })?;
    }
    Ok(())
}

fn hybrid_default_runs(env: &Env) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--profile",
            "default",
            "--",
            "cat",
            "/proc/self/cgroup",
        ],
    )?;
    r.expect_code(0)?;
    let seen = v2_line(&r.stdout)?;
    expect_agent_cgroup(seen, env.caller_parent())?;
    ensure(!r.stderr.contains("error"), || {
        format!("unexpected error: {}", r.show())
    })
}

/// synwire-run SIGKILLed: its child dies too (PR_SET_PDEATHSIG). The agent cgroup stays behind
/// (nobody is left to remove it): the test removes it.
fn pdeathsig(env: &Env) -> Result<(), String> {
    let before = layout::walk(env);
    let mut s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--", VMTEST, "ignore-term"],
    )?;
    let ready = s.read_line();
    let agent = layout::walk(env)
        .into_iter()
        .find(|c| !before.contains(c) && layout::parent(c).ends_with("/synwire/agents"));
    // Its guardian removes the agent's cgroup after synwire-run dies: wait for it too, below, so
    // that the test does not race it.
    let guardian = crate::lifecycle_tests::guardian_of(s.pid());
    let _ = kill(Pid::from_raw(s.pid()), Signal::SIGKILL);
    let r = s.finish();
    ensure(ready.as_deref() == Ok("ready"), || {
        format!("agent not ready: {ready:?}; {}", r.show())
    })?;
    let agent = agent.ok_or("no agent cgroup while the agent ran")?;
    let procs = env.path(&agent).join("cgroup.procs");
    // The kernel delivers the death signal as synwire-run exits; wait for it, bounded.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let left = loop {
        let left = layout::read(&procs).unwrap_or_default();
        if left.trim().is_empty() || std::time::Instant::now() > until {
            break left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    while guardian.is_some_and(|g| layout::live_state(g).is_some())
        && std::time::Instant::now() < until
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    layout::reap();
    let _ = std::fs::remove_dir(env.path(&agent));
    ensure(left.trim().is_empty(), || {
        format!(
            "agent still running after synwire-run was killed: {}",
            left.trim()
        )
    })?;
    ensure(
        guardian.is_none_or(|g| layout::live_state(g).is_none()),
        || format!("the guardian {guardian:?} still runs 10 s after synwire-run was killed"),
    )
}

/// Every signal of the list sent to synwire-run reaches the agent, one at a time.
fn signals_forwarded(env: &Env) -> Result<(), String> {
    let mut s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--", VMTEST, "trap-signals"],
    )?;
    let mut got = vec![s.read_line()];
    if got[0].as_deref() == Ok("ready") {
        for sig in crate::helpers::FORWARDED {
            let _ = kill(Pid::from_raw(s.pid()), sig);
            let line = s.read_line();
            let ok = line.as_deref() == Ok(&format!("got {}", sig.as_str()));
            got.push(line);
            if !ok {
                break;
            }
        }
    }
    let r = s.finish();
    r.expect_code(42)?;
    let want =
        "ready got SIGHUP got SIGINT got SIGQUIT got SIGUSR1 got SIGUSR2 got SIGWINCH got SIGTERM";
    let seen: Vec<String> = got.into_iter().map(|l| l.unwrap_or_else(|e| e)).collect();
    ensure(seen.join(" ") == want, || {
        format!(
            "agent saw {seen:?}, expected each forwarded signal once; {}",
            r.show()
        )
    })
}

/// On timeout the profile's stop.signal is sent, then everything is killed after the grace.
fn timeout_stop_signal(env: &Env) -> Result<(), String> {
    let profile = "[stop]\nsignal = \"SIGINT\"\ngrace = \"1s\"\n";
    let r = run_timed_out(env, "stop-int", profile, "trap-signals")?;
    ensure(r.stdout == "ready\ngot SIGINT\n", || {
        format!("expected the agent to get SIGINT only: {}", r.show())
    })
}

/// A command killed by SIGKILL from outside is 128+9 and "signaled", not an OOM kill.
fn exit_sigkill_not_oom(env: &Env) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--profile",
            "small",
            "--",
            "sh",
            "-c",
            "kill -KILL $$",
        ],
    )?;
    r.expect_code(137)?;
    r.expect_outcome("signaled")?;
    ensure(
        r.stat_u64("signal")? == 9 && r.stat_u64("oom_kills")? == 0,
        || {
            format!(
                "signal {:?} oom_kills {:?}",
                r.stat("signal"),
                r.stat("oom_kills")
            )
        },
    )
}

/// --cgroup-parent puts the agent below the given cgroup instead of `<parent>/synwire/agents`,
/// and removes it afterwards.
fn cgroup_parent(env: &Env) -> Result<(), String> {
    let custom = format!("{}/custom.slice", env.caller_parent());
    let dir = env.path(&custom);
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--cgroup-parent",
            &custom,
            "--profile",
            "small",
            "--",
            "sh",
            "-c",
            SHOW_LIMITS,
        ],
    );
    // Agent cgroups left below it (any depth), then remove the whole test subtree.
    let below: Vec<String> = layout::walk(env)
        .into_iter()
        .filter(|c| c.starts_with(&format!("{custom}/")))
        .collect();
    let children: Vec<&String> = below
        .iter()
        .filter(|c| crate::harness::is_uuid_v4(c.rsplit('/').next().unwrap_or("")))
        .collect();
    for c in below.iter().rev() {
        let _ = std::fs::remove_dir(env.path(c));
    }
    let _ = std::fs::remove_dir(&dir);
    let r = r?;
    r.expect_code(0)?;
    let cg = v2_line(&r.stdout)?;
    let id = cg.strip_prefix(&format!("{custom}/")).unwrap_or("");
    let id = id.rsplit('/').next().unwrap_or("");
    ensure(
        cg.starts_with(&format!("{custom}/")) && crate::harness::is_uuid_v4(id),
        || format!("agent cgroup {cg:?} is not below {custom}/ ending in a uuid v4"),
    )?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure(
        lines.get(1..) == Some(&["536870912", "64", "50000 100000"][..]),
        || format!("limits below --cgroup-parent: {}", r.show()),
    )?;
    ensure(children.is_empty(), || {
        format!("left below {custom}: {children:?}")
    })
}

/// Ctrl-C on the terminal reaches the agent exactly once: the terminal signals the whole
/// foreground job, and synwire-run must not forward a second copy.
///
/// Each round types ^C, waits for the agent to report SIGINT, then sends SIGUSR1 to synwire-run:
/// it handles its pending signals in order, so when the agent reports the forwarded SIGUSR1, a
/// forwarded copy of the SIGINT would already have arrived. (A copy that lands while the original is still pending merges with it;
/// the agent spins so it takes signals at once, and several rounds make a miss unlikely.)
fn ctrl_c_once(env: &Env) -> Result<(), String> {
    const ROUNDS: usize = 5;
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
        &["-q", "--", VMTEST, "count-int"],
    )?;
    let mut seen = vec![s.read_line()];
    // synwire-run is the only process in the caller's cgroup (the shell stays in ours) beside
    // its guardian, which gets the ^C too and must ignore it.
    let synwire: Vec<Pid> = launchers_in(env, &env.caller)?
        .into_iter()
        .map(Pid::from_raw)
        .collect();
    if seen[0].as_deref() == Ok("ready") && synwire.len() == 1 {
        // synwire-run on the first CPU, the agent pinned itself to the second.
        let _ = crate::helpers::pin_to_cpu(synwire[0].as_raw(), 0);
        'rounds: for _ in 0..ROUNDS {
            // ^C typed on the terminal: the kernel sends SIGINT to the foreground process group
            // (asynchronously, from the tty's input processing): wait until the agent has it.
            pty.write(b"\x03")?;
            let line = s.read_line();
            let ok = line.as_deref() == Ok("INT");
            seen.push(line);
            if !ok {
                break;
            }
            let _ = kill(synwire[0], Signal::SIGUSR1);
            loop {
                let line = s.read_line();
                let done = line.as_deref() == Ok("USR1");
                let bad = line.is_err();
                seen.push(line);
                if bad {
                    break 'rounds;
                }
                if done {
                    break;
                }
            }
        }
    }
    for pid in &synwire {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let r = s.finish();
    drop(pty);
    ensure(synwire.len() == 1, || {
        format!("expected synwire-run alone in the caller's cgroup, found {synwire:?}")
    })?;
    let seen: Vec<String> = seen.into_iter().map(|l| l.unwrap_or_else(|e| e)).collect();
    let mut want = vec!["ready"];
    for _ in 0..ROUNDS {
        want.extend(["INT", "USR1"]);
    }
    ensure(seen == want, || {
        format!(
            "agent lines {seen:?}, expected ready then INT, USR1 per ^C; {}",
            r.show()
        )
    })?;
    r.expect_code(0)?;
    // The lines read above are not in r.stdout: only the final count should be left.
    ensure(r.stdout == format!("ints {ROUNDS}\n"), || {
        format!(
            "{ROUNDS} ^C on the terminal, but the agent got: {}",
            r.show()
        )
    })
}

/// The processes in cgroup `cg` but synwire-run's guardian (`synwire-guard`): the launchers a
/// test started from there.
pub(crate) fn launchers_in(env: &Env, cg: &str) -> Result<Vec<i32>, String> {
    let procs = layout::read(&env.path(cg).join("cgroup.procs"))?;
    Ok(procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .map_or(true, |c| c.trim() != "synwire-guard")
        })
        .collect())
}
