//! `--stats-file` in a sticky, world-writable directory where another user has planted symlinks
//! (issue 13, item 6): at the target's name, and at every temporary name the old writer could
//! have used (`.NAME.tmp<pid>` for the pids synwire-run may get), each pointing at a file of the
//! caller's. Whatever synwire-run does, those files stay intact: root replaces the planted symlink
//! at the target with its statistics (written as root while the agent ran as nobody); uid 1000,
//! who may not replace another user's name in a sticky directory, gets exit 125 and an error that
//! names the owner. The kernel's own guards, fs.protected_symlinks and fs.protected_regular, are
//! off during these tests: synwire-run must not need them. Each ends with the torture leak check.
//! Unified layout; every name starts with `sec/stats-file/`.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::{ensure, run_with, user, Run, Setup, Spawn};
use crate::layout::{Env, USER_UID};
use crate::tests::{root, TestFn};
use crate::torture_tests::with_leak_check;

/// The shared directory: sticky and writable by everyone, as /tmp.
const DIR: &str = "/tmp/sec-stats-sticky";
const NAME: &str = "stats.json";
const VICTIM_TEXT: &str = "the victim's own contents\n";
/// The user who plants symlinks when uid 1000 is the caller.
const OTHER_UID: u32 = 1001;
/// How many pids after the last one handed out to plant `.stats.json.tmp<pid>` for.
const PIDS_AHEAD: u32 = 256;
/// The kernel's guards against following planted links, off during the tests.
const GUARDS: [&str; 2] = [
    "/proc/sys/fs/protected_symlinks",
    "/proc/sys/fs/protected_regular",
];

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    let mut add = |name: &str, f: TestFn| t.push((name.to_string(), f));
    add(
        "sec/stats-file/planted-symlinks/root",
        with_leak_check(planted_symlinks_root),
    );
    add(
        "sec/stats-file/planted-symlinks/user",
        with_leak_check(planted_symlinks_user),
    );
}

/// Root writes into the sticky directory where uid 1000 planted the symlinks, pointing at a file
/// in /etc; the agent runs as nobody. Exit 0; the target is now root's regular file holding the
/// statistics; the victim and every other planted symlink are untouched; no temporary file is
/// left.
fn planted_symlinks_root(env: &Env) -> Result<(), String> {
    let victim = "/etc/synwire-stats-victim";
    let prof = "/tmp/sec-stats-nobody.toml";
    let _guards = GuardsOff::new()?;
    let scene = Scene::plant(victim, 0, USER_UID)?;
    let result = std::fs::write(prof, "[security]\nuser = \"nobody\"\n")
        .map_err(|e| format!("write {prof}: {e}"))
        .and_then(|()| {
            run_with(
                env,
                &root(env),
                Spawn::Clone3,
                &scene.setup(),
                &["-q", "--profile", prof, "--", "id", "-u"],
            )
        })
        .and_then(|r| {
            scene.expect_untouched(&r, false)?;
            r.expect_code(0)?;
            ensure(r.stdout.trim() == "65534", || {
                format!("the agent should run as nobody: {}", r.show())
            })?;
            r.expect_outcome("exited")?;
            scene.expect_stats_file_of(0, &r)
        });
    let _ = std::fs::remove_file(prof);
    scene.remove();
    result
}

/// uid 1000 writes into the sticky directory where uid 1001 planted the symlinks, pointing at a
/// file of uid 1000's. It may not replace uid 1001's symlink at the target: exit 125, an error
/// naming the path and the owner, nothing written, the victim and every planted symlink (the
/// target's included) untouched, no temporary file left.
fn planted_symlinks_user(env: &Env) -> Result<(), String> {
    let victim = "/etc/synwire-stats-victim-user";
    let _guards = GuardsOff::new()?;
    let scene = Scene::plant(victim, USER_UID, OTHER_UID)?;
    let result = run_with(
        env,
        &user(env),
        Spawn::Clone3,
        &scene.setup(),
        &["-q", "--", "true"],
    )
    .and_then(|r| {
        scene.expect_untouched(&r, true)?;
        r.expect_code(125)?;
        for needle in [
            "synwire-run: error:",
            &scene.target(),
            &format!("belongs to uid {OTHER_UID}"),
            "sticky",
        ] {
            ensure(r.stderr.contains(needle), || {
                format!("stderr does not name {needle:?}: {}", r.show())
            })?;
        }
        Ok(())
    });
    scene.remove();
    result
}

/// fs.protected_symlinks and fs.protected_regular set to 0, their values restored on drop.
struct GuardsOff {
    saved: Vec<(&'static str, String)>,
}

impl GuardsOff {
    fn new() -> Result<GuardsOff, String> {
        let mut g = GuardsOff { saved: Vec::new() };
        for path in GUARDS {
            let old = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
            std::fs::write(path, "0").map_err(|e| format!("write 0 to {path}: {e}"))?;
            g.saved.push((path, old.trim().to_string()));
        }
        Ok(g)
    }
}

impl Drop for GuardsOff {
    fn drop(&mut self) {
        for (path, old) in &self.saved {
            let _ = std::fs::write(path, old);
        }
    }
}

/// The sticky directory with its planted symlinks, and the victim they point at.
struct Scene {
    victim: String,
    victim_uid: u32,
    attacker: u32,
    /// Every name planted in DIR (NAME included).
    planted: BTreeSet<String>,
}

impl Scene {
    /// Creates DIR (mode 1777), the victim (owned by `victim_uid`, mode 0644), and symlinks to
    /// the victim owned by `attacker`: at NAME, at the old writer's temporary name for each of
    /// the next PIDS_AHEAD pids, and at a few other names a writer might pick.
    fn plant(victim: &str, victim_uid: u32, attacker: u32) -> Result<Scene, String> {
        let _ = std::fs::remove_dir_all(DIR);
        std::fs::create_dir(DIR).map_err(|e| format!("mkdir {DIR}: {e}"))?;
        std::fs::set_permissions(DIR, std::fs::Permissions::from_mode(0o1777))
            .map_err(|e| format!("chmod 1777 {DIR}: {e}"))?;
        std::fs::write(victim, VICTIM_TEXT).map_err(|e| format!("write {victim}: {e}"))?;
        std::os::unix::fs::chown(victim, Some(victim_uid), Some(victim_uid))
            .map_err(|e| format!("chown {victim}: {e}"))?;
        std::fs::set_permissions(victim, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("chmod {victim}: {e}"))?;
        let mut planted: BTreeSet<String> = [NAME, ".stats.json.tmp", "stats.json.tmp"]
            .into_iter()
            .map(String::from)
            .collect();
        planted.extend(next_pids()?.map(|pid| format!(".{NAME}.tmp{pid}")));
        for name in &planted {
            let link = format!("{DIR}/{name}");
            std::os::unix::fs::symlink(victim, &link)
                .map_err(|e| format!("symlink {link}: {e}"))?;
            std::os::unix::fs::lchown(&link, Some(attacker), Some(attacker))
                .map_err(|e| format!("lchown {link}: {e}"))?;
        }
        Ok(Scene {
            victim: victim.to_string(),
            victim_uid,
            attacker,
            planted,
        })
    }

    fn target(&self) -> String {
        format!("{DIR}/{NAME}")
    }

    /// The run writes its statistics to the target (the harness leaves it in place).
    fn setup(&self) -> Setup {
        Setup {
            stats_file: Some(self.target()),
            ..Setup::default()
        }
    }

    /// The target is a regular file owned by `uid`, no longer the planted symlink.
    fn expect_stats_file_of(&self, uid: u32, r: &Run) -> Result<(), String> {
        let target = self.target();
        let meta =
            std::fs::symlink_metadata(&target).map_err(|e| format!("lstat {target}: {e}"))?;
        ensure(meta.file_type().is_file() && meta.uid() == uid, || {
            format!(
                "{target} should be a regular file of uid {uid}, is {:?} of uid {}; {}",
                meta.file_type(),
                meta.uid(),
                r.show()
            )
        })
    }

    /// The victim holds what it held, owned as before; every planted symlink but the target's
    /// (the target's too when `target_planted`) still points at it, owned by the attacker; DIR
    /// holds nothing else: no temporary file was left.
    fn expect_untouched(&self, r: &Run, target_planted: bool) -> Result<(), String> {
        let text = std::fs::read_to_string(&self.victim)
            .map_err(|e| format!("read {}: {e}", self.victim))?;
        let meta = std::fs::symlink_metadata(&self.victim)
            .map_err(|e| format!("lstat {}: {e}", self.victim))?;
        ensure(
            text == VICTIM_TEXT && meta.file_type().is_file() && meta.uid() == self.victim_uid,
            || {
                let head: String = text.chars().take(80).collect();
                format!(
                    "{} was changed: {head:?}, uid {}; {}",
                    self.victim,
                    meta.uid(),
                    r.show()
                )
            },
        )?;
        for name in &self.planted {
            if name == NAME && !target_planted {
                continue;
            }
            let link = format!("{DIR}/{name}");
            let points = std::fs::read_link(&link).map_err(|e| format!("readlink {link}: {e}"))?;
            let owner = std::fs::symlink_metadata(&link)
                .map_err(|e| format!("lstat {link}: {e}"))?
                .uid();
            ensure(
                points == Path::new(&self.victim) && owner == self.attacker,
                || {
                    format!(
                        "{link} was changed: -> {points:?}, uid {owner}; {}",
                        r.show()
                    )
                },
            )?;
        }
        let mut want = self.planted.clone();
        want.insert(NAME.to_string());
        let got: BTreeSet<String> = std::fs::read_dir(DIR)
            .map_err(|e| format!("read {DIR}: {e}"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let extra: Vec<_> = got.difference(&want).collect();
        ensure(extra.is_empty(), || {
            format!("left in {DIR}: {extra:?}; {}", r.show())
        })
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(DIR);
        let _ = std::fs::remove_file(&self.victim);
    }
}

/// The pids the next processes will most likely get: a process started now takes the next free
/// one, and synwire-run (exec'd by the harness's wrapper in the child it spawns) one of the few
/// after it. Wraps at pid_max to 300, as the kernel does.
fn next_pids() -> Result<impl Iterator<Item = u32>, String> {
    let pid_max: u32 = crate::layout::read(Path::new("/proc/sys/kernel/pid_max"))?
        .trim()
        .parse()
        .map_err(|e| format!("pid_max: {e}"))?;
    let mut probe = std::process::Command::new("/bin/true")
        .spawn()
        .map_err(|e| format!("spawn /bin/true: {e}"))?;
    let last = probe.id();
    let _ = probe.wait();
    Ok((1..=PIDS_AHEAD).map(move |i| {
        let p = last + i;
        if p >= pid_max {
            300 + (p - pid_max)
        } else {
            p
        }
    }))
}
