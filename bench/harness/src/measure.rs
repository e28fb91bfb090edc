//! The measurements hyperfine cannot make. Each prints `key value` lines on stdout, which
//! `bench/run` keeps for the report.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long any single wait for an agent's byte may take before the measurement fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn me() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("current_exe: {e}"))
}

/// Reads exactly one byte from `r`, failing after `PATIENCE` (a launcher that failed to start
/// its agent must not hang the benchmark).
fn read_byte(r: &mut impl ReadFd, what: &str) -> Result<u8, String> {
    let mut fds = [PollFd::new(r.fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::from(u16::try_from(PATIENCE.as_millis()).unwrap_or(u16::MAX));
    loop {
        match poll(&mut fds, timeout) {
            Ok(0) => return Err(format!("no {what} within {}s", PATIENCE.as_secs())),
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
    let mut b = [0u8; 1];
    match r.read(&mut b) {
        Ok(1) => Ok(b[0]),
        Ok(_) => Err(format!("end of file instead of {what}")),
        Err(e) => Err(format!("read {what}: {e}")),
    }
}

trait ReadFd: Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}
impl ReadFd for std::process::ChildStdout {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}
impl ReadFd for std::io::PipeReader {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

fn expect_success(child: &mut Child, what: &str) -> Result<(), String> {
    let status = child.wait().map_err(|e| format!("wait {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} ended with {status}"))
    }
}

/// The median and the 90th percentile, in microseconds.
fn summary(mut v: Vec<Duration>) -> (u128, u128) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_micros();
    (at(0.5), at(0.9))
}

/// The time from kill(SIGTERM) to the first instruction of the agent's handler, sending the
/// signal to the agent itself (`direct`) and to synwire-run, which forwards it.
pub fn sigterm(bin: &str, rounds: usize) -> Result<(), String> {
    let me = me()?;
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, through) in [false, true].into_iter().enumerate() {
            let mut cmd = if through {
                let mut c = Command::new(bin);
                c.arg("-q").arg("--").arg(&me);
                c
            } else {
                Command::new(&me)
            };
            cmd.arg("agent-sigterm")
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
            let mut out = child.stdout.take().ok_or("no stdout")?;
            read_byte(&mut out, "ready byte")?;
            let t0 = Instant::now();
            kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)
                .map_err(|e| format!("kill: {e}"))?;
            read_byte(&mut out, "the handler's byte")?;
            times[i].push(t0.elapsed());
            expect_success(&mut child, "the SIGTERM agent")?;
        }
    }
    for (name, t) in ["direct", "synwire-run"].into_iter().zip(times) {
        let (median, p90) = summary(t);
        println!("sigterm.{name}.median_us {median}");
        println!("sigterm.{name}.p90_us {p90}");
    }
    println!("sigterm.rounds {rounds}");
    Ok(())
}

/// The time from the agent's exit to synwire-run's exit when the agent left `left` processes
/// behind (teardown kills them, waits for the cgroup to empty, reads the statistics and removes
/// the cgroup), next to the same agent leaving nothing.
pub fn teardown(bin: &str, rounds: usize, left: usize) -> Result<(), String> {
    let me = me()?;
    let stats_file =
        std::env::temp_dir().join(format!("synwire-bench-{}.json", std::process::id()));
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, n) in [left, 0].into_iter().enumerate() {
            let mut child = Command::new(bin)
                .arg("-q")
                .arg("--stats-file")
                .arg(&stats_file)
                .arg("--")
                .arg(&me)
                .arg("agent-leave")
                .arg(n.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("spawn: {e}"))?;
            let mut out = child.stdout.take().ok_or("no stdout")?;
            read_byte(&mut out, "the agent's last byte")?;
            let t0 = Instant::now();
            expect_success(&mut child, "synwire-run")?;
            times[i].push(t0.elapsed());
            let stats = std::fs::read_to_string(&stats_file)
                .map_err(|e| format!("read {}: {e}", stats_file.display()))?;
            let stats: serde_json::Value = serde_json::from_str(&stats)
                .map_err(|e| format!("parse {}: {e}", stats_file.display()))?;
            let reported = stats["leftover_processes"].as_u64();
            if reported != Some(n as u64) {
                return Err(format!(
                    "the agent left {n} processes, the statistics say {reported:?}"
                ));
            }
            if let Some(cg) = stats["cgroup"].as_str() {
                let dir = cgroup_dir(cg)?;
                if dir.exists() {
                    return Err(format!("{} is still there after the run", dir.display()));
                }
            }
        }
    }
    let _ = std::fs::remove_file(&stats_file);
    for (n, t) in [left, 0].into_iter().zip(times) {
        let (median, p90) = summary(t);
        println!("teardown.{n}.median_us {median}");
        println!("teardown.{n}.p90_us {p90}");
    }
    println!("teardown.left {left}");
    println!("teardown.rounds {rounds}");
    Ok(())
}

/// The cgroup2 mount point, from mountinfo.
fn cgroup_dir(cg: &str) -> Result<PathBuf, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    let mount = info
        .lines()
        .find(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|r| r.starts_with("cgroup2 "))
        })
        .and_then(|l| l.split(' ').nth(4))
        .ok_or("no cgroup2 mount")?;
    Ok(Path::new(mount).join(cg.trim_start_matches('/')))
}

fn subdirs(dir: &str) -> Result<BTreeSet<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {dir}: {e}"))?;
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// Processes whose command line is `<this program> agent-hold`.
fn holders() -> usize {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return 0;
    };
    proc.filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| c.split(|b| *b == 0).nth(1) == Some(b"agent-hold"))
        .count()
}

/// Processes in every cgroup below `dir`.
fn procs_below(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let own = std::fs::read_to_string(e.path().join("cgroup.procs"))
                .map_or(0, |t| t.lines().count());
            own + procs_below(&e.path())
        })
        .sum()
}

/// `n` launches at once. Every agent writes a byte and then holds until stdin (one pipe shared by
/// all) reaches end of file, so all `n` demonstrably run at the same time; then the pipe is
/// closed and every launcher must exit 0 with its cgroup gone and no process left.
pub fn concurrent(bin: &str, n: usize, agents_dir: &str) -> Result<(), String> {
    let me = me()?;
    let before = subdirs(agents_dir)?;
    let (stdin_r, stdin_w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (mut out_r, out_w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let t0 = Instant::now();
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        let child = Command::new(bin)
            .arg("-q")
            .arg("--")
            .arg(&me)
            .arg("agent-hold")
            .stdin(stdin_r.try_clone().map_err(|e| format!("dup: {e}"))?)
            .stdout(out_w.try_clone().map_err(|e| format!("dup: {e}"))?)
            .spawn()
            .map_err(|e| format!("spawn launcher {i}: {e}"))?;
        children.push(child);
    }
    drop(stdin_r);
    drop(out_w);
    for i in 0..n {
        read_byte(&mut out_r, &format!("ready byte from agent {i}"))?;
    }
    let all_running = t0.elapsed();
    let running = subdirs(agents_dir)?.difference(&before).count();
    drop(stdin_w);
    let mut failed = 0;
    for mut c in children {
        if expect_success(&mut c, "launcher").is_err() {
            failed += 1;
        }
    }
    let total = t0.elapsed();
    let leaked = subdirs(agents_dir)?.difference(&before).count();
    let surviving = holders() + procs_below(Path::new(agents_dir));
    println!("concurrent.agents {n}");
    println!("concurrent.cgroups_while_running {running}");
    println!("concurrent.all_running_ms {}", all_running.as_millis());
    println!("concurrent.total_ms {}", total.as_millis());
    println!(
        "concurrent.per_second {:.0}",
        n as f64 / total.as_secs_f64()
    );
    println!("concurrent.failed {failed}");
    println!("concurrent.leaked_cgroups {leaked}");
    println!("concurrent.surviving_processes {surviving}");
    Ok(())
}
