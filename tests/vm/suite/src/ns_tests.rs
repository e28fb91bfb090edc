//! Namespaces (issue 3): what the agent sees inside each namespace, what stays unchanged on the
//! caller's side, and that exit codes, statistics and teardown are those of a run without
//! namespaces. Unified layout only; every name starts with `ns/`.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::user;
use crate::harness::{
    ensure, expect_agent_cgroup, run, start, v2_line, Caller, Run, Spawn, VMTEST,
};
use crate::layout::{self, Env, USER_UID};
use crate::tests::{root, TestFn};

/// The namespace kinds as /proc/PID/ns names them.
const NS_LINKS: [&str; 7] = ["ipc", "net", "uts", "mnt", "pid", "cgroup", "user"];

/// Prints the agent's namespace links, one per line, in NS_LINKS order.
const SHOW_NS: &str =
    "for n in ipc net uts mnt pid cgroup user; do readlink /proc/self/ns/$n; done";

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    let mut add = |name: String, f: TestFn| t.push((name, f));
    for m in [Spawn::Clone3, Spawn::Fork] {
        let n = m.name();
        add(
            format!("ns/pid/view/{n}"),
            Box::new(move |e| pid_view(e, m)),
        );
        add(
            format!("ns/pid/sigterm-no-handler/{n}"),
            Box::new(move |e| pid_sigterm_no_handler(e, m)),
        );
        add(
            format!("ns/pid/sigterm-handler/{n}"),
            Box::new(move |e| pid_sigterm_handler(e, m)),
        );
        add(
            format!("ns/pid/orphans-reaped/{n}"),
            Box::new(move |e| pid_orphans_reaped(e, m)),
        );
        add(format!("ns/cgroup/{n}"), Box::new(move |e| cgroup_ns(e, m)));
        add(format!("ns/user/{n}"), Box::new(move |e| user_ns(e, m)));
        add(
            format!("ns/exit/code/{n}"),
            Box::new(move |e| exit_code(e, m)),
        );
        add(
            format!("ns/exit/signal/{n}"),
            Box::new(move |e| exit_signal(e, m, Signal::SIGTERM)),
        );
        add(
            format!("ns/exit/sigkill/{n}"),
            Box::new(move |e| exit_signal(e, m, Signal::SIGKILL)),
        );
        add(
            format!("ns/exit/timeout/{n}"),
            Box::new(move |e| exit_timeout(e, m)),
        );
        add(
            format!("ns/exit/not-found/{n}"),
            Box::new(move |e| exit_not_found(e, m)),
        );
        add(
            format!("ns/exit/daemon-killed/{n}"),
            Box::new(move |e| exit_daemon_killed(e, m)),
        );
        add(
            format!("ns/error/no-user/{n}"),
            Box::new(move |e| error_no_user(e, m)),
        );
    }
    add("ns/net".into(), Box::new(net_ns));
    add("ns/uts".into(), Box::new(uts_ns));
    add("ns/uts/custom-hostname".into(), Box::new(uts_custom));
    add("ns/ipc".into(), Box::new(ipc_ns));
    add("ns/links-all".into(), Box::new(links_all));
    add("ns/mount/no-leak".into(), Box::new(mount_no_leak));
    add(
        "ns/isolated/root".into(),
        Box::new(|e| isolated(e, root(e))),
    );
    add(
        "ns/isolated/user".into(),
        Box::new(|e| isolated(e, user(e))),
    );
    add("ns/cwd/root".into(), Box::new(|e| cwd(e, root(e))));
    add("ns/cwd/user".into(), Box::new(|e| cwd(e, user(e))));
    add("ns/cwd/unreachable".into(), Box::new(cwd_unreachable));
    add(
        "ns/error/max-user-namespaces".into(),
        Box::new(error_max_user_namespaces),
    );
    add(
        "ns/error/unprivileged-userns-clone".into(),
        Box::new(error_unprivileged_userns_clone),
    );
}

/// Where `caller`'s agents go: `<parent of its cgroup>/synwire/agents`.
fn agents_parent(caller: &Caller) -> &str {
    layout::parent(&caller.cgroup)
}

fn lines(r: &Run) -> Vec<&str> {
    r.stdout.lines().collect()
}

/// Checks the agent's stdout line by line against `want`.
fn expect_lines(r: &Run, want: &[&str]) -> Result<(), String> {
    r.expect_code(0)?;
    ensure(lines(r) == want, || {
        format!(
            "agent printed {:?}, expected {want:?}; {}",
            lines(r),
            r.show()
        )
    })
}

/// The runner's own namespace link for `kind` (`ipc:[4026531839]`).
fn our_ns(kind: &str) -> Result<String, String> {
    let p = format!("/proc/self/ns/{kind}");
    std::fs::read_link(&p)
        .map(|l| l.to_string_lossy().into_owned())
        .map_err(|e| format!("readlink {p}: {e}"))
}

fn mountinfo() -> Result<String, String> {
    layout::read(std::path::Path::new("/proc/self/mountinfo"))
}

fn hostname() -> Result<String, String> {
    layout::read(std::path::Path::new("/proc/sys/kernel/hostname")).map(|s| s.trim().to_string())
}

/// The agent cgroup in the stats is `<parent>/synwire/agents/<uuid>`.
fn expect_stats_cgroup(r: &Run, parent: &str) -> Result<(), String> {
    let cg = r.stat("cgroup")?;
    expect_agent_cgroup(cg.as_str().unwrap_or(""), parent)
}

/// PID 1 is synwire-run's init, the shell is PID 2, and /proc (remounted) lists only the
/// agent's few processes.
fn pid_view(env: &Env, m: Spawn) -> Result<(), String> {
    let script = "cat /proc/1/comm; echo $$; ls /proc | grep -c '^[0-9][0-9]*$'";
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--unshare", "pid,mount", "--", "sh", "-c", script],
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == 3 && l[0] == "synwire-run" && l[1] == "2", || {
        format!(
            "expected PID 1 synwire-run and the shell as 2: {}",
            r.show()
        )
    })?;
    // init, sh, ls and grep at most.
    let n: usize = l[2].parse().map_err(|_| r.show())?;
    ensure((2..=4).contains(&n), || {
        format!("the agent's /proc lists {n} processes: {}", r.show())
    })?;
    expect_stats_cgroup(&r, env.caller_parent())
}

/// An agent without a SIGTERM handler (the shell execs sleep) stops on SIGTERM: the init
/// forwards it, and synwire-run reports the agent's own death by signal. Asked to stop by that
/// SIGTERM, synwire-run then dies of it too (a shell sees 143 through WTERMSIG; systemd counts
/// it as a clean stop).
fn pid_sigterm_no_handler(env: &Env, m: Spawn) -> Result<(), String> {
    let s = start(
        env,
        &root(env),
        m,
        &[
            "-q",
            "--unshare",
            "pid",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1000",
        ],
    )?;
    let r = s.sigterm_when_ready()?;
    r.expect_code(crate::harness::SIGNALED + 15)?;
    r.expect_outcome("signaled")?;
    ensure(r.stat_u64("exit_code")? == 143, || {
        format!("stats exit_code {:?}, expected 143", r.stat("exit_code"))
    })?;
    ensure(r.stat_u64("signal")? == 15, || {
        format!("stats signal {:?}, expected 15", r.stat("signal"))
    })
}

/// An agent with a handler gets the SIGTERM and exits on its own terms.
fn pid_sigterm_handler(env: &Env, m: Spawn) -> Result<(), String> {
    let s = start(
        env,
        &root(env),
        m,
        &["-q", "--unshare", "pid", "--", VMTEST, "trap-term"],
    )?;
    let r = s.sigterm_when_ready()?;
    r.expect_code(42)?;
    r.expect_outcome("exited")?;
    ensure(r.stdout.contains("got TERM"), || {
        format!("agent did not see TERM: {}", r.show())
    })
}

/// Orphans are reparented to the init, which reaps them: a killed orphan disappears from /proc
/// (a zombie would stay), and short-lived orphans leave no zombie. Bounded polls in the agent.
fn pid_orphans_reaped(env: &Env, m: Spawn) -> Result<(), String> {
    let script = r#"
p=$(sh -c 'sleep 1000 >/dev/null 2>&1 & echo $!')
for i in 1 2 3 4 5; do sh -c 'sleep 0 >/dev/null 2>&1 &'; done
grep PPid /proc/$p/status | tr -d '\t'
kill $p
i=0
while [ -e /proc/$p ] && [ $i -lt 500 ]; do usleep 20000; i=$((i+1)); done
if [ -e /proc/$p ]; then echo "orphan $p left: $(cat /proc/$p/stat)"; else echo "orphan reaped"; fi
i=0
while :; do
  z=$(cat /proc/[0-9]*/stat 2>/dev/null | grep -c ') Z ')
  if [ "$z" = 0 ] || [ $i -ge 500 ]; then break; fi
  usleep 20000; i=$((i+1))
done
echo "zombies $z"
"#;
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--unshare", "pid,mount", "--", "sh", "-c", script],
    )?;
    expect_lines(&r, &["PPid:1", "orphan reaped", "zombies 0"])
}

/// Only a loopback interface, and it is up (the VM's own `lo` is left down by its init, so
/// "up" is synwire-run's doing).
fn net_ns(env: &Env) -> Result<(), String> {
    let ours = our_ns("net")?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--unshare",
            "net",
            "--",
            "sh",
            "-c",
            &format!("readlink /proc/self/ns/net; {VMTEST} ifaces"),
        ],
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == 2 && l[0] != ours && l[1] == "lo up", || {
        format!(
            "expected a new net namespace (ours {ours}) with only `lo up`: {}",
            r.show()
        )
    })
}

fn uts_ns(env: &Env) -> Result<(), String> {
    let before = hostname()?;
    let ours = our_ns("uts")?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--unshare",
            "uts",
            "--",
            "sh",
            "-c",
            "hostname; readlink /proc/self/ns/uts",
        ],
    )?;
    let after = hostname()?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == 2 && l[0] == "synwire" && l[1] != ours, || {
        format!(
            "expected hostname synwire in a new uts namespace (ours {ours}): {}",
            r.show()
        )
    })?;
    ensure(before == after && after != "synwire", || {
        format!("the VM's hostname was {before:?}, is now {after:?}")
    })
}

fn uts_custom(env: &Env) -> Result<(), String> {
    let before = hostname()?;
    let path = "/tmp/ns-hostname.toml";
    std::fs::write(path, "[namespaces]\nuts = true\nhostname = \"agent-7\"\n")
        .map_err(|e| format!("write {path}: {e}"))?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--profile", path, "--", "hostname"],
    )?;
    expect_lines(&r, &["agent-7"])?;
    let after = hostname()?;
    ensure(before == after, || {
        format!("the VM's hostname was {before:?}, is now {after:?}")
    })
}

/// Runs the agent with `--unshare LIST` and checks that exactly the namespaces in `new` differ
/// from the runner's.
fn expect_new_namespaces(env: &Env, list: &str, new: &[&str]) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--unshare", list, "--", "sh", "-c", SHOW_NS],
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == NS_LINKS.len(), || r.show())?;
    for (kind, seen) in NS_LINKS.iter().zip(&l) {
        let ours = our_ns(kind)?;
        ensure((*seen != ours) == new.contains(kind), || {
            format!("{kind}: agent {seen}, runner {ours}: with --unshare {list} exactly {new:?} must differ")
        })?;
    }
    Ok(())
}

/// `--unshare ipc` gives a new IPC namespace and nothing else.
fn ipc_ns(env: &Env) -> Result<(), String> {
    expect_new_namespaces(env, "ipc", &["ipc"])
}

/// `--unshare all`: every one of the seven namespaces differs from the runner's.
fn links_all(env: &Env) -> Result<(), String> {
    expect_new_namespaces(env, "all", &NS_LINKS)
}

/// mount(2) on "/" with only propagation flags.
fn propagate(flags: libc::c_ulong) -> Result<(), String> {
    // SAFETY: static NUL-terminated strings; a propagation change takes no source or data.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "mount --make-r* /: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// A tmpfs the agent mounts, and its fresh /proc, stay inside: the runner's mount table is the
/// same while the agent runs and after. The runner's mounts are made shared first (as systemd
/// does on every host), so a namespace left with shared propagation would leak.
fn mount_no_leak(env: &Env) -> Result<(), String> {
    let dir = "/tmp/ns-leak";
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {dir}: {e}"))?;
    propagate(libc::MS_REC | libc::MS_SHARED)?;
    let result = mount_no_leak_shared(env, dir);
    let restored = propagate(libc::MS_REC | libc::MS_PRIVATE);
    let _ = std::fs::remove_dir(dir);
    result.and(restored)
}

fn mount_no_leak_shared(env: &Env, dir: &str) -> Result<(), String> {
    let before = mountinfo()?;
    let script = format!(
        "mount -t tmpfs ns-leak-fs {dir} && grep -c ns-leak-fs /proc/self/mountinfo && exec {VMTEST} trap-term"
    );
    let mut s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &["-q", "--unshare", "pid,mount", "--", "sh", "-c", &script],
    )?;
    let first = s.read_line();
    let ready = s.read_line();
    let during = mountinfo();
    if ready.as_deref() == Ok("ready") {
        kill(Pid::from_raw(s.pid()), Signal::SIGTERM).map_err(|e| format!("kill: {e}"))?;
    }
    let r = s.finish();
    let after = mountinfo()?;
    ensure(
        first.as_deref() == Ok("1") && ready.as_deref() == Ok("ready"),
        || {
            format!(
                "agent did not mount its tmpfs: {first:?} {ready:?}; {}",
                r.show()
            )
        },
    )?;
    r.expect_code(42)?;
    let during = during?;
    ensure(during == before, || {
        format!("the runner's mountinfo changed while the agent ran:\nbefore:\n{before}\nduring:\n{during}")
    })?;
    ensure(after == before, || {
        format!("the runner's mountinfo changed after the run:\nbefore:\n{before}\nafter:\n{after}")
    })
}

/// With cgroup and mount, the agent's cgroup is its "/" and cgroup2 at /sys/fs/cgroup shows its
/// own limits; the runner's mount table is unchanged.
fn cgroup_ns(env: &Env, m: Spawn) -> Result<(), String> {
    let before = mountinfo()?;
    let r = run(
        env,
        &root(env),
        m,
        &[
            "-q",
            "--profile",
            "small",
            "--unshare",
            "cgroup,mount",
            "--",
            "sh",
            "-c",
            "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max",
        ],
    )?;
    let after = mountinfo()?;
    expect_lines(&r, &["0::/", "536870912"])?;
    expect_stats_cgroup(&r, env.caller_parent())?;
    ensure(after == before, || {
        format!("the runner's mountinfo changed:\nbefore:\n{before}\nafter:\n{after}")
    })
}

/// A non-root caller in its delegated subtree is root inside a user namespace and gets pid,
/// net, mount, uts and ipc with it; its agent cgroup is in its own subtree.
fn user_ns(env: &Env, m: Spawn) -> Result<(), String> {
    let caller = user(env);
    let ipc = our_ns("ipc")?;
    let script = format!(
        "id -u; cat /proc/self/uid_map; cat /proc/1/comm; echo $$; hostname; {VMTEST} ifaces; \
         grep ^0:: /proc/self/cgroup; readlink /proc/self/ns/ipc"
    );
    let r = run(
        env,
        &caller,
        m,
        &[
            "-q",
            "--unshare",
            "user,pid,net,mount,uts,ipc",
            "--",
            "sh",
            "-c",
            &script,
        ],
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == 8, || format!("expected 8 lines: {}", r.show()))?;
    let map: Vec<&str> = l[1].split_whitespace().collect();
    ensure(l[0] == "0" && map == ["0", "1000", "1"], || {
        format!("expected uid 0 inside, mapped to 1000: {}", r.show())
    })?;
    ensure(l[2..6] == ["synwire-run", "2", "synwire", "lo up"], || {
        format!("expected pid, uts and net namespaces: {}", r.show())
    })?;
    expect_agent_cgroup(v2_line(l[6])?, agents_parent(&caller))?;
    expect_stats_cgroup(&r, agents_parent(&caller))?;
    ensure(l[7] != ipc, || {
        format!("same ipc namespace as the runner: {}", r.show())
    })
}

/// The built-in `isolated` profile: the small limits and every namespace.
fn isolated(env: &Env, caller: Caller) -> Result<(), String> {
    let script = format!(
        "id -u; cat /proc/1/comm; echo $$; hostname; cat /proc/self/cgroup; \
         cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; {VMTEST} ifaces"
    );
    let r = run(
        env,
        &caller,
        Spawn::Clone3,
        &["-q", "--profile", "isolated", "--", "sh", "-c", &script],
    )?;
    expect_lines(
        &r,
        &[
            "0",
            "synwire-run",
            "2",
            "synwire",
            "0::/",
            "536870912",
            "64",
            "lo up",
        ],
    )?;
    ensure(r.stat("profile")?.as_str() == Some("isolated"), || {
        format!("stats profile {:?}", r.stat("profile"))
    })?;
    ensure(r.stat_u64("memory_limit_bytes")? == 536_870_912, || {
        "stats memory_limit_bytes is not 536870912".into()
    })?;
    expect_stats_cgroup(&r, agents_parent(&caller))
}

/// The agent starts in the caller's working directory, with every namespace.
fn cwd(env: &Env, mut caller: Caller) -> Result<(), String> {
    let dir = "/tmp/ns-cwd/work";
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {dir}: {e}"))?;
    caller.cwd = Some(dir.into());
    let r = run(
        env,
        &caller,
        Spawn::Clone3,
        &["-q", "--unshare", "all", "--", "pwd"],
    )?;
    expect_lines(&r, &[dir])
}

/// Root in a directory only uid 1000 may enter: inside a user namespace that maps only root, the
/// directory's owner is unmapped, root's capabilities do not reach it, and the agent starts in /
/// with a warning instead of failing.
fn cwd_unreachable(env: &Env) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let top = "/tmp/ns-private";
    let dir = "/tmp/ns-private/work";
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {dir}: {e}"))?;
    for d in [top, dir] {
        std::os::unix::fs::chown(d, Some(USER_UID), Some(USER_UID))
            .map_err(|e| format!("chown {d}: {e}"))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {d}: {e}"))?;
    }
    let mut caller = root(env);
    caller.cwd = Some(dir.into());
    let r = run(
        env,
        &caller,
        Spawn::Clone3,
        &["-q", "--unshare", "user", "--", "pwd"],
    )?;
    expect_lines(&r, &["/"])?;
    ensure(
        r.stderr.contains("synwire-run: warning:")
            && r.stderr.contains(dir)
            && r.stderr.contains("starts in /"),
        || format!("expected a warning naming {dir}: {}", r.show()),
    )?;
    // Without a user namespace root reaches it as before.
    let r = run(
        env,
        &caller,
        Spawn::Clone3,
        &["-q", "--unshare", "pid,mount", "--", "pwd"],
    )?;
    expect_lines(&r, &[dir])
}

fn exit_code(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--unshare", "all", "--", "sh", "-c", "exit 7"],
    )?;
    r.expect_code(7)?;
    r.expect_outcome("exited")?;
    ensure(
        r.stat_u64("exit_code")? == 7 && r.stat("signal")?.is_null(),
        || {
            format!(
                "stats exit_code {:?} signal {:?}",
                r.stat("exit_code"),
                r.stat("signal")
            )
        },
    )?;
    ensure(r.stat("spawn")?.as_str() == Some(m.name()), || {
        format!("stats spawn {:?}, expected {}", r.stat("spawn"), m.name())
    })?;
    ensure(r.stat_u64("wall_time_us")? > 0, || "wall_time_us 0".into())?;
    expect_stats_cgroup(&r, env.caller_parent())
}

/// The agent killing itself with `sig`: 128+N, outcome signaled, signal N (the init passes the
/// agent's real status back).
fn exit_signal(env: &Env, m: Spawn, sig: Signal) -> Result<(), String> {
    let n = sig as i32;
    let script = format!("kill -{} $$", n);
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--unshare", "all", "--", "sh", "-c", &script],
    )?;
    r.expect_code(128 + n)?;
    r.expect_outcome("signaled")?;
    ensure(r.stat_u64("signal")? == n as u64, || {
        format!("stats signal {:?}, expected {n}", r.stat("signal"))
    })?;
    ensure(r.stat_u64("oom_kills")? == 0, || "oom_kills not 0".into())
}

fn exit_timeout(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &[
            "-q",
            "--unshare",
            "all",
            "--timeout",
            "2s",
            "--",
            "sleep",
            "60",
        ],
    )?;
    r.expect_code(124)?;
    r.expect_outcome("timed_out")?;
    let wall = r.stat_u64("wall_time_us")?;
    ensure((1_900_000..50_000_000).contains(&wall), || {
        format!("wall_time_us {wall} for a 2 s timeout on sleep 60")
    })
}

/// A command that does not exist: 127 and exec_failed, even when the exec happens in the init's
/// child.
fn exit_not_found(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--unshare", "all", "--", "no-such-command-xyz"],
    )?;
    r.expect_code(127)?;
    ensure(r.stderr.contains("no-such-command-xyz"), || {
        format!("message does not name the command: {}", r.show())
    })?;
    r.expect_outcome("exec_failed")
}

/// A daemon the agent leaves behind in its namespaces is gone when synwire-run returns (the
/// postcondition checks that no process is left in any cgroup).
fn exit_daemon_killed(env: &Env, m: Spawn) -> Result<(), String> {
    let r = run(
        env,
        &root(env),
        m,
        &["-q", "--unshare", "all", "--", VMTEST, "daemonize"],
    )?;
    r.expect_code(0)?;
    r.expect_outcome("exited")
}

/// A non-root caller asking for pid without user: the error names the capability and the fix.
fn error_no_user(env: &Env, m: Spawn) -> Result<(), String> {
    expect_error(
        env,
        &user(env),
        m,
        &["--unshare", "pid", "--", "true"],
        &["CAP_SYS_ADMIN", "user = true"],
    )
}

/// With the sysctl at `path` set to 0, a non-root `--unshare user` fails naming `needle`. The
/// sysctl is restored whatever happens.
fn sysctl_refuses_userns(env: &Env, path: &str, needle: &str) -> Result<(), String> {
    let path = std::path::Path::new(path);
    let saved = layout::read(path)?;
    layout::write(path, "0")?;
    let args = ["--unshare", "user", "--", "true"];
    let result = expect_error(env, &user(env), Spawn::Clone3, &args, &[needle]);
    let restored = layout::write(path, saved.trim());
    result.and(restored)
}

/// user.max_user_namespaces = 0: user namespaces exhausted.
fn error_max_user_namespaces(env: &Env) -> Result<(), String> {
    sysctl_refuses_userns(
        env,
        "/proc/sys/user/max_user_namespaces",
        "user.max_user_namespaces",
    )
}

/// Debian's kernels carry the kernel.unprivileged_userns_clone sysctl: with it at 0, a non-root
/// `--unshare user` gets 125 naming it. A kernel without the sysctl fails this test loudly.
fn error_unprivileged_userns_clone(env: &Env) -> Result<(), String> {
    sysctl_refuses_userns(
        env,
        "/proc/sys/kernel/unprivileged_userns_clone",
        "kernel.unprivileged_userns_clone=1",
    )
}

fn expect_error(
    env: &Env,
    caller: &Caller,
    m: Spawn,
    args: &[&str],
    needles: &[&str],
) -> Result<(), String> {
    crate::harness::expect_own_error(
        env,
        caller,
        m,
        &crate::harness::Setup::default(),
        args,
        needles,
    )
}
