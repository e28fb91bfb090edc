//! The torture suite: hostile workloads, one row each, named `torture/ROW`, run on the unified
//! layout of every kernel. Every row ends with the same leak check (`leak_check`): no agent cgroup
//! that was not there before the row, and no process started during the row still running. A row
//! that passes prints `# torture ROW: FIGURE`, its key number, which tests/vm/run gathers into the
//! torture table (kernels x rows) at the end of a run.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::escape_tests;
use crate::harness::{
    ensure, expect_agent_cgroup, run, start, start_stdin, v2_line, Spawn, Started, DEADLINE, VMTEST,
};
use crate::layout::{self, Env};
use crate::tests::{gc_from, launcher_killed, note, root, run_timed_out, wait_no_procs, TestFn};

/// The rows, in the order of the table (`synwire-vmtest torture-rows` lists them for
/// tests/vm/run).
pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    row(t, "memory-bomb", memory_bomb);
    row(t, "fork-bomb", fork_bomb);
    row(t, "ignores-sigterm", ignores_sigterm);
    row(t, "500-sleepers", sleepers_500);
    row(t, "launcher-sigkilled", launcher_sigkilled);
    row(t, "200-parallel", parallel_200);
    row(t, "escape-default", |e| {
        escape_tests::attempt(e, "default", true)
    });
    row(t, "escape-isolated", |e| {
        escape_tests::attempt(e, "isolated", false)
    });
    row(t, "escape-agent", |e| {
        escape_tests::attempt(e, "agent", false)
    });
}

/// Runs `f`, then the leak check (no agent cgroup and no process left that the test started);
/// a test fails on either. Returns what `f` returned.
pub fn leak_checked<T>(env: &Env, f: impl FnOnce(&Env) -> Result<T, String>) -> Result<T, String> {
    let before = Snapshot::take(env);
    let result = f(env);
    match (result, leak_check(env, &before)) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(l)) => Err(format!("leak check: {l}")),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(l)) => Err(format!("{e}; leak check: {l}")),
    }
}

/// A test that ends with the leak check.
pub fn with_leak_check(f: impl Fn(&Env) -> Result<(), String> + 'static) -> TestFn {
    Box::new(move |env| leak_checked(env, &f))
}

/// Adds `torture/NAME`: runs `f`, then the leak check; prints the figure `f` returned if both
/// pass.
fn row(
    t: &mut Vec<(String, TestFn)>,
    name: &'static str,
    f: impl Fn(&Env) -> Result<String, String> + 'static,
) {
    t.push((
        format!("torture/{name}"),
        Box::new(move |env| {
            let figure = leak_checked(env, &f)?;
            note(&format!("torture {name}: {figure}"));
            Ok(())
        }),
    ));
}

/// What existed before a row: agent cgroups, and processes as (pid, start time) so a reused pid
/// is not mistaken for an old process.
pub struct Snapshot {
    cgroups: HashSet<String>,
    procs: HashSet<(i32, u64)>,
}

impl Snapshot {
    pub fn take(env: &Env) -> Snapshot {
        Snapshot {
            cgroups: agent_cgroups(env),
            procs: processes().iter().map(|p| (p.pid, p.start)).collect(),
        }
    }
}

/// Every cgroup below a `synwire/agents` directory, wherever in the hierarchy (root's and the
/// delegated user's).
fn agent_cgroups(env: &Env) -> HashSet<String> {
    layout::walk(env)
        .into_iter()
        .filter(|c| c.contains("/synwire/agents/"))
        .collect()
}

const PF_EXITING: u64 = 0x4;
const PF_KTHREAD: u64 = 0x0020_0000;
/// SIGKILL's bit in /proc/PID/status signal masks.
const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);

/// A user-space process, from /proc.
struct Proc {
    pid: i32,
    comm: String,
    state: char,
    /// Start time in clock ticks after boot: with the pid, identifies the process.
    start: u64,
    /// Exiting, or SIGKILL pending: the kernel is already ending it.
    dying: bool,
    cgroup: String,
}

impl Proc {
    fn read(pid: i32) -> Option<Proc> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The name is in parentheses and may itself contain spaces and parentheses.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let state = f.first()?.chars().next()?;
        let flags: u64 = f.get(6)?.parse().ok()?;
        let start: u64 = f.get(19)?.parse().ok()?;
        if flags & PF_KTHREAD != 0 {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let sigkill = status.lines().any(|l| {
            ["SigPnd:", "ShdPnd:"].iter().any(|k| {
                l.strip_prefix(k)
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                    .is_some_and(|m| m & SIGKILL_BIT != 0)
            })
        });
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| v2_line(&t).ok().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        Some(Proc {
            pid,
            comm,
            state,
            start,
            dying: flags & PF_EXITING != 0 || sigkill,
            cgroup,
        })
    }

    fn show(&self) -> String {
        format!(
            "{} ({}, state {}{}, cgroup {})",
            self.pid,
            self.comm,
            self.state,
            if self.dying { ", dying" } else { "" },
            self.cgroup
        )
    }
}

/// Every user-space process but PID 1 (the VM's init) and the suite itself, zombies left out
/// (they no longer run; the suite reaps the ones that come back to it).
fn processes() -> Vec<Proc> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != 1 && pid != me)
        .filter_map(Proc::read)
        .filter(|p| !matches!(p.state, 'Z' | 'X'))
        .collect()
}

/// Waits until process `pid` has exited, woken by its pidfd (Linux 5.3+), for at most `limit`;
/// true if it has.
fn wait_exit(pid: i32, limit: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags; the result is checked and owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        // ESRCH: already gone.
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, limit.as_millis().min(60_000) as libc::c_int) };
    n > 0
}

/// The check every row ends with: no process started during the row still runs, and no agent
/// cgroup exists that did not before it. A process the kernel is already ending (exiting, or
/// SIGKILL pending) is waited for through its pidfd, for at most 10 s; one that is not is a leak
/// at once.
pub fn leak_check(env: &Env, before: &Snapshot) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(10);
    let survivors = loop {
        layout::reap();
        let new: Vec<Proc> = processes()
            .into_iter()
            .filter(|p| !before.procs.contains(&(p.pid, p.start)))
            .collect();
        let left = until.saturating_duration_since(Instant::now());
        if new.is_empty() || new.iter().any(|p| !p.dying) || left.is_zero() {
            break new;
        }
        for p in &new {
            wait_exit(p.pid, until.saturating_duration_since(Instant::now()));
        }
    };
    let mut problems: Vec<String> = survivors
        .iter()
        .map(|p| format!("process {} survived", p.show()))
        .collect();
    let mut cgroups: Vec<String> = agent_cgroups(env)
        .difference(&before.cgroups)
        .cloned()
        .collect();
    cgroups.sort();
    problems.extend(cgroups.iter().map(|c| format!("agent cgroup {c} left")));
    ensure(problems.is_empty(), || problems.join("; "))
}

/// A memory bomb in an agent of three processes: memory.oom.group=1 makes the OOM killer take
/// all of them, not only the one that allocates; the run ends as oom_killed with 137.
fn memory_bomb(env: &Env) -> Result<String, String> {
    // Two sleepers beside the bomb; the agent first shows its memory.oom.group.
    let script = format!(
        "cat /sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/memory.oom.group; \
         sleep 1000 & echo $!; sleep 1000 & echo $!; exec {VMTEST} hog 256"
    );
    // Without -q: the out-of-memory explanation is part of what the user sees.
    let args = [
        "--profile",
        "small",
        "--memory",
        "64MiB",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    r.expect_code(137)?;
    r.expect_outcome("oom_killed")?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure(lines.len() == 3 && lines[0] == "1", || {
        format!(
            "expected memory.oom.group 1 and two sleeper pids: {}",
            r.show()
        )
    })?;
    let peak = r.stat("memory_peak_bytes")?;
    // Whether from memory.peak or wait4's maxrss, the peak is near the 64 MiB it died at.
    ensure(peak.as_u64().is_some_and(|p| p >= 32 << 20), || {
        format!("memory_peak_bytes {peak} after an OOM kill at 64 MiB")
    })?;
    let kills = r.stat_u64("oom_kills")?;
    // The kernel counts every process the OOM killer takes (the bomb twice, as the victim and
    // as a member of the group): alone it would be 1; 3 or more means the group went.
    ensure(kills >= 3, || {
        format!(
            "oom_kills {kills}: memory.oom.group should have killed all 3 processes; {}",
            r.show()
        )
    })?;
    ensure(r.stat_u64("memory_limit_bytes")? == 64 << 20, || {
        "memory_limit_bytes".into()
    })?;
    let err = r.stderr.to_lowercase();
    ensure(err.contains("memory") || err.contains("oom"), || {
        format!("no out-of-memory explanation on stderr: {}", r.show())
    })?;
    for pid in &lines[1..] {
        let pid: i32 = pid
            .parse()
            .map_err(|_| format!("sleeper pid {pid:?}: {}", r.show()))?;
        ensure(layout::live_state(pid).is_none(), || {
            format!("sleeper {pid} survived the OOM kill")
        })?;
    }
    Ok(format!(
        "oom_kills {kills}, peak {} MiB",
        peak.as_u64().unwrap_or(0) >> 20
    ))
}

/// Forks until pids.max refuses; teardown kills the lot.
fn fork_bomb(env: &Env) -> Result<String, String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--pids", "20", "--", VMTEST, "forkbomb"],
    )?;
    r.expect_code(0)?;
    let n: usize = r
        .stdout
        .trim()
        .strip_prefix("forked ")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("forkbomb output: {}", r.show()))?;
    ensure(n > 0 && n < 20, || {
        format!("forked {n} children under pids.max 20")
    })?;
    ensure(r.stat_u64("pids_limit")? == 20, || {
        "pids_limit not 20".into()
    })?;
    let peak = r.stat("pids_peak")?;
    ensure(
        peak.is_null() || peak.as_u64().is_some_and(|p| p <= 20 && p as usize > n),
        || format!("pids_peak {peak} with {n} forks under pids.max 20"),
    )?;
    let left = r.stat("leftover_processes")?;
    let peak = if peak.is_null() {
        "n/a".to_string()
    } else {
        peak.to_string()
    };
    Ok(format!("forked {n}, pids_peak {peak}, leftover {left}"))
}

/// An agent that ignores SIGTERM: on timeout it gets SIGTERM, then SIGKILL after the grace.
fn ignores_sigterm(env: &Env) -> Result<String, String> {
    let r = run_timed_out(env, "grace", "[stop]\ngrace = \"1s\"\n", "ignore-term")?;
    ensure(r.stdout.trim() == "ready", || {
        format!("agent output: {}", r.show())
    })?;
    let wall = r.stat_u64("wall_time_us")?;
    ensure(
        wall >= 2_900_000 && wall < DEADLINE.as_micros() as u64,
        || format!("wall_time_us {wall}: expected timeout 2 s + grace 1 s"),
    )?;
    Ok(format!(
        "killed at {:.2} s = 2 s + 1 s grace",
        wall as f64 / 1e6
    ))
}

/// The agent forks 500 sleepers and exits: synwire-run finds them all at teardown, kills them and
/// reports them.
fn sleepers_500(env: &Env) -> Result<String, String> {
    let mut s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--", VMTEST, "sleepers", "500"],
    )?;
    let line = s.read_line();
    // The agent's last act: from here synwire-run reaps it, kills 500 processes and removes the
    // cgroup.
    let exiting = Instant::now();
    let r = s.finish();
    let teardown = exiting.elapsed();
    ensure(line.as_deref() == Ok("forked 500"), || {
        format!("agent said {line:?}: {}", r.show())
    })?;
    r.expect_code(0)?;
    r.expect_outcome("exited")?;
    let left = r.stat_u64("leftover_processes")?;
    ensure(left == 500, || {
        format!("leftover_processes {left}, expected the 500 sleepers")
    })?;
    Ok(format!(
        "leftover {left}, teardown {} ms",
        teardown.as_millis()
    ))
}

/// A launcher SIGKILLed mid-run: its agent dies with it, its guardian removes the agent cgroup,
/// and `gc` afterwards finds nothing left to collect.
fn launcher_sigkilled(env: &Env) -> Result<String, String> {
    let (agent, _, killed) = launcher_killed(env, "echo ready; exec sleep 1000", false)?;
    ensure(wait_no_procs(env, &agent), || {
        format!("agent still running in {agent}")
    })?;
    let dead_after = killed.elapsed();
    // The guardian removes the cgroup right after it empties; bounded, as it is another process.
    let until = Instant::now() + Duration::from_secs(10);
    while env.path(&agent).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let removed_after = killed.elapsed();
    let (code, out) = gc_from(&env.caller, &[])?;
    ensure(code == 0, || format!("gc exited {code}:\n{out}"))?;
    ensure(!env.path(&agent).exists(), || {
        format!("{agent} still exists after the guardian and gc:\n{out}")
    })?;
    let collected = out.lines().filter(|l| l.starts_with("removed /")).count();
    Ok(format!(
        "agent dead {} ms after, cgroup removed {} ms after, gc removed {collected}",
        dead_after.as_millis(),
        removed_after.as_millis()
    ))
}

/// Reads a `/proc/meminfo` value in MiB.
fn meminfo_mib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib >> 10)
}

/// 200 launches at once. Every agent prints its cgroup, then `ready`, then blocks reading stdin,
/// a pipe whose only write end the test holds: once all 200 are ready they all run at the same
/// time, in 200 distinct cgroups, which the test checks before closing the pipe. Each then exits
/// with its own code.
fn parallel_200(env: &Env) -> Result<String, String> {
    const N: usize = 200;
    const PARALLEL_DEADLINE: Duration = Duration::from_secs(240);
    let code = |i: usize| (i % 100) as i32;
    // std's pipe is close-on-exec: no launch but the ones given a copy of the read end inherits
    // either end.
    let (read_end, write_end) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let t0 = Instant::now();
    let mut started: Vec<Result<Started, String>> = Vec::with_capacity(N);
    for i in 0..N {
        let stdin = read_end
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| format!("dup: {e}"));
        let script = format!(
            "cat /proc/self/cgroup; echo ready; read line; exit {}",
            code(i)
        );
        started.push(stdin.and_then(|stdin| {
            let mut s = start_stdin(
                env,
                &root(env),
                Spawn::Clone3,
                &["-q", "--profile", "small", "--", "sh", "-c", &script],
                stdin,
            )?;
            // The first launch waits for all the others to start: about a minute under TCG.
            s.set_deadline(PARALLEL_DEADLINE);
            Ok(s)
        }));
    }
    drop(read_end);
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, s) in started.iter_mut().enumerate() {
        let Ok(s) = s else { continue };
        let mut out = String::new();
        let ready = loop {
            match s.read_line() {
                Ok(l) if l == "ready" => break Ok(()),
                Ok(l) => {
                    out.push_str(&l);
                    out.push('\n');
                }
                Err(e) => break Err(e),
            }
        };
        let check = ready.and_then(|_| {
            let cg = v2_line(&out)?.to_string();
            expect_agent_cgroup(&cg, env.caller_parent())?;
            match seen.insert(cg.clone(), i) {
                Some(j) => Err(format!("cgroup {cg} used by launches {j} and {i}")),
                None => Ok(()),
            }
        });
        if let Err(e) = check {
            errors.push(format!("launch {i}: {e}"));
        }
    }
    let all_ready = t0.elapsed();
    // All ready agents are still blocked on the pipe: their cgroups must all exist now.
    let agents = format!(
        "{}/synwire/agents/",
        env.caller_parent().trim_end_matches('/')
    );
    let live: HashSet<String> = layout::walk(env)
        .into_iter()
        .filter(|c| c.starts_with(&agents))
        .collect();
    let mem_available = meminfo_mib("MemAvailable");
    let mem_total = meminfo_mib("MemTotal");
    // Release them all: EOF on every agent's stdin.
    drop(write_end);
    for (i, s) in started.into_iter().enumerate() {
        let r = match s {
            Ok(s) => s.finish(),
            Err(e) => {
                errors.push(format!("launch {i}: {e}"));
                continue;
            }
        };
        if let Err(e) = r.expect_code(code(i)) {
            errors.push(format!("launch {i}: {e}"));
        }
    }
    let all_done = t0.elapsed();
    let seen: HashSet<String> = seen.into_keys().collect();
    ensure(errors.is_empty(), || {
        let first: Vec<_> = errors.iter().take(3).cloned().collect();
        format!(
            "{} of {N} failed, first: {}",
            errors.len(),
            first.join("; ")
        )
    })?;
    ensure(live.len() == N && live == seen, || {
        format!(
            "{} agent cgroups existed while all {N} agents waited, {} reported by them",
            live.len(),
            seen.len()
        )
    })?;
    note(&format!(
        "200-parallel: all ready in {:.1} s, all done in {:.1} s, MemAvailable {} of {} MiB with {N} agents waiting",
        all_ready.as_secs_f64(),
        all_done.as_secs_f64(),
        mem_available.map_or("?".into(), |m| m.to_string()),
        mem_total.map_or("?".into(), |m| m.to_string()),
    ));
    Ok(format!(
        "{:.1} launches/s, {} MiB free",
        N as f64 / all_ready.as_secs_f64(),
        mem_available.map_or("?".into(), |m| m.to_string())
    ))
}
