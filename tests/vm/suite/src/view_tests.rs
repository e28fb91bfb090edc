//! `[filesystem] view = "read-only"` and `hide` on real kernels (5.10 has no mount_setattr; the
//! view does not need it): a write outside `write` fails with EROFS even for root, a write inside
//! lands on the host, /tmp is private and empty, hidden directories and files show nothing and
//! stay intact on the host; a non-root caller gets the same through a user namespace; where it
//! cannot have one, `required` is refused (125) and `best_effort` runs with a warning.
//!
//! Landlock applies too (the same `write` list); a write on a read-only mount fails with EROFS
//! before Landlock is asked, so the results are the same on every kernel.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::harness::{ensure, expect_own_error, run_with, user, Caller, Setup, Spawn, VMTEST};
use crate::layout::{self, Env};
use crate::tests::{root, TestFn};
use crate::torture_tests::with_leak_check;

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    t.push((
        "filesystem-view/read-only/root".into(),
        with_leak_check(|e| read_only(e, root(e), &[])),
    ));
    t.push((
        "filesystem-view/read-only/root-pid-namespace".into(),
        with_leak_check(|e| read_only(e, root(e), &["--unshare", "pid"])),
    ));
    t.push((
        "filesystem-view/read-only/user".into(),
        with_leak_check(|e| read_only(e, user(e), &[])),
    ));
    t.push((
        "filesystem-view/agent-profile/root".into(),
        with_leak_check(|e| agent_profile(e, root(e))),
    ));
    t.push((
        "filesystem-view/agent-profile/user".into(),
        with_leak_check(|e| agent_profile(e, user(e))),
    ));
    t.push((
        "filesystem-view/no-user-namespace/required".into(),
        with_leak_check(required_without_userns),
    ));
    t.push((
        "filesystem-view/no-user-namespace/best-effort".into(),
        with_leak_check(best_effort_without_userns),
    ));
}

/// `try-write PATH...`: for each path, create or truncate it and write a byte; prints
/// `write PATH: ok`, or the errno's name (exit 0 either way: the lines are the result).
pub fn try_write(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("expected PATH...".into());
    }
    for path in args {
        let r = std::fs::write(path, "x");
        let what = match r {
            Ok(()) => "ok".to_string(),
            Err(e) => match e.raw_os_error() {
                Some(n) => {
                    crate::errno::name(n).map_or_else(|| format!("errno {n}"), str::to_string)
                }
                None => e.to_string(),
            },
        };
        println!("write {path}: {what}");
    }
    Ok(())
}

fn mkdir(dir: &str, owner: Option<u32>, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {dir}: {e}"))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))
            .map_err(|e| format!("chown {dir}: {e}"))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {dir}: {e}"))
}

fn write(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {path}: {e}"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"))
}

/// The paths of one caller's run, each its own so that root's and uid 1000's do not meet.
struct Paths {
    /// Writable by the caller without the view, outside `write`.
    open: String,
    write: String,
    secret_dir: String,
    home: String,
    tmp_name: String,
    profile: String,
}

impl Paths {
    fn new(caller: &Caller, tag: &str) -> Result<Paths, String> {
        let id = format!("{}-{tag}", caller.uid.unwrap_or(0));
        let p = Paths {
            open: format!("/srv/view-open-{id}"),
            write: format!("/srv/view-write-{id}"),
            secret_dir: format!("/srv/view-secret-{id}"),
            home: format!("/srv/view-home-{id}"),
            tmp_name: format!("view-private-{id}"),
            profile: format!("/tmp/view-{id}.toml"),
        };
        mkdir(&p.open, None, 0o1777)?;
        let _ = std::fs::remove_file(format!("{}/outside", p.open));
        mkdir(&p.write, caller.uid, 0o755)?;
        let _ = std::fs::remove_file(format!("{}/inside", p.write));
        mkdir(&p.secret_dir, None, 0o755)?;
        write(&format!("{}/key", p.secret_dir), "key")?;
        mkdir(&p.home, None, 0o755)?;
        write(&format!("{}/token", p.home), "token")?;
        let _ = std::fs::remove_file(format!("/tmp/{}", p.tmp_name));
        Ok(p)
    }

    fn profile(&self, enforce: &str) -> String {
        format!(
            "[filesystem]\nenforce = \"{enforce}\"\nview = \"read-only\"\nread = [\"/\"]\n\
             write = [\"{}\", \"/tmp\"]\nhide = [\"{}\", \"~/token\", \"/srv/no-such-path\"]\n",
            self.write, self.secret_dir
        )
    }

    /// synwire-run's environment: `~` is `home`.
    fn setup(&self) -> Setup {
        Setup {
            env: vec![("HOME".into(), self.home.clone())],
            ..Default::default()
        }
    }
}

fn view_stat(stats: &Value) -> (String, String, u64) {
    let v = &stats["filesystem_view"];
    (
        v["view"].as_str().unwrap_or("?").into(),
        v["status"].as_str().unwrap_or("?").into(),
        v["hidden"].as_u64().unwrap_or(u64::MAX),
    )
}

/// The read-only view for `caller`, with `extra` arguments: EROFS outside `write` and on what is
/// hidden, writes inside land, /tmp is private, hidden paths are empty, the host is intact.
fn read_only(env: &Env, caller: Caller, extra: &[&str]) -> Result<(), String> {
    let p = Paths::new(&caller, if extra.is_empty() { "plain" } else { "pid" })?;
    // `required` covers the section's Landlock rules too; before 5.13 (5.10 here) there is no
    // Landlock, so the view alone is asked for there: best_effort, and the view still enforced.
    let landlock = env.kernel >= (5, 13);
    write(
        &p.profile,
        &p.profile(if landlock { "required" } else { "best_effort" }),
    )?;
    let script = format!(
        "ls -A /tmp | tr '\\n' ' '; echo '<tmp-before'; \
         {VMTEST} try-write {open}/outside {w}/inside /tmp/{t} {s}/new {h}/token; \
         echo tmp-after=$(ls -A /tmp | tr '\\n' ' '); \
         echo secret-entries=$(ls -A {s} | wc -l); \
         echo token-bytes=$(wc -c < {h}/token); \
         echo proc=$(test -r /proc/self/status && echo yes)",
        open = p.open,
        w = p.write,
        t = p.tmp_name,
        s = p.secret_dir,
        h = p.home,
    );
    let mut args = vec!["-q", "--profile", &p.profile];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", &script]);
    let r = run_with(env, &caller, Spawn::Clone3, &p.setup(), &args)?;
    r.expect_code(0)?;
    let want = format!(
        "<tmp-before\n\
         write {open}/outside: EROFS\n\
         write {w}/inside: ok\n\
         write /tmp/{t}: ok\n\
         write {s}/new: EROFS\n\
         write {h}/token: EROFS\n\
         tmp-after={t}\n\
         secret-entries=0\n\
         token-bytes=0\n\
         proc=yes\n",
        open = p.open,
        w = p.write,
        t = p.tmp_name,
        s = p.secret_dir,
        h = p.home,
    );
    ensure(r.stdout == want, || {
        format!("agent output, expected {want:?}: {}", r.show())
    })?;
    let (view, status, hidden) = view_stat(r.stats()?);
    ensure(
        (view.as_str(), status.as_str(), hidden) == ("read-only", "enforced", 2),
        || format!("filesystem_view {view} {status} {hidden}: {}", r.show()),
    )?;
    let landlock_status = r.stats()?["landlock"]["status"].as_str().unwrap_or("?");
    ensure(landlock || landlock_status == "unsupported", || {
        format!(
            "landlock status {landlock_status} on a kernel without Landlock: {}",
            r.show()
        )
    })?;
    // The host: the write inside landed, nothing else changed.
    let host = [
        (format!("{}/inside", p.write), "x".to_string()),
        (format!("{}/key", p.secret_dir), "key".into()),
        (format!("{}/token", p.home), "token".into()),
    ];
    for (path, text) in host {
        ensure(read(&path) == text, || {
            format!(
                "{path} on the host reads {:?}, expected {text:?}",
                read(&path)
            )
        })?;
    }
    for gone in [
        format!("{}/outside", p.open),
        format!("{}/new", p.secret_dir),
        format!("/tmp/{}", p.tmp_name),
    ] {
        ensure(!Path::new(&gone).exists(), || {
            format!("{gone} exists on the host: {}", r.show())
        })?;
    }
    Ok(())
}

/// Runs `f` with user.max_user_namespaces = 0, restored whatever happens.
fn without_userns<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let path = Path::new("/proc/sys/user/max_user_namespaces");
    let saved = layout::read(path)?;
    layout::write(path, "0")?;
    let result = f();
    let restored = layout::write(path, saved.trim());
    match (result, restored) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    }
}

/// uid 1000 without user namespaces, `required`: 125 naming the sysctl and best_effort, no cgroup.
fn required_without_userns(env: &Env) -> Result<(), String> {
    let caller = user(env);
    let p = Paths::new(&caller, "required")?;
    write(&p.profile, &p.profile("required"))?;
    without_userns(|| {
        expect_own_error(
            env,
            &caller,
            Spawn::Clone3,
            &p.setup(),
            &["--profile", &p.profile, "--", "true"],
            &["read-only", "user.max_user_namespaces", "best_effort"],
        )
    })
}

/// uid 1000 without user namespaces, `best_effort`: the agent runs on the host's tree (its /tmp
/// file lands there, the hidden file is whole), with a warning, and the statistics say
/// `not enforced`.
fn best_effort_without_userns(env: &Env) -> Result<(), String> {
    let caller = user(env);
    let p = Paths::new(&caller, "best-effort")?;
    write(&p.profile, &p.profile("best_effort"))?;
    let tmp_file = format!("/tmp/{}", p.tmp_name);
    let script = format!(
        "{VMTEST} try-write {tmp_file}; echo token-bytes=$(wc -c < {h}/token)",
        h = p.home
    );
    let args = ["--profile", &p.profile, "--", "sh", "-c", &script];
    let r = without_userns(|| run_with(env, &caller, Spawn::Clone3, &p.setup(), &args))?;
    let on_host = Path::new(&tmp_file).exists();
    let _ = std::fs::remove_file(&tmp_file);
    r.expect_code(0)?;
    let want = format!("write {tmp_file}: ok\ntoken-bytes=5\n");
    ensure(r.stdout == want && on_host, || {
        format!(
            "expected {want:?} and {tmp_file} on the host ({on_host}): {}",
            r.show()
        )
    })?;
    ensure(
        r.stderr.contains("synwire-run: warning:")
            && r.stderr.contains("not enforced: read-only view")
            && r.stderr.contains("user.max_user_namespaces"),
        || {
            format!(
                "expected a warning naming the view and the sysctl: {}",
                r.show()
            )
        },
    )?;
    let (view, status, hidden) = view_stat(r.stats()?);
    ensure(
        (view.as_str(), status.as_str(), hidden) == ("read-only", "not enforced", 0),
        || format!("filesystem_view {view} {status} {hidden}: {}", r.show()),
    )
}

/// The built-in `agent` profile: the credential stores in the caller's home are empty inside and
/// intact outside (those that exist: `~/.ssh` a directory, `~/.docker/config.json` and
/// `~/.git-credentials` files), everything outside the working directory and /tmp is read-only,
/// the working directory is writable, and the default seccomp filter is on.
fn agent_profile(env: &Env, caller: Caller) -> Result<(), String> {
    let p = Paths::new(&caller, "agent")?;
    let home = &p.home;
    for dir in [".ssh", ".docker"] {
        mkdir(&format!("{home}/{dir}"), None, 0o755)?;
    }
    write(&format!("{home}/.ssh/id_ed25519"), "private key")?;
    write(&format!("{home}/.docker/config.json"), "{\"auths\": {}}")?;
    write(
        &format!("{home}/.git-credentials"),
        "https://u:token@example.com",
    )?;
    let script = format!(
        "echo ssh=$(ls -A {home}/.ssh | wc -l) docker=$(wc -c < {home}/.docker/config.json) \
         git=$(wc -c < {home}/.git-credentials); \
         {VMTEST} try-write {open}/outside {w}/inside {home}/.ssh/new; \
         grep ^Seccomp: /proc/self/status",
        open = p.open,
        w = p.write,
    );
    let caller = Caller {
        cwd: Some(p.write.clone()),
        ..caller
    };
    let args = ["-q", "--profile", "agent", "--", "sh", "-c", &script];
    let r = run_with(env, &caller, Spawn::Clone3, &p.setup(), &args)?;
    r.expect_code(0)?;
    let want = format!(
        "ssh=0 docker=0 git=0\n\
         write {open}/outside: EROFS\n\
         write {w}/inside: ok\n\
         write {home}/.ssh/new: EROFS\n\
         Seccomp:\t2\n",
        open = p.open,
        w = p.write,
    );
    ensure(r.stdout == want, || {
        format!("agent output, expected {want:?}: {}", r.show())
    })?;
    let (view, status, hidden) = view_stat(r.stats()?);
    ensure(
        (view.as_str(), status.as_str(), hidden) == ("read-only", "enforced", 3),
        || format!("filesystem_view {view} {status} {hidden}: {}", r.show()),
    )?;
    let seccomp = &r.stats()?["seccomp"];
    ensure(seccomp["status"] == "enforced", || {
        format!("seccomp {seccomp}: {}", r.show())
    })?;
    for (path, text) in [
        (".ssh/id_ed25519", "private key"),
        (".docker/config.json", "{\"auths\": {}}"),
        (".git-credentials", "https://u:token@example.com"),
    ] {
        let path = format!("{home}/{path}");
        ensure(read(&path) == text, || {
            format!(
                "{path} on the host reads {:?}, expected {text:?}",
                read(&path)
            )
        })?;
    }
    Ok(())
}
