//! The first stage: everything resolved before anything is created. The profile is loaded and
//! checked, inherited descriptors are marked close-on-exec, the id is drawn, the least-privilege
//! plan (with the Landlock ruleset and the seccomp filter it owns) and the command's argv and envp
//! are ready.

use std::ffi::OsString;
use std::time::Duration;

use super::{Finished, Next, Request};
use crate::error::Error;
use crate::landlock;
use crate::plan::ExecPlan;
use crate::profile::ManagerMode;
use crate::profile::{self, Profile};
use crate::report::{self, Outcome, Stats};
use crate::security::{self, SecPlan};
use crate::{seccomp, sys};

/// A launch with everything resolved and nothing created yet.
pub struct Prepared {
    pub(super) id: String,
    pub(super) profile: Profile,
    pub(super) sec: SecPlan,
    pub(super) plan: ExecPlan,
    /// The statistics so far: the id, the profile, the command, what Landlock enforces.
    pub(super) stats: Stats,
    pub(super) cgroup_parent: Option<String>,
    pub(super) manager: ManagerMode,
    /// Run without what cannot be enforced: `--allow-degraded`, or `[cgroup] required = false`.
    pub(super) degraded_ok: bool,
    /// `[network] mode = "proxy"`: the hosts the proxy lets the agent reach.
    pub(super) policy: Option<crate::net::Policy>,
}

impl Prepared {
    /// Prepares `req`. Ends the launch (exit 127 or 126, with a report) when the command cannot
    /// be found or executed.
    pub fn new(req: &Request) -> Result<Next<Prepared>, Error> {
        // Before synwire-run opens anything of its own: inherited descriptors are not the agent's.
        security::prepare_fds(preserved_fds(req.preserve_fds))?;
        let mut profile = profile::load(&req.profile, &req.overrides)?;
        if let Some(path) = &req.output.stats_file {
            report::file::check(path)?;
        }
        let id = new_id()?;
        let mut stats = base_stats(&id, &profile, &req.command);
        // Before the least-privilege plan: the view may add a user namespace.
        let (view, unenforced) = crate::view::resolve(
            profile.filesystem.as_ref(),
            &mut profile.namespaces,
            security::has_cap_sys_admin,
        )?;
        stats.filesystem_view = view;
        let via = crate::net::setup::resolve(
            &profile.network,
            &mut profile.namespaces,
            security::has_cap_sys_admin,
            || crate::ns::userns_obstacle().is_some(),
        );
        let cut_network = via == Some(crate::net::setup::Via::Filters);
        let policy = match profile.network.mode {
            profile::network::Mode::Proxy => Some(
                crate::net::Policy::parse(&profile.network.allow)
                    .expect("[network] allow is checked when the profile is read"),
            ),
            _ => None,
        };
        if let Some(u) = unenforced {
            tracing::warn!("not enforced: {}: {}", u.what, u.why);
            stats.unenforced.push(u);
        }
        let mut sec = SecPlan::new(&profile.security, &profile.rlimits, profile.namespaces.user)?;
        let mut env: Vec<(OsString, OsString)> = profile.env.apply(std::env::vars_os().collect());
        if policy.is_some() {
            crate::net::setup::set_proxy_env(&mut env);
        }
        stats.landlock = prepare_landlock(&profile, &env, &mut sec)?;
        stats.seccomp = prepare_seccomp(&profile, cut_network, &mut sec)?;
        stats.network.via = via.map(|via| match via {
            crate::net::setup::Via::Namespace => vec!["namespace"],
            crate::net::setup::Via::Filters => match landlock::network_cut() {
                Some(ruleset) => {
                    sec.set_landlock_net(ruleset);
                    vec!["landlock", "seccomp"]
                }
                None => vec!["seccomp"],
            },
        });
        let plan = match ExecPlan::new(req.command.clone(), env) {
            Ok(plan) => plan,
            // Not found or not executable: nothing has been created yet.
            Err(failure) => {
                return Ok(Next::Finished(Finished::exec_failed(
                    stats,
                    failure,
                    Duration::ZERO,
                )))
            }
        };
        Ok(Next::Stage(Prepared {
            manager: req.manager.unwrap_or(profile.cgroup_manager),
            degraded_ok: req.allow_degraded || !profile.cgroup_required,
            cgroup_parent: req.cgroup_parent.clone(),
            id,
            profile,
            sec,
            plan,
            stats,
            policy,
        }))
    }

    /// The agent's id (its cgroup's name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The profile as this launch resolved it.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
}

/// Builds the `[filesystem]` ruleset into `sec`, which owns it from then on; returns what it
/// enforces. `env` is the agent's environment, whose NOTIFY_SOCKET the agent may connect to.
fn prepare_landlock(
    profile: &Profile,
    env: &[(OsString, OsString)],
    sec: &mut SecPlan,
) -> Result<landlock::Status, Error> {
    let Some(fs) = &profile.filesystem else {
        return Ok(landlock::Status::off());
    };
    let notify = env
        .iter()
        .find(|(k, _)| k == "NOTIFY_SOCKET")
        .map(|(_, v)| std::path::Path::new(v));
    Ok(match landlock::prepare(fs, notify)? {
        Some(prepared) => {
            sec.set_landlock(prepared.ruleset);
            prepared.status
        }
        None => landlock::Status::unsupported(),
    })
}

/// Builds the `[seccomp]` filter (with the network cut when `cut_network`) into `sec`; returns
/// what it enforces of `[seccomp]`.
fn prepare_seccomp(
    profile: &Profile,
    cut_network: bool,
    sec: &mut SecPlan,
) -> Result<seccomp::Status, Error> {
    Ok(match seccomp::prepare(&profile.seccomp, cut_network)? {
        Some((program, status)) => {
            sec.set_seccomp(program);
            status
        }
        None => seccomp::Status::off(),
    })
}

/// How many descriptors from 3 up the agent gets: `preserve` (--preserve-fds), or, for a
/// socket-activated synwire-run (LISTEN_PID is ours), LISTEN_FDS, as the agent is the real service.
fn preserved_fds(preserve: u32) -> u32 {
    if preserve > 0 {
        return preserve;
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

fn base_stats(id: &str, profile: &Profile, command: &[OsString]) -> Stats {
    Stats {
        id: id.to_string(),
        profile: profile.name.clone(),
        cgroup: None,
        command: command
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
        filesystem_view: crate::view::Status::off(),
        seccomp: seccomp::Status::off(),
        network: crate::net::setup::Status::new(profile.network.mode),
        error: None,
    }
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
