//! Landlock (`[filesystem]`) and the `agent` profile on real kernels: a write outside `write` is
//! denied where the kernel has Landlock (5.13+: 6.1 and 6.12 here), `required` is refused where it
//! has not (5.10), `best_effort` runs there with a warning, and the statistics say which. Each
//! newer right is restricted exactly where the kernel's ABI has it (6.1 is ABI 2, 6.12 ABI 6):
//! device ioctls (ABI 5), TCP ports (ABI 4), signals and abstract sockets out of the agent's
//! domain (ABI 6), and `landlock.status`, `abi` and `unhandled` say so on each kernel.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use crate::harness::{
    ensure, expect_own_error, run, run_with, user, Caller, Run, Setup, Spawn, VMTEST,
};
use crate::layout::{self, Env};
use crate::tests::{root, TestFn};

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    t.push(("landlock/write-denied".into(), Box::new(write_denied)));
    t.push(("landlock/required".into(), Box::new(required)));
    t.push((
        "landlock/agent/root".into(),
        Box::new(|e| agent(e, root(e))),
    ));
    t.push((
        "landlock/agent/user".into(),
        Box::new(|e| agent(e, user(e))),
    ));
    t.push(("landlock/status".into(), Box::new(status)));
    t.push(("landlock/ioctl-dev".into(), Box::new(ioctl_dev)));
    t.push(("landlock/tcp".into(), Box::new(tcp)));
    t.push(("landlock/tcp-required".into(), Box::new(tcp_required)));
    t.push(("landlock/scope-signal".into(), Box::new(scope_signal)));
    t.push((
        "landlock/scope-abstract-socket".into(),
        Box::new(scope_abstract_socket),
    ));
}

/// Landlock arrived in 5.13.
fn has_landlock(env: &Env) -> bool {
    env.kernel >= (5, 13)
}

fn write(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {path}: {e}"))
}

fn mkdir(dir: &str, owner: Option<u32>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {dir}: {e}"))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))
            .map_err(|e| format!("chown {dir}: {e}"))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {dir}: {e}"))
}

/// A directory outside every `write` list that anyone may write to without Landlock.
fn open_dir() -> Result<(), String> {
    let d = "/srv/ll-open";
    std::fs::create_dir_all(d).map_err(|e| format!("mkdir {d}: {e}"))?;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| format!("chmod {d}: {e}"))?;
    let _ = std::fs::remove_file("/srv/ll-open/outside");
    Ok(())
}

fn landlock_status(r: &Run) -> Result<String, String> {
    let l = r.stat("landlock")?;
    Ok(l.get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("?")
        .to_string())
}

/// The agent writes inside `write` and tries outside it; prints what happened.
const PROBE: &str = "echo a > \"$1/inside\" && echo inside-ok; \
    if echo b > /srv/ll-open/outside 2>/dev/null; then echo outside-written; else echo outside-denied; fi";

fn write_denied(env: &Env) -> Result<(), String> {
    let dir = "/tmp/ll-write";
    mkdir(dir, None)?;
    open_dir()?;
    let profile = "/tmp/ll-best.toml";
    write(
        profile,
        &format!("[filesystem]\nread = [\"/\"]\nwrite = [\"{dir}\"]\n"),
    )?;
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &["--profile", profile, "--", "sh", "-c", PROBE, "sh", dir],
    )?;
    r.expect_code(0)?;
    let outside_exists = std::path::Path::new("/srv/ll-open/outside").exists();
    let status = landlock_status(&r)?;
    if has_landlock(env) {
        ensure(
            r.stdout == "inside-ok\noutside-denied\n" && !outside_exists,
            || format!("expected the write outside to be denied: {}", r.show()),
        )?;
        ensure(status == "enforced" || status == "partial", || {
            format!("landlock status {status:?}: {}", r.show())
        })?;
        ensure(r.stderr.contains("landlock "), || {
            format!("no landlock line in the summary: {}", r.show())
        })
    } else {
        // best_effort on a kernel without Landlock: runs unconfined, says so.
        ensure(r.stdout == "inside-ok\noutside-written\n", || {
            format!("agent output: {}", r.show())
        })?;
        ensure(status == "unsupported", || {
            format!("landlock status {status:?}: {}", r.show())
        })?;
        ensure(
            r.stderr.contains("synwire-run: warning:") && r.stderr.contains("Landlock"),
            || format!("expected a warning that Landlock is missing: {}", r.show()),
        )
    }
}

fn required(env: &Env) -> Result<(), String> {
    let dir = "/tmp/ll-required";
    mkdir(dir, None)?;
    open_dir()?;
    let profile = "/tmp/ll-required.toml";
    write(
        profile,
        &format!("[filesystem]\nenforce = \"required\"\nread = [\"/\"]\nwrite = [\"{dir}\"]\n"),
    )?;
    let before = layout::walk(env);
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--profile",
            profile,
            "--",
            "sh",
            "-c",
            PROBE,
            "sh",
            dir,
        ],
    )?;
    if has_landlock(env) {
        r.expect_code(0)?;
        ensure(r.stdout == "inside-ok\noutside-denied\n", || {
            format!("agent output: {}", r.show())
        })
    } else {
        r.expect_code(125)?;
        ensure(
            r.stderr.contains("synwire-run: error:")
                && r.stderr.contains("Landlock")
                && r.stderr.contains("5.13"),
            || format!("expected a refusal naming Landlock and 5.13: {}", r.show()),
        )?;
        let new: Vec<_> = layout::walk(env)
            .into_iter()
            .filter(|c| !before.contains(c))
            .collect();
        ensure(new.is_empty(), || {
            format!("created cgroups {new:?}: {}", r.show())
        })
    }
}

/// The `agent` profile: uid 0 inside its user namespace with no capabilities, no_new_privs, a
/// cleared environment, writes only to the working directory and /tmp: on every kernel, since
/// its read-only view refuses the rest (EROFS) where Landlock does not exist (5.10).
fn agent(env: &Env, mut caller: Caller) -> Result<(), String> {
    let wd = format!("/tmp/agent-wd-{}", caller.uid.unwrap_or(0));
    mkdir(&wd, caller.uid)?;
    open_dir()?;
    caller.cwd = Some(wd.clone());
    // /tmp is sticky: one file per caller, removed first.
    let tmp_file = format!("/tmp/agent-tmp-{}", caller.uid.unwrap_or(0));
    let _ = std::fs::remove_file(&tmp_file);
    let script = format!("echo a > ./here && echo wd-ok; echo b > {tmp_file} && echo tmp-ok; \
        if echo c > /srv/ll-open/outside 2>/dev/null; then echo outside-written; else echo outside-denied; fi; \
        id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '; \
        echo secret=${{SECRET_TOKEN:-absent}}");
    let setup = Setup {
        env: vec![("SECRET_TOKEN".into(), "hunter2".into())],
        ..Default::default()
    };
    let args = ["-q", "--profile", "agent", "--", "sh", "-c", &script];
    let r = run_with(env, &caller, Spawn::Clone3, &setup, &args)?;
    r.expect_code(0)?;
    let want = "wd-ok\ntmp-ok\noutside-denied\n0\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1\nsecret=absent\n";
    ensure(r.stdout == want, || {
        format!("expected {want:?}: {}", r.show())
    })?;
    ensure(r.stat("profile")?.as_str() == Some("agent"), || {
        format!("profile: {}", r.show())
    })
}

/// The Landlock ABI of a kernel version, from the kernel's history (None: before Landlock). The
/// statistics must report this, not what synwire-run assumes.
fn abi_of(kernel: (u32, u32)) -> Option<u32> {
    const SINCE: [((u32, u32), u32); 10] = [
        ((5, 13), 1),
        ((5, 19), 2),
        ((6, 2), 3),
        ((6, 7), 4),
        ((6, 10), 5),
        ((6, 12), 6),
        ((6, 15), 7),
        ((7, 0), 8),
        ((7, 1), 9),
        ((7, 2), 10),
    ];
    SINCE
        .iter()
        .rev()
        .find(|(v, _)| kernel >= *v)
        .map(|&(_, abi)| abi)
}

/// The rights a profile asks for that a kernel of `abi` cannot restrict: everything newer than
/// it, but `refer` (ABI 2), which ABI 1 always denies; TCP only when the profile lists ports.
fn unhandled(abi: u32, tcp: bool) -> Vec<&'static str> {
    let mut v = Vec::new();
    let newer = |since: u32, names: &[&'static str], v: &mut Vec<&'static str>| {
        if abi < since {
            v.extend(names)
        }
    };
    newer(3, &["truncate"], &mut v);
    newer(5, &["ioctl_dev"], &mut v);
    newer(9, &["resolve_unix"], &mut v);
    if tcp {
        newer(4, &["bind_tcp", "connect_tcp"], &mut v);
    }
    newer(6, &["scope_abstract_unix_socket", "scope_signal"], &mut v);
    v
}

/// The `landlock` statistics a run of `[filesystem]` must report on this kernel.
fn expected_status(env: &Env, tcp: bool) -> Value {
    match abi_of(env.kernel) {
        None => json!({"status": "unsupported", "abi": null, "unhandled": []}),
        Some(abi) => {
            let u = unhandled(abi, tcp);
            let status = if u.is_empty() { "enforced" } else { "partial" };
            json!({"status": status, "abi": abi, "unhandled": u})
        }
    }
}

/// A `[filesystem]` profile at `path`: read everything, write `dir` and /dev/null, plus `extra`.
fn profile(path: &str, dir: &str, extra: &str) -> Result<(), String> {
    mkdir(dir, None)?;
    write(
        path,
        &format!("[filesystem]\nread = [\"/\"]\nwrite = [\"{dir}\", \"/dev/null\"]\n{extra}"),
    )
}

fn expect_stdout(r: &Run, want: &str) -> Result<(), String> {
    r.expect_code(0)?;
    ensure(r.stdout == want, || {
        format!("expected {want:?}: {}", r.show())
    })
}

/// `landlock.status`, `abi` and `unhandled` on each kernel, with and without TCP ports.
fn status(env: &Env) -> Result<(), String> {
    for (tcp, extra) in [(false, ""), (true, "bind_tcp = []\nconnect_tcp = []\n")] {
        let p = "/tmp/ll-status.toml";
        profile(p, "/tmp/ll-status", extra)?;
        let r = run(
            env,
            &root(env),
            Spawn::Clone3,
            &["-q", "--profile", p, "--", "true"],
        )?;
        r.expect_code(0)?;
        let want = expected_status(env, tcp);
        let got = r.stat("landlock")?;
        ensure(*got == want, || {
            format!("tcp {tcp}: landlock {got}, expected {want}: {}", r.show())
        })?;
    }
    Ok(())
}

/// An ioctl on a device outside `write` (TCGETS on /dev/zero) is denied from ABI 5; on
/// /dev/null, which is in `write`, it reaches the driver.
fn ioctl_dev(env: &Env) -> Result<(), String> {
    let p = "/tmp/ll-ioctl.toml";
    profile(p, "/tmp/ll-ioctl", "")?;
    let args = [
        "-q",
        "--profile",
        p,
        "--",
        VMTEST,
        "ioctl-tty",
        "/dev/zero",
        "/dev/null",
    ];
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    let zero = if abi_of(env.kernel) >= Some(5) {
        "EACCES"
    } else {
        "ENOTTY"
    };
    expect_stdout(
        &r,
        &format!("ioctl /dev/zero: {zero}\nioctl /dev/null: ENOTTY\n"),
    )
}

/// From ABI 4 the agent binds and connects over TCP only to the ports listed: it binds 8081 and
/// 8082 and connects to 8081, while connecting to 8082 and binding 8083 fail with EACCES. In a
/// network namespace of its own, whose loopback synwire-run brings up.
fn tcp(env: &Env) -> Result<(), String> {
    let p = "/tmp/ll-tcp.toml";
    profile(
        p,
        "/tmp/ll-tcp",
        "bind_tcp = [8081, 8082]\nconnect_tcp = [8081]\n",
    )?;
    let script = format!("{VMTEST} tcp-connect 8081 8082; {VMTEST} bind 8083");
    let args = [
        "-q",
        "--unshare",
        "net",
        "--profile",
        p,
        "--",
        "sh",
        "-c",
        &script,
    ];
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    let want = if abi_of(env.kernel) >= Some(4) {
        "connect 8081: ok\nconnect 8082: EACCES\nbind 8083: Permission denied (os error 13)\n"
    } else {
        "connect 8081: ok\nconnect 8082: ok\nbound 8083\n"
    };
    expect_stdout(&r, want)?;
    let got = r.stat("landlock")?;
    let status = expected_status(env, true);
    ensure(*got == status, || {
        format!("landlock {got}, expected {status}")
    })
}

/// `required` with TCP ports: refused before anything is created where the kernel cannot restrict
/// them (no Landlock on 5.10, ABI 2 on 6.1), enforced where it can (6.12).
fn tcp_required(env: &Env) -> Result<(), String> {
    let p = "/tmp/ll-tcp-required.toml";
    profile(
        p,
        "/tmp/ll-tcp-required",
        "enforce = \"required\"\nconnect_tcp = [443]\n",
    )?;
    let args = ["-q", "--profile", p, "--", "true"];
    match abi_of(env.kernel) {
        None => expect_own_error(
            env,
            &root(env),
            Spawn::Clone3,
            &Setup::default(),
            &args,
            &["Landlock", "5.13"],
        ),
        Some(abi) if abi < 4 => {
            let abi = format!("ABI {abi}");
            let needles = ["connect_tcp", abi.as_str(), "6.7", "best_effort"];
            expect_own_error(
                env,
                &root(env),
                Spawn::Clone3,
                &Setup::default(),
                &args,
                &needles,
            )
        }
        Some(_) => {
            let r = run(env, &root(env), Spawn::Clone3, &args)?;
            r.expect_code(0)?;
            let got = r.stat("landlock")?;
            let want = expected_status(env, true);
            ensure(*got == want, || {
                format!("landlock {got}, expected {want}: {}", r.show())
            })
        }
    }
}

/// From ABI 6 the agent cannot signal synwire-run (outside its domain) but still its own child;
/// `scope = ["abstract_unix_socket"]` gives signals back.
fn scope_signal(env: &Env) -> Result<(), String> {
    let script = "sleep 5 & kill $! || echo own-child-denied; \
        if kill -0 $PPID 2>/dev/null; then echo outside-signalled; else echo outside-denied; fi";
    let scoped = abi_of(env.kernel) >= Some(6);
    for (extra, denied) in [
        ("", scoped),
        ("scope = [\"abstract_unix_socket\"]\n", false),
    ] {
        let p = "/tmp/ll-signal.toml";
        profile(p, "/tmp/ll-signal", extra)?;
        let r = run(
            env,
            &root(env),
            Spawn::Clone3,
            &["-q", "--profile", p, "--", "sh", "-c", script],
        )?;
        let want = if denied {
            "outside-denied\n"
        } else {
            "outside-signalled\n"
        };
        expect_stdout(&r, want).map_err(|e| format!("{extra:?}: {e}"))?;
    }
    Ok(())
}

/// From ABI 6 the agent cannot connect to an abstract UNIX socket the suite listens on, but still
/// to one of its own; `scope = ["signal"]` lets it out.
fn scope_abstract_socket(env: &Env) -> Result<(), String> {
    let name = "synwire-vmtest-ll-abstract";
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)
        .map_err(|e| format!("abstract address: {e}"))?;
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr)
        .map_err(|e| format!("bind @{name}: {e}"))?;
    let scoped = abi_of(env.kernel) >= Some(6);
    let result = (|| {
        for (extra, denied) in [("", scoped), ("scope = [\"signal\"]\n", false)] {
            let p = "/tmp/ll-abstract.toml";
            profile(p, "/tmp/ll-abstract", extra)?;
            let r = run(
                env,
                &root(env),
                Spawn::Clone3,
                &["-q", "--profile", p, "--", VMTEST, "abstract", name],
            )?;
            let outside = if denied { "EPERM" } else { "ok" };
            expect_stdout(&r, &format!("own: ok\noutside: {outside}\n"))
                .map_err(|e| format!("{extra:?}: {e}"))?;
        }
        Ok(())
    })();
    drop(listener);
    result
}
