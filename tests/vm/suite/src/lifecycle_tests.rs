//! Nothing outlives a killed launcher. synwire-run is SIGKILLed while its agent runs with a
//! daemonised grandchild (`synwire-vmtest daemonize`: fork, setsid, stdio to /dev/null), for the
//! default profile, `[security] user = "nobody"`, `--unshare pid` and `--unshare all`. Within 1 s
//! every process that was in the agent's cgroup is dead (each waited for through a pidfd opened
//! before the kill) and the cgroup is gone (its guardian's exit, also a pidfd, is the moment).
//! With the guardian killed first, the agent's main process still dies at once (PDEATHSIG,
//! re-armed after the user switch) and the next launch in the same parent kills what is left and
//! removes the stale cgroup. Every test ends with the torture suite's leak check and the runner's
//! postcondition: no process and no agent cgroup left.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{ensure, run, start, Spawn, Started, VMTEST};
use crate::layout::{self, Env};
use crate::tests::{gc_from, note, root, TestFn};
use crate::torture_tests::with_leak_check;

/// Everything of the agent is dead, and its cgroup gone, this soon after the SIGKILL.
const BOUND: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    args: &'static [&'static str],
    profile: Option<&'static str>,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "default",
        args: &[],
        profile: None,
    },
    Variant {
        name: "nobody",
        args: &[],
        profile: Some("[security]\nuser = \"nobody\"\n"),
    },
    Variant {
        name: "unshare-pid",
        args: &["--unshare", "pid"],
        profile: None,
    },
    Variant {
        name: "unshare-all",
        args: &["--unshare", "all"],
        profile: None,
    },
];

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    for v in VARIANTS {
        add(t, format!("lifecycle/sigkill/{}", v.name), move |e| {
            sigkill(e, v, Spawn::Clone3)
        });
        add(
            t,
            format!("lifecycle/guardian-killed/{}", v.name),
            move |e| guardian_killed(e, v),
        );
    }
    add(t, "lifecycle/sigkill/default/fork".into(), |e| {
        sigkill(e, VARIANTS[0], Spawn::Fork)
    });
    add(
        t,
        "lifecycle/guardian-ignores-group-signals".into(),
        group_signals,
    );
    add(t, "lifecycle/gc/zombie-launcher-is-dead".into(), gc_zombie);
    add(
        t,
        "lifecycle/gc/other-pid-namespace-kept".into(),
        gc_other_pidns,
    );
}

/// Adds a test that ends with the torture leak check.
fn add(
    t: &mut Vec<(String, TestFn)>,
    name: String,
    f: impl Fn(&Env) -> Result<(), String> + 'static,
) {
    t.push((name, with_leak_check(f)));
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; the result is checked and owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until the process behind `fd` has exited, at most until `until`; true if it has.
fn wait_fd(fd: &OwnedFd, until: Instant) -> bool {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis() as libc::c_int) };
        if n > 0 {
            return true;
        }
        if n == 0 || left.is_zero() {
            return false;
        }
    }
}

fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n).map(str::to_string)
}

fn ppid(pid: i32) -> Option<i32> {
    stat_field(pid, 1)?.parse().ok()
}

fn cgroup_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_default()
}

/// The guardian synwire-run `launcher` forked: its child named synwire-guard.
pub(crate) fn guardian_of(launcher: i32) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&p| {
            ppid(p) == Some(launcher)
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "synwire-guard")
        })
}

/// SIGKILLs `pid` and waits (1 s at most) until it has exited.
pub(crate) fn kill_and_wait(pid: i32) -> Result<(), String> {
    let fd = pidfd(pid).ok_or_else(|| format!("no pidfd for {pid}"))?;
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    ensure(wait_fd(&fd, Instant::now() + BOUND), || {
        format!("{pid} survived SIGKILL")
    })
}

/// A running launch, stopped at the agent's `ready`.
struct Live {
    s: Started,
    launcher: i32,
    guardian: i32,
    /// The agent cgroup, relative to the mount.
    agent: String,
    /// Every process in the agent's cgroup at `ready`, with a pidfd each.
    procs: Vec<(i32, OwnedFd)>,
    /// The agent's main process (synwire-run's child in the cgroup: the agent or the pid
    /// namespace's init).
    main: i32,
}

fn launch(env: &Env, v: Variant, m: Spawn) -> Result<Live, String> {
    let before = layout::walk(env);
    let mut args: Vec<String> = vec!["-q".into()];
    if let Some(text) = v.profile {
        let path = format!("/tmp/lifecycle-{}.toml", v.name);
        std::fs::write(&path, text).map_err(|e| format!("write {path}: {e}"))?;
        args.extend(["--profile".into(), path]);
    }
    args.extend(v.args.iter().map(|a| a.to_string()));
    let script = format!("{VMTEST} daemonize; echo ready; exec sleep 1000");
    args.extend(["--".into(), "sh".into(), "-c".into(), script]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut s = start(env, &root(env), m, &args)?;
    let launcher = s.pid();
    let ready = loop {
        match s.read_line() {
            Ok(l) if l == "ready" => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    let found = ready.and_then(|()| {
        let agent = layout::walk(env)
            .into_iter()
            .find(|c| !before.contains(c) && layout::parent(c).ends_with("/synwire/agents"))
            .ok_or("no agent cgroup while the agent ran")?;
        let guardian = guardian_of(launcher).ok_or("synwire-run has no synwire-guard child")?;
        Ok((agent, guardian))
    });
    let (agent, guardian) = match found {
        Ok(f) => f,
        Err(e) => {
            let _ = kill(Pid::from_raw(launcher), Signal::SIGTERM);
            return Err(format!("{e}: {}", s.finish().show()));
        }
    };
    let pids: Vec<i32> = layout::read(&env.path(&agent).join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let procs: Vec<(i32, OwnedFd)> = pids
        .iter()
        .filter_map(|&p| pidfd(p).map(|fd| (p, fd)))
        .collect();
    let main = pids
        .iter()
        .copied()
        .find(|&p| ppid(p) == Some(launcher))
        .ok_or_else(|| format!("no child of synwire-run among the agent's processes {pids:?}"))?;
    Ok(Live {
        s,
        launcher,
        guardian,
        agent,
        procs,
        main,
    })
}

/// The processes of `procs` still alive at `until`, waited for through their pidfds.
fn survivors(procs: &[(i32, OwnedFd)], until: Instant) -> Vec<String> {
    procs
        .iter()
        .filter(|(_, fd)| !wait_fd(fd, until))
        .map(|(p, _)| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            format!("{p} ({}) in {}", comm.trim(), cgroup_of(*p))
        })
        .collect()
}

/// SIGKILL of synwire-run: within 1 s every process of the agent is dead, the guardian has
/// removed the agent cgroup and exited.
fn sigkill(env: &Env, v: Variant, m: Spawn) -> Result<(), String> {
    let live = launch(env, v, m)?;
    let gcg = cgroup_of(live.guardian);
    let gfd = pidfd(live.guardian).ok_or("no pidfd for the guardian")?;
    let killed = Instant::now();
    let _ = kill(Pid::from_raw(live.launcher), Signal::SIGKILL);
    let left = survivors(&live.procs, killed + BOUND);
    let dead = killed.elapsed();
    let guardian_done = wait_fd(&gfd, killed + BOUND);
    let removed = killed.elapsed();
    let gone = !env.path(&live.agent).exists();
    let r = live.s.finish();
    layout::reap();
    ensure(
        gcg != live.agent && !gcg.starts_with(&format!("{}/", live.agent)),
        || format!("the guardian runs in the agent's cgroup {gcg}"),
    )?;
    ensure(left.is_empty(), || {
        format!(
            "{} s after the SIGKILL still alive: {}; {}",
            BOUND.as_secs(),
            left.join(", "),
            r.show()
        )
    })?;
    ensure(guardian_done && gone, || {
        format!(
            "{} s after the SIGKILL: guardian exited {guardian_done}, agent cgroup {} removed {gone}",
            BOUND.as_secs(),
            live.agent
        )
    })?;
    note(&format!(
        "lifecycle {} {}: {} processes dead {} ms, cgroup removed {} ms after the SIGKILL",
        v.name,
        m.name(),
        live.procs.len(),
        dead.as_millis(),
        removed.as_millis()
    ));
    Ok(())
}

/// The guardian killed first, then synwire-run: the agent's main process dies at once all the
/// same (PDEATHSIG; with a pid namespace its init takes the namespace with it), and the next
/// launch in the same parent kills whatever is left and removes the stale cgroup.
fn guardian_killed(env: &Env, v: Variant) -> Result<(), String> {
    let live = launch(env, v, Spawn::Clone3)?;
    let guardian_dead = kill_and_wait(live.guardian);
    let killed = Instant::now();
    let _ = kill(Pid::from_raw(live.launcher), Signal::SIGKILL);
    let main_fd = live
        .procs
        .iter()
        .find(|(p, _)| *p == live.main)
        .map(|(_, fd)| fd);
    let main_dead = main_fd.is_some_and(|fd| wait_fd(fd, killed + BOUND));
    let r = live.s.finish();
    layout::reap();
    guardian_dead?;
    ensure(main_dead, || {
        format!(
            "the agent's main process {} still runs {} s after synwire-run was killed: {}",
            live.main,
            BOUND.as_secs(),
            r.show()
        )
    })?;
    ensure(env.path(&live.agent).exists(), || {
        format!(
            "{} was removed with its guardian dead: nothing left to test",
            live.agent
        )
    })?;
    let before = survivors(&live.procs, Instant::now()).len();
    let next = run(env, &root(env), Spawn::Clone3, &["-q", "--", "true"])?;
    next.expect_code(0)?;
    let left = survivors(&live.procs, Instant::now() + BOUND);
    layout::reap();
    ensure(left.is_empty(), || {
        format!("after the next launch still alive: {}", left.join(", "))
    })?;
    ensure(!env.path(&live.agent).exists(), || {
        format!("the next launch left the stale {}", live.agent)
    })?;
    note(&format!(
        "lifecycle guardian-killed {}: main process dead at once, {before} left for the next launch, which removed the cgroup",
        v.name
    ));
    Ok(())
}

/// Bit of `sig` in a /proc/PID/status signal mask.
fn sig_bit(sig: Signal) -> u64 {
    1 << (sig as i32 - 1)
}

/// The signals a terminal or an operator sends to synwire-run's whole process group reach the
/// guardian too: it blocks them, and after getting each it still ends the agent when synwire-run
/// is killed.
fn group_signals(env: &Env) -> Result<(), String> {
    let live = launch(env, VARIANTS[0], Spawn::Clone3)?;
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", live.guardian)).unwrap_or_default();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let sigs = [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGALRM,
        Signal::SIGUSR1,
        Signal::SIGPWR,
        Signal::SIGTSTP,
    ];
    let unblocked: Vec<&str> = sigs
        .iter()
        .filter(|s| blocked & sig_bit(**s) == 0)
        .map(|s| s.as_str())
        .collect();
    for s in sigs {
        let _ = kill(Pid::from_raw(live.guardian), s);
    }
    let gfd = pidfd(live.guardian).ok_or("no pidfd for the guardian")?;
    let killed = Instant::now();
    let _ = kill(Pid::from_raw(live.launcher), Signal::SIGKILL);
    let left = survivors(&live.procs, killed + BOUND);
    let guardian_done = wait_fd(&gfd, killed + BOUND);
    let gone = !env.path(&live.agent).exists();
    let _ = live.s.finish();
    layout::reap();
    ensure(unblocked.is_empty(), || {
        format!("the guardian does not block {}", unblocked.join(" "))
    })?;
    ensure(left.is_empty() && guardian_done && gone, || {
        format!(
            "after the signals and the SIGKILL: alive {left:?}, guardian exited {guardian_done}, cgroup removed {gone}"
        )
    })
}

/// A launcher that died but was not reaped yet (a zombie: its parent has not waited) is dead to
/// gc: with its guardian killed first, the daemon it left is ended and the cgroup removed.
fn gc_zombie(env: &Env) -> Result<(), String> {
    let live = launch(env, VARIANTS[0], Spawn::Clone3)?;
    let killed = kill_and_wait(live.guardian)
        .and_then(|()| {
            let _ = kill(Pid::from_raw(live.launcher), Signal::SIGKILL);
            // Not reaped: the suite is its parent and does not wait for it until the end.
            let until = Instant::now() + BOUND;
            while stat_field(live.launcher, 0).as_deref() != Some("Z") {
                if Instant::now() > until {
                    return Err(format!("synwire-run {} is not a zombie", live.launcher));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
        .and_then(|()| gc_from(&env.caller, &["--kill"]));
    let r = live.s.finish();
    layout::reap();
    let (code, out) = killed?;
    ensure(code == 0, || {
        format!("gc --kill exited {code}:\n{out}\n{}", r.show())
    })?;
    ensure(
        out.contains("zombie")
            && out.contains(&format!("removed {}", env.path(&live.agent).display())),
        || format!("gc --kill did not collect the agent of a zombie launcher:\n{out}"),
    )?;
    let left = survivors(&live.procs, Instant::now() + BOUND);
    ensure(left.is_empty(), || {
        format!("still alive after gc --kill: {}", left.join(", "))
    })
}

/// A launcher in another pid namespace (PID 1 of its own, under `unshare -p -f --mount-proc`) is
/// alive whatever its PID means here: gc --kill from outside keeps its agent, and says why.
fn gc_other_pidns(env: &Env) -> Result<(), String> {
    let before = layout::walk(env);
    let script = "echo ready; exec sleep 1000";
    let mut cmd = std::process::Command::new(VMTEST);
    cmd.args([
        "in-cgroup",
        &env.caller,
        "--",
        "unshare",
        "-p",
        "-f",
        "-m",
        "--mount-proc",
    ])
    .args([crate::harness::SYNWIRE, "-q", "--", "sh", "-c", script])
    .env("PATH", crate::harness::PATH)
    .current_dir("/tmp")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let ready = std::io::BufRead::read_line(&mut out, &mut line).is_ok() && line.trim() == "ready";
    let agent = layout::walk(env)
        .into_iter()
        .find(|c| !before.contains(c) && layout::parent(c).ends_with("/synwire/agents"));
    let gc = gc_from(&env.caller, &["--kill"]);
    let alive_after = agent.as_ref().is_some_and(|a| {
        env.path(a).exists()
            && !layout::read(&env.path(a).join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty()
    });
    // The launcher is unshare's child; SIGTERM reaches it as it blocks and reads that signal.
    let launcher =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse::<i32>().ok());
    if let Some(l) = launcher {
        let _ = kill(Pid::from_raw(l), Signal::SIGTERM);
    }
    let status = child.wait();
    layout::reap();
    ensure(ready, || format!("the agent did not get ready: {line:?}"))?;
    let agent = agent.ok_or("no agent cgroup while the agent ran")?;
    let (code, text) = gc?;
    ensure(code == 0 && alive_after, || {
        format!("gc --kill from outside the launcher's pid namespace: exit {code}, agent kept and running {alive_after}:\n{text}")
    })?;
    ensure(text.contains("another pid namespace"), || {
        format!("gc does not say why it kept {agent}:\n{text}")
    })?;
    ensure(launcher.is_some() && status.is_ok(), || {
        format!("could not end the launcher: {launcher:?} {status:?}")
    })
}
