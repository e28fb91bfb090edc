//! The second stage: from a prepared launch to a running agent ([`Prepared::start`]), and from
//! there to its end ([`Running::wait`]): supervised, its cgroup torn down, the statistics read.

use std::time::{Duration, Instant};

use super::{Finished, Next, Prepared};
use crate::cgroup::{self, AgentCgroup, CgroupStats, Unenforced};
use crate::error::Error;
use crate::gc::{self, Launcher};
use crate::guardian::{self, Guardian};
use crate::profile::{self, Profile};
use crate::report::Stats;
use crate::signals::STOP_REQUESTS;
use crate::spawn::{self, Child, Spawned};
use crate::supervise::{self, Signals};
use crate::view::ViewPlan;
use crate::{ns, security, sys};

/// A launch whose agent runs.
pub struct Running {
    profile: Profile,
    child: Child,
    signals: Signals,
    /// Declared before the guardian: a running launch that is dropped removes its cgroup first.
    cgroup: Option<AgentCgroup>,
    guardian: Option<Guardian>,
    /// The `[network]` proxy, serving from threads started after the agent.
    proxy: Option<crate::net::Proxy>,
    stats: Stats,
    start: Instant,
}

impl Prepared {
    /// Blocks the signals, creates the agent cgroup (or degrades), starts its guardian and spawns
    /// the agent in it. Ends the launch when a stop signal came first (the agent is not started)
    /// or the agent's exec failed.
    pub fn start(self) -> Result<Next<Running>, Error> {
        ns::preflight(&self.profile.namespaces, security::has_cap_sys_admin)
            .map_err(spawn::SpawnError::from)?;
        let signals = Signals::block().map_err(Error::Signals)?;
        if let Err(e) = sys::set_child_subreaper() {
            tracing::debug!("cannot become a subreaper: {e}");
        }
        let launcher = Launcher::current();
        let (mut cgroup, unenforced) = self.create_cgroup(&launcher)?;
        // Ends the agent's cgroup if synwire-run is killed from here on (item: nothing outlives it).
        let guardian = cgroup.as_ref().and_then(guardian::start);
        let Prepared {
            id,
            profile,
            sec,
            plan,
            mut stats,
            policy,
            ..
        } = self;
        describe_cgroup(&mut stats, cgroup.as_ref(), unenforced);
        if let Some(sig) = signals.pending_termination() {
            return Ok(Next::Finished(not_started(sig, cgroup, guardian)));
        }

        // Just before fork: the mount points the child makes read-only are those of now.
        let view = match profile.filesystem.as_ref() {
            Some(fs) if stats.filesystem_view.enforced() => {
                let mut view = ViewPlan::new(fs)?;
                view.tmp_rule = sec
                    .landlock
                    .zip(stats.landlock.abi)
                    .map(|(fd, abi)| (fd, crate::landlock::write_dir_access(abi)));
                Some(view)
            }
            _ => None,
        };
        stats.filesystem_view.hidden = view.as_ref().map_or(0, ViewPlan::hidden);
        let (handoff, theirs) = policy
            .is_some()
            .then(crate::net::setup::Handoff::new)
            .transpose()?
            .unzip();
        let forwards = policy.as_ref().map_or_else(Vec::new, |p| {
            p.loopback_forwards(&[crate::net::setup::HTTP_PORT, crate::net::setup::SOCKS_PORT])
        });
        let start = Instant::now();
        let spawned = spawn_agent(
            &plan,
            &sec,
            &profile,
            view,
            theirs.map(|theirs| (theirs, forwards.as_slice())),
            cgroup.as_ref(),
            &signals,
        )?;
        let child = match spawned {
            Spawned::Running(child) => child,
            Spawned::ExecFailed(failure) => {
                let wall = start.elapsed();
                if let Some(cg) = cgroup.as_mut() {
                    cg.teardown(false, release(guardian.as_ref()));
                }
                return Ok(Next::Finished(Finished::exec_failed(stats, failure, wall)));
            }
        };
        started(&id, &child, &mut stats);
        // Threads from here on only: everything that forks has forked.
        let proxy = match (handoff, policy) {
            (Some(handoff), Some(policy)) => Some(start_proxy(handoff, &forwards, policy, &child)?),
            _ => None,
        };
        // Agents of launchers killed together with their guardians: removed by the next launch,
        // now that ours runs (the work overlaps with its start).
        if let Some(agents) = cgroup.as_ref().and_then(AgentCgroup::agents_dir) {
            gc::remove_stale(agents, &launcher);
        }
        Ok(Next::Stage(Running {
            profile,
            child,
            signals,
            cgroup,
            guardian,
            proxy,
            stats,
            start,
        }))
    }

    /// Creates the agent cgroup, tagged with `launcher`, or (degraded) says what runs unenforced
    /// without it.
    fn create_cgroup(
        &self,
        launcher: &Launcher,
    ) -> Result<(Option<AgentCgroup>, Vec<Unenforced>), Error> {
        let description = scope_description(&self.profile.name, &self.plan.command);
        Ok(cgroup::create_or_degrade(&cgroup::Request {
            id: &self.id,
            parent: self.cgroup_parent.as_deref(),
            limits: &self.profile.limits,
            profile: &self.profile.name,
            degraded_ok: self.degraded_ok,
            manager: self.manager,
            description: &description,
            launcher_tag: &launcher.tag(),
        })?)
    }
}

/// A stop signal arrived before the agent started: it is not started, the cgroup goes.
fn not_started(sig: i32, mut cgroup: Option<AgentCgroup>, guardian: Option<Guardian>) -> Finished {
    tracing::warn!(
        "{} arrived before the agent started; not starting it",
        profile::signal_name(sig)
    );
    if let Some(cg) = cgroup.as_mut() {
        cg.teardown(true, release(guardian.as_ref()));
    }
    drop(cgroup);
    drop(guardian);
    let end_by = STOP_REQUESTS.contains(&sig).then_some(sig);
    Finished::not_started(128 + sig, end_by)
}

/// Releases the guardian, once teardown says nothing in the cgroup can outlive synwire-run.
fn release(guardian: Option<&Guardian>) -> impl FnOnce() + '_ {
    move || {
        guardian.inspect(|g| g.release());
    }
}

/// Starts the `[network]` proxy on the listeners the agent's child sent; when that fails the
/// agent, already running, is killed and reaped before the error is returned.
fn start_proxy(
    handoff: crate::net::setup::Handoff,
    forwards: &[(u16, String)],
    policy: crate::net::Policy,
    child: &Child,
) -> Result<crate::net::Proxy, Error> {
    let started = handoff.receive(forwards).and_then(|listeners| {
        crate::net::start(listeners, policy).map_err(crate::net::setup::NetworkError::Start)
    });
    started.map_err(|e| {
        let _ = child.signal(libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None);
        e.into()
    })
}

/// Spawns the agent in its cgroup and namespaces (SYNWIRE_SPAWN=fork takes the fallback).
fn spawn_agent(
    plan: &crate::plan::ExecPlan,
    sec: &crate::security::SecPlan,
    profile: &Profile,
    view: Option<ViewPlan>,
    proxy: Option<(std::os::fd::OwnedFd, &[(u16, String)])>,
    cgroup: Option<&AgentCgroup>,
    signals: &Signals,
) -> Result<Spawned, spawn::SpawnError> {
    let force_fork = std::env::var_os("SYNWIRE_SPAWN").is_some_and(|v| v == "fork");
    let mut ns_plan = ns::NsPlan::new(&profile.namespaces, view);
    if let (Some(p), Some((handoff, forwards))) = (ns_plan.as_mut(), proxy) {
        p.proxy_handoff = Some(handoff);
        p.proxy_forwards = forwards.iter().map(|(port, _)| *port).collect();
    }
    spawn::spawn(&spawn::Spawn {
        plan,
        cgroup,
        ns: ns_plan.as_ref().map(|p| (p, &profile.namespaces)),
        sec,
        old_mask: signals.old_mask(),
        wait_set: signals.set(),
        force_fork,
    })
}

/// Says how the agent started, and records it.
fn started(id: &str, child: &Child, stats: &mut Stats) {
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
}

/// Warns of what is not enforced and records it, the cgroup and the limits it applied.
fn describe_cgroup(stats: &mut Stats, cgroup: Option<&AgentCgroup>, unenforced: Vec<Unenforced>) {
    for u in &unenforced {
        tracing::warn!("not enforced: {}: {}", u.what, u.why);
    }
    stats.unenforced.extend(unenforced);
    stats.cgroup = cgroup.map(|c| c.rel.clone());
    if let Some(c) = cgroup {
        stats.memory_limit_bytes = c.limits_applied.memory.and_then(|m| m.bytes());
        stats.pids_limit = c.limits_applied.pids;
        stats.cpu_limit = c.limits_applied.cpu;
    }
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

impl Running {
    /// Supervises the agent until it ends, tears its cgroup down and accounts for it.
    pub fn wait(mut self) -> Finished {
        let limits = &self.profile.limits;
        let watch = supervise::Watch {
            timeout: limits.timeout,
            stop: &self.profile.stop,
            cgroup: self.cgroup.as_ref(),
            oom_events: self.cgroup.as_ref().and_then(AgentCgroup::memory_events),
            oom_policy: limits.oom_policy,
        };
        let cpu_at_start = sys::own_cpu_us();
        let exit = supervise::supervise(&self.child, &self.signals, watch, self.start);
        let cpu_at_exit = sys::own_cpu_us();
        self.stats.wall_time_us = exit.ended.duration_since(self.start).as_micros() as u64;
        let (cg, leftovers) = match self.cgroup.as_mut() {
            Some(cg) => cg.teardown(
                exit.stop_requests != sys::SigMask(0),
                release(self.guardian.as_ref()),
            ),
            None => (CgroupStats::default(), None),
        };
        drop(self.cgroup.take());
        drop(self.guardian.take());
        if let Some(proxy) = self.proxy.take() {
            // The agent is gone: every tunnel closes now.
            self.stats.network.proxy = Some(proxy.stop());
        }
        // synwire-run's own cost, by phase: it should stay in milliseconds whatever the agent does.
        tracing::debug!(
            "own CPU: {} µs to start the agent, {} µs supervising, {} µs in teardown",
            cpu_at_start,
            cpu_at_exit - cpu_at_start,
            sys::own_cpu_us() - cpu_at_exit
        );
        self.stats.leftover_processes = leftovers;
        Finished::ended(self.stats, &cg, &exit, self.profile.limits.oom_policy)
    }

    /// The agent's main process.
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// How long ago the agent was started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}
