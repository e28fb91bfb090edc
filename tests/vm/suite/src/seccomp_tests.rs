//! `[seccomp]` on real kernels, with `synwire-vmtest try-syscalls` (syscall_probes.rs) as the
//! agent: under `seccomp.default = true` every call of the built-in list fails with EPERM (clone3
//! with ENOSYS, and the C library's fallback to clone keeps threads and spawning working), while
//! the same probes without a filter never say EPERM (the control: each EPERM is the filter's);
//! `action = "kill"` ends the agent by SIGSYS, exit 159, with a summary naming the filter and the
//! call in the kernel log; `log` lets the call run and logs it; `allow` and `deny` change the list;
//! a pid namespace's init runs unfiltered while its agent is filtered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::{ensure, run, Run, Spawn, VMTEST};
use crate::layout::Env;
use crate::syscall_probes::PROBES;
use crate::tests::{root, TestFn};

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    for m in [Spawn::Clone3, Spawn::Fork] {
        t.push((
            format!("seccomp/default-list/{}", m.name()),
            Box::new(move |e| default_list(e, m)),
        ));
    }
    t.push(("seccomp/off-control".into(), Box::new(off_control)));
    t.push(("seccomp/kill".into(), Box::new(kill)));
    t.push((
        "seccomp/kill-ordinary-calls".into(),
        Box::new(kill_ordinary),
    ));
    t.push(("seccomp/log".into(), Box::new(log)));
    t.push(("seccomp/allow-and-deny".into(), Box::new(allow_and_deny)));
    t.push((
        "seccomp/pid-namespace-init-unfiltered".into(),
        Box::new(pid_namespace),
    ));
}

/// The probes of calls outside the list: they must work under any filter.
const ORDINARY: &[&str] = &[
    "getpid",
    "uname",
    "read-file",
    "socket-unix",
    "fork",
    "thread",
    "spawn",
];

const DEFAULT_ON: &str = "seccomp.default=true";

/// Runs `try-syscalls NAMES` under `sets` (each a `--set`): the run and the probe results.
fn probe(
    env: &Env,
    spawn: Spawn,
    sets: &[&str],
    names: &[&str],
    quiet: bool,
) -> Result<(Run, Results), String> {
    let mut args: Vec<&str> = Vec::new();
    if quiet {
        args.push("-q");
    }
    for s in sets {
        args.extend(["--set", s]);
    }
    args.extend(["--", VMTEST, "try-syscalls"]);
    args.extend(names);
    let r = run(env, &root(env), spawn, &args)?;
    let results = Results::parse(&r)?;
    Ok((r, results))
}

/// What `try-syscalls` printed.
struct Results {
    pid: String,
    mode: String,
    by_name: BTreeMap<String, String>,
}

impl Results {
    fn parse(r: &Run) -> Result<Results, String> {
        let mut lines = r.stdout.lines();
        let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
        let ["pid", pid, "seccomp", mode] = first[..] else {
            return Err(format!("no `pid N seccomp M` line: {}", r.show()));
        };
        let by_name = lines
            .filter_map(|l| l.split_once(' '))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Ok(Results {
            pid: pid.to_string(),
            mode: mode.to_string(),
            by_name,
        })
    }

    /// Every name in `want` has its expected result.
    fn expect(&self, want: &[(&str, &str)], r: &Run) -> Result<(), String> {
        let wrong: Vec<String> = want
            .iter()
            .filter(|(n, v)| self.by_name.get(*n).map(String::as_str) != Some(*v))
            .map(|(n, v)| {
                let got = self.by_name.get(*n).map_or("nothing", String::as_str);
                format!("{n}: {got}, expected {v}")
            })
            .collect();
        ensure(wrong.is_empty(), || {
            format!("{}; {}", wrong.join("; "), r.show())
        })
    }
}

fn expect_seccomp_stat(r: &Run, status: &str, action: Option<&str>) -> Result<(), String> {
    let s = r.stat("seccomp")?;
    let want = serde_json::json!({ "status": status, "action": action });
    ensure(*s == want, || format!("stats seccomp {s}, expected {want}"))
}

/// The built-in list: each call EPERM (clone3 ENOSYS), the ordinary calls fine.
fn default_list(env: &Env, spawn: Spawn) -> Result<(), String> {
    let (r, res) = probe(env, spawn, &[DEFAULT_ON], &[], true)?;
    r.expect_code(0)?;
    ensure(res.mode == "2", || {
        format!("the agent's Seccomp is {}, not 2: {}", res.mode, r.show())
    })?;
    let want: Vec<(&str, &str)> = PROBES
        .iter()
        .map(|(n, _)| match *n {
            "clone3" => (*n, "ENOSYS"),
            n if ORDINARY.contains(&n) => (n, "ok"),
            n => (n, "EPERM"),
        })
        .collect();
    res.expect(&want, &r)?;
    expect_seccomp_stat(&r, "enforced", Some("errno"))
}

/// The same probes without a filter: nothing says EPERM, so each EPERM above is the filter's.
fn off_control(env: &Env) -> Result<(), String> {
    let (r, res) = probe(env, Spawn::Clone3, &[], &[], true)?;
    r.expect_code(0)?;
    ensure(res.mode == "0", || {
        format!("the agent's Seccomp is {}, not 0: {}", res.mode, r.show())
    })?;
    let eperm: Vec<&String> = res
        .by_name
        .iter()
        .filter(|(_, v)| *v == "EPERM")
        .map(|(n, _)| n)
        .collect();
    ensure(eperm.is_empty(), || {
        format!(
            "without a filter {eperm:?} said EPERM: the probe must use another form; {}",
            r.show()
        )
    })?;
    ensure(res.by_name.len() == PROBES.len(), || {
        format!(
            "{} results for {} probes: {}",
            res.by_name.len(),
            PROBES.len(),
            r.show()
        )
    })?;
    let ok: Vec<(&str, &str)> = ORDINARY
        .iter()
        .chain(&["unshare", "clone", "clone3"])
        .map(|n| (*n, "ok"))
        .collect();
    res.expect(&ok, &r)?;
    expect_seccomp_stat(&r, "off", None)
}

/// Waits up to 10 s for the kernel log line of `pid`'s call `nr` with return `code`
/// (audit type 1326, printed by kauditd as there is no audit daemon).
fn audit_line(pid: &str, nr: u32, code: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = std::process::Command::new("dmesg")
            .output()
            .map_err(|e| format!("dmesg: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let found = text.lines().find(|l| {
            l.contains("type=1326")
                && l.contains(&format!(" pid={pid} "))
                && l.contains(&format!(" syscall={nr} "))
                && l.contains(&format!(" code={code}"))
        });
        if let Some(l) = found {
            return Ok(l.to_string());
        }
        if Instant::now() > deadline {
            let last: Vec<&str> = text.lines().rev().take(5).collect();
            return Err(format!(
                "no audit line for pid {pid} syscall {nr} code {code} in dmesg; its last lines: {last:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const NR_PTRACE: u32 = libc::SYS_ptrace as u32;

/// action = "kill": the agent dies of SIGSYS at ptrace, after getpid worked.
fn kill(env: &Env) -> Result<(), String> {
    let sets = [DEFAULT_ON, "seccomp.action=kill"];
    let (r, res) = probe(
        env,
        Spawn::Clone3,
        &sets,
        &["getpid", "ptrace", "uname"],
        false,
    )?;
    r.expect_code(159)?;
    res.expect(&[("getpid", "ok")], &r)?;
    ensure(!res.by_name.contains_key("ptrace"), || {
        format!("ptrace returned under action kill: {}", r.show())
    })?;
    r.expect_outcome("signaled")?;
    ensure(
        r.stat_u64("signal")? == 31 && r.stat("signal_name")?.as_str() == Some("SIGSYS"),
        || format!("signal is not SIGSYS: {}", r.show()),
    )?;
    expect_seccomp_stat(&r, "enforced", Some("kill"))?;
    let first = r
        .stderr
        .lines()
        .find(|l| l.starts_with("synwire-run: agent "))
        .unwrap_or("");
    ensure(
        first.contains("killed by the seccomp filter (SIGSYS, exit code 159)"),
        || {
            format!(
                "the summary's first line does not name the filter: {}",
                r.show()
            )
        },
    )?;
    ensure(r.stderr.contains("seccomp enforced, action kill"), || {
        format!("no seccomp line in the summary: {}", r.show())
    })?;
    // The call the summary sends the user to the kernel log for.
    audit_line(&res.pid, NR_PTRACE, "0x80000000").map(drop)
}

/// action = "kill" leaves everything outside the list alone: threads and spawning go through
/// clone3's ENOSYS to clone, not to a kill.
fn kill_ordinary(env: &Env) -> Result<(), String> {
    let sets = [DEFAULT_ON, "seccomp.action=kill"];
    let mut names = ORDINARY.to_vec();
    names.push("clone3");
    let (r, res) = probe(env, Spawn::Clone3, &sets, &names, true)?;
    r.expect_code(0)?;
    let mut want: Vec<(&str, &str)> = ORDINARY.iter().map(|n| (*n, "ok")).collect();
    want.push(("clone3", "ENOSYS"));
    res.expect(&want, &r)
}

/// action = "log": the call runs (ptrace answers ESRCH itself) and the kernel logs it.
fn log(env: &Env) -> Result<(), String> {
    let sets = [DEFAULT_ON, "seccomp.action=log"];
    let (r, res) = probe(
        env,
        Spawn::Clone3,
        &sets,
        &["ptrace", "bpf", "getpid"],
        true,
    )?;
    r.expect_code(0)?;
    res.expect(
        &[("ptrace", "ESRCH"), ("bpf", "EINVAL"), ("getpid", "ok")],
        &r,
    )?;
    expect_seccomp_stat(&r, "enforced", Some("log"))?;
    audit_line(&res.pid, NR_PTRACE, "0x7ffc0000").map(drop)
}

/// `allow` takes calls out of the list, `deny` adds them.
fn allow_and_deny(env: &Env) -> Result<(), String> {
    let sets = [
        DEFAULT_ON,
        "seccomp.allow=[\"ptrace\", \"clone3\"]",
        "seccomp.deny=[\"uname\"]",
    ];
    let names = ["ptrace", "clone3", "uname", "bpf", "getpid"];
    let (r, res) = probe(env, Spawn::Clone3, &sets, &names, true)?;
    r.expect_code(0)?;
    res.expect(
        &[
            ("ptrace", "ESRCH"),
            ("clone3", "ok"),
            ("uname", "EPERM"),
            ("bpf", "EPERM"),
            ("getpid", "ok"),
        ],
        &r,
    )
}

/// Under a user, pid and mount namespace the init (PID 1 there) has no filter and the agent has:
/// only the agent's child installs it.
fn pid_namespace(env: &Env) -> Result<(), String> {
    let script = format!(
        "grep ^Seccomp: /proc/1/status | tr -d ' \\t'; exec {VMTEST} try-syscalls unshare mount setns getpid fork thread"
    );
    let args = [
        "-q",
        "--unshare",
        "user,pid,mount",
        "--set",
        DEFAULT_ON,
        "--",
        "sh",
        "-c",
        &script,
    ];
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    r.expect_code(0)?;
    let (init, rest) = r.stdout.split_once('\n').unwrap_or(("", ""));
    ensure(init == "Seccomp:0", || {
        format!("the init's Seccomp is {init:?}, not 0: {}", r.show())
    })?;
    let probes = Run {
        code: r.code,
        stdout: rest.to_string(),
        stderr: String::new(),
        stats: None,
        stats_err: String::new(),
    };
    let res = Results::parse(&probes)?;
    ensure(res.mode == "2", || {
        format!("the agent's Seccomp is {}, not 2: {}", res.mode, r.show())
    })?;
    res.expect(
        &[
            ("unshare", "EPERM"),
            ("mount", "EPERM"),
            ("setns", "EPERM"),
            ("getpid", "ok"),
            ("fork", "ok"),
            ("thread", "ok"),
        ],
        &r,
    )
}
