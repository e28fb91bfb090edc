//! synwire-run: launch a program inside its own cgroup v2 with the limits of a profile, report
//! exactly what it used, and leave nothing behind.
//!
//! The architecture, in the order a run goes through it:
//! - [`profile`] reads and validates the TOML profile and the command-line overrides;
//! - [`plan`] resolves everything the child needs before fork (program path, argv, envp);
//! - [`cgroup`] finds the hierarchy and our place, enables controllers from the parent down,
//!   creates `<parent>/synwire/agents/<uuid>` with its limits, and later kills, reads, removes;
//! - [`spawn`] starts the agent inside that cgroup (clone3 CLONE_INTO_CGROUP, or fork plus a
//!   cgroup.procs handshake), with only async-signal-safe code between fork and execve;
//! - [`supervise`] forwards signals through a pidfd, reaps, and enforces the timeout;
//! - [`report`] prints the summary and writes the JSON statistics.
//!
//! Around them: [`ns`] (namespaces and the PID-1 init), [`security`] and [`landlock`] (least
//! privilege, applied in the child just before execve), and the commands that run no agent
//! ([`check`], [`gc`], [`commands`]).
//!
//! All unsafe code is in [`sys`]. Unit tests cover parsing and placement rules; the behaviour on
//! real kernels (5.10, 6.1, 6.12) is tested by the VM suite in tests/vm.

pub mod cgroup;
pub mod check;
pub mod cli;
pub mod commands;
pub mod error;
pub mod gc;
pub mod guardian;
pub mod landlock;
pub mod log;
pub mod ns;
pub mod plan;
pub mod profile;
pub mod report;
pub mod security;
pub mod spawn;
pub mod supervise;
pub mod sys;
pub mod systemd;

use std::time::{Duration, Instant};

use cgroup::{AgentCgroup, CgroupStats, Request, Unenforced};
pub use cli::Cli;
pub use error::Error;
use error::EXIT_TIMEOUT;
use plan::{ExecFailure, ExecPlan};
use profile::{OomPolicy, Overrides, Profile};
use report::{Outcome, Stats};
use spawn::Spawned;
use supervise::{Signals, Status};

/// Runs the command the CLI describes; returns the exit code synwire-run should exit with.
pub fn run(cli: &Cli) -> Result<i32, Error> {
    if let Some(cmd) = &cli.cmd {
        return commands::run(cmd);
    }
    let overrides = Overrides {
        memory: cli.memory.clone(),
        cpu: cli.cpu.clone(),
        pids: cli.pids.clone(),
        timeout: cli.timeout.clone(),
        unshare: cli.unshare.clone(),
        sets: cli.sets.clone(),
    };
    // Before synwire-run opens anything of its own: inherited descriptors are not the agent's.
    security::prepare_fds(preserved_fds(cli))?;
    let profile = profile::load(&cli.profile, &overrides)?;
    if let Some(path) = &cli.stats_file {
        check_stats_path(path)?;
    }
    let id = new_id()?;
    let mut stats = base_stats(&id, &profile, cli);

    let mut sec =
        security::SecPlan::new(&profile.security, &profile.rlimits, profile.namespaces.user)?;
    let landlock = match &profile.filesystem {
        Some(fs) => landlock::prepare(fs)?,
        None => None,
    };
    sec.landlock = landlock
        .as_ref()
        .map(|l| std::os::fd::AsRawFd::as_raw_fd(&l.ruleset));
    stats.landlock = match (&profile.filesystem, &landlock) {
        (None, _) => landlock::Status::off(),
        (Some(_), Some(l)) => l.status.clone(),
        (Some(_), None) => landlock::Status {
            status: "unsupported",
            abi: None,
            unhandled: Vec::new(),
        },
    };
    let env = profile.env.apply(std::env::vars_os().collect());
    let plan = match ExecPlan::new(cli.command.clone(), env) {
        Ok(plan) => plan,
        // Not found or not executable: nothing has been created yet.
        Err(failure) => return finish(cli, exec_failed(stats, failure, Duration::ZERO)),
    };

    ns::preflight(&profile.namespaces).map_err(spawn::SpawnError::from)?;
    let signals = Signals::block().map_err(Error::Signals)?;
    if let Err(e) = sys::set_child_subreaper() {
        tracing::debug!("cannot become a subreaper: {e}");
    }
    let degraded_ok = cli.allow_degraded || !profile.cgroup_required;
    let launcher = gc::Launcher::current();
    let (mut cgroup, unenforced) = setup_cgroup(&profile, cli, &id, degraded_ok, &launcher)?;
    // Ends the agent's cgroup if synwire-run is killed from here on (item: nothing outlives it).
    let guardian = cgroup.as_ref().and_then(guardian::start);
    for u in &unenforced {
        tracing::warn!("not enforced: {}: {}", u.what, u.why);
    }
    stats.unenforced = unenforced;
    stats.cgroup = cgroup.as_ref().map(|c| c.rel.clone());
    if let Some(c) = &cgroup {
        stats.memory_limit_bytes = c.limits_applied.memory.and_then(|m| m.bytes());
        stats.pids_limit = c.limits_applied.pids;
        stats.cpu_limit = c.limits_applied.cpu;
    }
    if let Some(sig) = signals.pending_termination() {
        tracing::warn!(
            "{} arrived before the agent started; not starting it",
            profile::signal_name(sig)
        );
        if let Some(cg) = cgroup.as_mut() {
            cg.teardown(true);
        }
        drop(cgroup);
        drop(guardian);
        if supervise::STOP_REQUESTS.contains(&sig) {
            end_by_signal(sig);
        }
        return Ok(128 + sig);
    }

    let start = Instant::now();
    let force_fork = std::env::var_os("SYNWIRE_SPAWN").is_some_and(|v| v == "fork");
    let ns_plan = ns::NsPlan::new(&profile.namespaces);
    let child = match spawn::spawn(&spawn::Spawn {
        plan: &plan,
        cgroup: cgroup.as_ref(),
        ns: ns_plan.as_ref().map(|p| (p, &profile.namespaces)),
        sec: &sec,
        old_mask: signals.old_mask(),
        wait_set: signals.set(),
        force_fork,
    })? {
        Spawned::Running(child) => child,
        Spawned::ExecFailed(failure) => {
            let wall = start.elapsed();
            if let Some(cg) = cgroup.as_mut() {
                cg.teardown(false);
            }
            return finish(cli, exec_failed(stats, failure, wall));
        }
    };
    tracing::debug!(
        "agent {id} started as pid {} ({}) in {}",
        child.pid,
        match child.mode {
            spawn::SpawnMode::Clone3 => "clone3 into its cgroup",
            spawn::SpawnMode::Fork => "fork, then cgroup.procs",
        },
        stats.cgroup.as_deref().unwrap_or("no cgroup (degraded)")
    );
    stats.spawn = Some(child.mode);
    // Agents of launchers killed together with their guardians: removed by the next launch, now
    // that ours runs (the work overlaps with its start).
    if let Some(agents) = cgroup.as_ref().and_then(AgentCgroup::agents_dir) {
        gc::remove_stale(agents, &launcher);
    }

    let watch = supervise::Watch {
        timeout: profile.limits.timeout,
        stop: &profile.stop,
        cgroup: cgroup.as_ref(),
        oom_events: cgroup.as_ref().and_then(AgentCgroup::memory_events),
        oom_policy: profile.limits.oom_policy,
    };
    let cpu_at_start = sys::own_cpu_us();
    let exit = supervise::supervise(&child, &signals, watch, start);
    let cpu_at_exit = sys::own_cpu_us();
    stats.wall_time_us = exit.ended.duration_since(start).as_micros() as u64;
    let (cg, leftovers) = match cgroup.as_mut() {
        Some(cg) => cg.teardown(exit.stop_requests != sys::SigMask(0)),
        None => (CgroupStats::default(), None),
    };
    drop(cgroup);
    drop(guardian);
    // synwire-run's own cost, by phase: it should stay in milliseconds whatever the agent does.
    tracing::debug!(
        "own CPU: {} µs to start the agent, {} µs supervising, {} µs in teardown",
        cpu_at_start,
        cpu_at_exit - cpu_at_start,
        sys::own_cpu_us() - cpu_at_exit
    );

    stats.leftover_processes = leftovers;
    let rusage_cpu = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    stats.cpu_user_us = cg.cpu_user_us.or(Some(rusage_cpu(exit.rusage.ru_utime)));
    stats.cpu_system_us = cg.cpu_system_us.or(Some(rusage_cpu(exit.rusage.ru_stime)));
    stats.cpu_usage_us = cg.cpu_usage_us.or(Some(
        stats.cpu_user_us.unwrap_or(0) + stats.cpu_system_us.unwrap_or(0),
    ));
    stats.cpu_throttled_us = cg.cpu_throttled_us;
    stats.cpu_nr_throttled = cg.cpu_nr_throttled;
    (stats.memory_peak_bytes, stats.memory_peak_source) = match cg.memory_peak_bytes {
        Some(p) => (Some(p), Some("memory.peak")),
        None => (Some(exit.rusage.ru_maxrss as u64 * 1024), Some("rusage")),
    };
    stats.oom_kills = cg.oom_kills;
    stats.pids_peak = cg.pids_peak;
    stats.pids_limit_hits = cg.pids_limit_hits;

    let oom = cg.oom_kills.unwrap_or(0) > 0;
    // Under oom_policy "kill" any OOM kill ended the agent, whatever its main process did (an
    // OOM-immune parent survives memory.oom.group and may even exit 0 after the kill).
    let oom_ended = exit.oom_killed || (oom && profile.limits.oom_policy == OomPolicy::Kill);
    (stats.outcome, stats.exit_code, stats.signal) = match exit.status {
        _ if oom_ended => (Outcome::OomKilled, 128 + libc::SIGKILL, Some(libc::SIGKILL)),
        Status::Signaled(s) if exit.timed_out => (Outcome::TimedOut, EXIT_TIMEOUT, Some(s)),
        Status::Exited(_) if exit.timed_out => (Outcome::TimedOut, EXIT_TIMEOUT, None),
        Status::Signaled(libc::SIGKILL) if oom => {
            (Outcome::OomKilled, 128 + libc::SIGKILL, Some(libc::SIGKILL))
        }
        Status::Signaled(s) => (Outcome::Signaled, 128 + s, Some(s)),
        Status::Exited(c) => (Outcome::Exited, c, None),
    };
    stats.signal_name = stats.signal.map(profile::signal_name);
    // Asked to stop by SIGTERM, SIGINT or SIGHUP, and the agent died of it: a clean stop, which
    // ends synwire-run by the same signal (systemd counts that as success; shells see 128+N).
    let clean_stop = match (stats.outcome, exit.status) {
        (Outcome::Signaled, Status::Signaled(s)) if exit.stop_requests.has(s) => Some(s),
        _ => None,
    };
    let code = finish(cli, stats)?;
    if let Some(sig) = clean_stop {
        end_by_signal(sig);
    }
    Ok(code)
}

/// Ends synwire-run by `sig` with its default action, after everything else is done. Returns
/// only where the kernel discards it (synwire-run is PID 1 of a namespace); the caller then
/// exits 128+N as usual.
fn end_by_signal(sig: i32) {
    tracing::debug!("ending by {}, as the agent did", profile::signal_name(sig));
    sys::deliver_to_self(sig);
}

/// How many descriptors from 3 up the agent gets: --preserve-fds, or, for a socket-activated
/// synwire-run (LISTEN_PID is ours), LISTEN_FDS, as the agent is the real service.
fn preserved_fds(cli: &Cli) -> u32 {
    if cli.preserve_fds > 0 {
        return cli.preserve_fds;
    }
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if ours && fds > 0 {
        tracing::debug!("socket activation: passing LISTEN_FDS={fds} descriptors to the agent");
        fds
    } else {
        0
    }
}

/// A random (version 4) UUID, lowercase and hyphenated, without blocking on the entropy pool.
fn new_id() -> Result<String, Error> {
    let bytes = sys::random_id_bytes().map_err(Error::Random)?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}

fn base_stats(id: &str, profile: &Profile, cli: &Cli) -> Stats {
    Stats {
        id: id.to_string(),
        profile: profile.name.clone(),
        cgroup: None,
        command: cli
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        outcome: Outcome::ExecFailed,
        exit_code: 0,
        signal: None,
        signal_name: None,
        wall_time_us: 0,
        cpu_usage_us: None,
        cpu_user_us: None,
        cpu_system_us: None,
        cpu_throttled_us: None,
        cpu_nr_throttled: None,
        cpu_limit: None,
        memory_peak_bytes: None,
        memory_peak_source: None,
        memory_limit_bytes: None,
        oom_kills: None,
        pids_peak: None,
        pids_limit_hits: None,
        pids_limit: None,
        leftover_processes: None,
        spawn: None,
        unenforced: Vec::new(),
        landlock: landlock::Status::off(),
        error: None,
    }
}

fn exec_failed(mut stats: Stats, failure: ExecFailure, wall: Duration) -> Stats {
    tracing::error!("{}", failure.message);
    stats.outcome = Outcome::ExecFailed;
    stats.exit_code = failure.code;
    stats.wall_time_us = wall.as_micros() as u64;
    stats.error = Some(failure.message);
    stats
}

/// Prints the summary, writes the statistics file, returns the exit code.
fn finish(cli: &Cli, stats: Stats) -> Result<i32, Error> {
    if !cli.quiet {
        // Not eprint!: a closed stderr pipe must not turn the agent's status into a panic.
        use std::io::Write;
        let _ = std::io::stderr().write_all(stats.human().as_bytes());
    }
    if let Some(path) = &cli.stats_file {
        stats.write_json(path).map_err(|source| Error::StatsFile {
            path: path.clone(),
            source,
        })?;
    }
    Ok(stats.exit_code)
}

fn check_stats_path(path: &std::path::Path) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::StatsFile {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    }
}

/// Creates the agent cgroup, or (degraded) says what runs unenforced without it.
fn setup_cgroup(
    profile: &Profile,
    cli: &Cli,
    id: &str,
    degraded_ok: bool,
    launcher: &gc::Launcher,
) -> Result<(Option<AgentCgroup>, Vec<Unenforced>), Error> {
    let manager = if cli.scope {
        cgroup::delegate::ManagerMode::Systemd
    } else if cli.no_scope {
        cgroup::delegate::ManagerMode::Cgroupfs
    } else {
        profile.cgroup_manager
    };
    let description = scope_description(&profile.name, &cli.command);
    Ok(cgroup::create_or_degrade(&Request {
        id,
        parent: cli.cgroup_parent.as_deref(),
        limits: &profile.limits,
        profile: &profile.name,
        degraded_ok,
        manager,
        description: &description,
        launcher_tag: &launcher.tag(),
    })?)
}

/// The Description of a transient scope: the profile and the command, as `systemctl status`
/// shows it (shortened past 200 characters).
fn scope_description(profile: &str, command: &[std::ffi::OsString]) -> String {
    let cmd: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut d = format!("synwire-run --profile {profile} -- {}", cmd.join(" "));
    if d.len() > 200 {
        let mut end = 197;
        while !d.is_char_boundary(end) {
            end -= 1;
        }
        d.truncate(end);
        d.push_str("...");
    }
    d
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_lowercase_hyphenated_uuid_v4_and_distinct() {
        let a = super::new_id().unwrap();
        let b = super::new_id().unwrap();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a, a.to_lowercase());
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
