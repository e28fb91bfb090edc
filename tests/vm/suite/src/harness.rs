//! Running synwire-run the way a user would, from a given cgroup, with a deadline so a hung run
//! fails its test instead of the whole VM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::layout::Env;

pub const SYNWIRE: &str = "/usr/bin/synwire-run";
pub const VMTEST: &str = "/usr/bin/synwire-vmtest";
/// synwire-run's PATH.
pub const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";
/// Generous: TCG is slow, and a test that hangs should still end the VM well before the rig's
/// hard timeout.
pub const DEADLINE: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Spawn {
    /// Whatever synwire-run chooses (clone3 with CLONE_INTO_CGROUP where it works).
    Clone3,
    /// SYNWIRE_SPAWN=fork: the fork + cgroup.procs handshake fallback.
    Fork,
}

impl Spawn {
    pub fn name(self) -> &'static str {
        match self {
            Spawn::Clone3 => "clone3",
            Spawn::Fork => "fork",
        }
    }
}

/// Who runs synwire-run, and from where.
#[derive(Clone, Debug)]
pub struct Caller {
    pub cgroup: String,
    /// None: root.
    pub uid: Option<u32>,
    /// Run as the foreground job of this terminal (a pty slave), as from an interactive shell.
    pub tty: Option<String>,
    /// The working directory synwire-run starts in (None: /tmp).
    pub cwd: Option<String>,
}

impl Caller {
    /// Root, from cgroup `cg`, without a terminal, in /tmp.
    pub fn root_in(cg: &str) -> Caller {
        Caller {
            cgroup: cg.to_string(),
            uid: None,
            tty: None,
            cwd: None,
        }
    }
}

/// `Run::code` for a synwire-run killed by signal N is SIGNALED + N.
pub const SIGNALED: i32 = 1000;

/// Keeps failure lines readable when a program floods its output.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(3000) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The result of one synwire-run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stats: Option<Value>,
    pub stats_err: String,
}

impl Run {
    /// A one-line description for failure messages.
    pub fn show(&self) -> String {
        let status = match self.code {
            None => "unknown".to_string(),
            Some(c) if c >= SIGNALED => format!("killed by signal {}", c - SIGNALED),
            Some(c) => c.to_string(),
        };
        format!(
            "exit {status} stdout={:?} stderr={:?}",
            clip(self.stdout.trim_end()),
            clip(self.stderr.trim_end())
        )
    }

    pub fn expect_code(&self, want: i32) -> Result<(), String> {
        if self.code == Some(want) {
            Ok(())
        } else {
            Err(format!("expected exit {want}, got {}", self.show()))
        }
    }

    /// The stats JSON object; an error if --stats-file produced none.
    pub fn stats(&self) -> Result<&Value, String> {
        self.stats
            .as_ref()
            .ok_or_else(|| format!("no stats file ({}); {}", self.stats_err, self.show()))
    }

    pub fn stat(&self, key: &str) -> Result<&Value, String> {
        self.stats()?.get(key).ok_or_else(|| {
            format!(
                "stats JSON has no key {key:?}: {}",
                self.stats.as_ref().unwrap()
            )
        })
    }

    pub fn stat_u64(&self, key: &str) -> Result<u64, String> {
        let v = self.stat(key)?;
        v.as_u64()
            .ok_or_else(|| format!("stats {key} = {v}, expected a non-negative integer"))
    }

    pub fn expect_outcome(&self, want: &str) -> Result<(), String> {
        let v = self.stat("outcome")?;
        if v.as_str() == Some(want) {
            Ok(())
        } else {
            Err(format!(
                "stats outcome {v}, expected {want:?}; {}",
                self.show()
            ))
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A started synwire-run whose output is collected by threads.
pub struct Started {
    pub child: Child,
    pub stdout_lines: mpsc::Receiver<String>,
    stdout_done: mpsc::Receiver<()>,
    stderr: mpsc::Receiver<String>,
    stats_file: String,
    /// The harness chose the statistics file, and removes it after reading it.
    remove_stats: bool,
    started: Instant,
    /// How long after `started` the run may take; DEADLINE unless changed.
    deadline: Duration,
}

/// What synwire-run's process holds beyond the harness's defaults, as a caller might leave it.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Variables added to synwire-run's environment.
    pub env: Vec<(String, String)>,
    /// Descriptors left open (not close-on-exec) in synwire-run, each on /tmp/synwire-fd-UID-N
    /// (`synwire-vmtest prep`; one file per uid, as /tmp is sticky).
    pub fds: Vec<i32>,
    /// Supplementary groups of synwire-run (root callers only).
    pub groups: Vec<u32>,
    /// A command that runs synwire-run (appended to it) instead of exec'ing it directly: a start
    /// script's shell, a container runtime (`synwire-vmtest container --`).
    pub wrapper: Vec<String>,
    /// The `--stats-file` path, for a test that prepares its directory; None: a fresh
    /// /tmp/synwire-stats-PID-N.json. The harness neither removes a path given here before the run
    /// nor after it: the test looks at what synwire-run left there.
    pub stats_file: Option<String>,
}

/// Starts `synwire-run --stats-file F ARGS...` as `caller`, in spawn mode `spawn`.
pub fn start(env: &Env, caller: &Caller, spawn: Spawn, args: &[&str]) -> Result<Started, String> {
    start_with(env, caller, spawn, &Setup::default(), args)
}

/// Runs synwire-run to completion with `setup`.
pub fn run_with(
    env: &Env,
    caller: &Caller,
    spawn: Spawn,
    setup: &Setup,
    args: &[&str],
) -> Result<Run, String> {
    Ok(start_with(env, caller, spawn, setup, args)?.finish())
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// `start` with `setup`.
pub fn start_with(
    env: &Env,
    caller: &Caller,
    spawn: Spawn,
    setup: &Setup,
    args: &[&str],
) -> Result<Started, String> {
    start_full(env, caller, spawn, setup, args, Stdio::null())
}

/// `start` with `stdin` as synwire-run's (and so the agent's) standard input instead of
/// /dev/null: a pipe whose write end the test holds makes agents wait for it.
pub fn start_stdin(
    env: &Env,
    caller: &Caller,
    spawn: Spawn,
    args: &[&str],
    stdin: Stdio,
) -> Result<Started, String> {
    start_full(env, caller, spawn, &Setup::default(), args, stdin)
}

fn start_full(
    env: &Env,
    caller: &Caller,
    spawn: Spawn,
    setup: &Setup,
    args: &[&str],
    stdin: Stdio,
) -> Result<Started, String> {
    let (stats_file, remove_stats) = match &setup.stats_file {
        Some(path) => (path.clone(), false),
        None => {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = format!("/tmp/synwire-stats-{}-{n}.json", std::process::id());
            let _ = std::fs::remove_file(&path);
            (path, true)
        }
    };
    let mut cmd = Command::new(VMTEST);
    if let Some(tty) = &caller.tty {
        cmd.args(["on-tty", tty, "--", VMTEST]);
    }
    match caller.uid {
        None => cmd.args(["in-cgroup", &caller.cgroup, "--"]),
        Some(uid) => {
            let id = uid.to_string();
            cmd.args(["as-user", &id, &id, &caller.cgroup, "--"])
        }
    };
    // Last before synwire-run, so the descriptors and groups are the ones it starts with.
    if !setup.fds.is_empty() || !setup.groups.is_empty() {
        cmd.args([VMTEST, "prep"]);
        if !setup.fds.is_empty() {
            cmd.args(["--fds", &join(&setup.fds)]);
        }
        if !setup.groups.is_empty() {
            cmd.args(["--groups", &join(&setup.groups)]);
        }
        cmd.arg("--");
    }
    cmd.args(&setup.wrapper)
        .arg(SYNWIRE)
        .args(["--stats-file", &stats_file])
        .args(args);
    match spawn {
        Spawn::Clone3 => cmd.env_remove("SYNWIRE_SPAWN"),
        Spawn::Fork => cmd.env("SYNWIRE_SPAWN", "fork"),
    };
    cmd.env("PATH", PATH)
        .envs(setup.env.iter().map(|(k, v)| (k, v)))
        .current_dir(caller.cwd.as_deref().unwrap_or("/tmp"))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let _ = env;
    let mut child = cmd.spawn().map_err(|e| format!("spawn {VMTEST}: {e}"))?;
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let (line_tx, stdout_lines) = mpsc::channel();
    let (done_tx, stdout_done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            let _ = line_tx.send(std::mem::take(&mut line));
        }
        let _ = done_tx.send(());
    });
    let (err_tx, stderr) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(err).read_to_string(&mut s);
        let _ = err_tx.send(s);
    });
    Ok(Started {
        child,
        stdout_lines,
        stdout_done,
        stderr,
        stats_file,
        remove_stats,
        started: Instant::now(),
        deadline: DEADLINE,
    })
}

impl Started {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Gives this run `d` from its start instead of DEADLINE, for a run that must wait for many
    /// others.
    pub fn set_deadline(&mut self, d: Duration) {
        self.deadline = d;
    }

    /// Waits for the next stdout line (a helper's `ready`) until the deadline.
    pub fn read_line(&mut self) -> Result<String, String> {
        let left = self.deadline.saturating_sub(self.started.elapsed());
        self.stdout_lines
            .recv_timeout(left)
            .map(|l| l.trim_end().to_string())
            .map_err(|_| "no line on stdout before the deadline (or stdout closed)".into())
    }

    /// Waits for synwire-run to exit (killing it at the deadline) and collects everything.
    /// Waits for the agent's `ready` line, sends SIGTERM to synwire-run, and collects the run; an
    /// error if the agent never got ready.
    pub fn sigterm_when_ready(mut self) -> Result<Run, String> {
        let ready = self.read_line();
        if ready.as_deref() == Ok("ready") {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid()),
                nix::sys::signal::Signal::SIGTERM,
            )
            .map_err(|e| format!("kill: {e}"))?;
        }
        let r = self.finish();
        ensure(ready.as_deref() == Ok("ready"), || {
            format!("agent not ready: {ready:?}; {}", r.show())
        })?;
        Ok(r)
    }

    pub fn finish(mut self) -> Run {
        let mut killed = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if self.started.elapsed() > self.deadline => {
                    let _ = self.child.kill();
                    killed = true;
                    break self.child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break None,
            }
        };
        // The pipes close when synwire-run and everything it started are gone; a process that
        // keeps them open outlived synwire-run.
        let grace = Duration::from_secs(5);
        let mut stdout = String::new();
        let mut pipe_note = String::new();
        let until = Instant::now() + grace;
        loop {
            while let Ok(l) = self.stdout_lines.try_recv() {
                stdout.push_str(&l);
            }
            if self.stdout_done.try_recv().is_ok() {
                while let Ok(l) = self.stdout_lines.try_recv() {
                    stdout.push_str(&l);
                }
                break;
            }
            if Instant::now() > until {
                pipe_note.push_str(" [stdout still open: a process outlived synwire-run]");
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut stderr = self
            .stderr
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| " [stderr still open: a process outlived synwire-run]".into());
        stderr.push_str(&pipe_note);
        if killed {
            stderr.push_str(" [killed by the suite after the deadline]");
        }
        let code = status.and_then(|st| {
            use std::os::unix::process::ExitStatusExt;
            st.code().or_else(|| st.signal().map(|s| SIGNALED + s))
        });
        let (stats, stats_err) = match std::fs::read_to_string(&self.stats_file) {
            Ok(s) => match serde_json::from_str(&s) {
                Ok(v) => (Some(v), String::new()),
                Err(e) => (None, format!("stats file is not JSON: {e}: {s:?}")),
            },
            Err(e) => (None, format!("{}: {e}", self.stats_file)),
        };
        if self.remove_stats {
            let _ = std::fs::remove_file(&self.stats_file);
        }
        Run {
            code,
            stdout,
            stderr,
            stats,
            stats_err,
        }
    }
}

/// Runs synwire-run to completion.
pub fn run(env: &Env, caller: &Caller, spawn: Spawn, args: &[&str]) -> Result<Run, String> {
    Ok(start(env, caller, spawn, args)?.finish())
}

/// Fails with `msg` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// True for a lowercase, hyphenated version-4 UUID.
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// Checks that `cg` is `<parent>/synwire/agents/<uuid v4>`.
pub fn expect_agent_cgroup(cg: &str, parent: &str) -> Result<(), String> {
    let prefix = if parent == "/" {
        "/synwire/agents/".to_string()
    } else {
        format!("{parent}/synwire/agents/")
    };
    match cg.strip_prefix(&prefix) {
        Some(id) if is_uuid_v4(id) => Ok(()),
        _ => Err(format!("cgroup {cg:?} is not {prefix}<uuid v4>")),
    }
}

/// The cgroup path in a `0::PATH` line of /proc/self/cgroup output.
pub fn v2_line(out: &str) -> Result<&str, String> {
    out.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| format!("no 0:: line in {out:?}"))
}

/// uid 1000 in its delegated subtree, as in `delegated-user`.
pub fn user(env: &Env) -> Caller {
    Caller {
        cgroup: env.user_caller.clone(),
        uid: Some(crate::layout::USER_UID),
        tty: None,
        cwd: None,
    }
}

/// synwire-run must refuse with 125, a `synwire-run: error:` line naming each of `needles`, and
/// no new cgroup.
pub fn expect_own_error(
    env: &Env,
    caller: &Caller,
    spawn: Spawn,
    setup: &Setup,
    args: &[&str],
    needles: &[&str],
) -> Result<(), String> {
    let before = crate::layout::walk(env);
    let r = run_with(env, caller, spawn, setup, args)?;
    r.expect_code(125)?;
    ensure(r.stderr.contains("synwire-run: error:"), || {
        format!("no 'synwire-run: error:' line: {}", r.show())
    })?;
    for n in needles {
        ensure(r.stderr.contains(n), || {
            format!("stderr does not name {n:?}: {}", r.show())
        })?;
    }
    let new: Vec<_> = crate::layout::walk(env)
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    ensure(new.is_empty(), || {
        format!("created cgroups {new:?}: {}", r.show())
    })
}
