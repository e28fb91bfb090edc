//! Landlock (`[filesystem]`) and the `agent` profile on real kernels: a write outside `write` is
//! denied where the kernel has Landlock (5.13+: 6.1 and 6.12 here), `required` is refused where it
//! has not (5.10), `best_effort` runs there with a warning, and the statistics say which.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{ensure, run, run_with, user, Caller, Run, Setup, Spawn};
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
/// cleared environment, writes only to the working directory and /tmp (where Landlock exists).
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
    let outside = if has_landlock(env) {
        "outside-denied"
    } else {
        "outside-written"
    };
    let want = format!(
        "wd-ok\ntmp-ok\n{outside}\n0\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1\nsecret=absent\n"
    );
    ensure(r.stdout == want, || {
        format!("expected {want:?}: {}", r.show())
    })?;
    ensure(r.stat("profile")?.as_str() == Some("agent"), || {
        format!("profile: {}", r.show())
    })
}
