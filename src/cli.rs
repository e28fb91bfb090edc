//! The command line (clap derive only; no system calls here).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

/// Run a command inside its own cgroup v2 with the limits of a profile, report its resource use,
/// and leave nothing behind.
#[derive(Debug, Parser)]
#[command(
    name = "synwire-run",
    version,
    override_usage = "synwire-run [OPTIONS] -- COMMAND [ARGS]...\n       synwire-run check | gc | profiles | profile NAME [--resolved] | completions SHELL | man",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit status: the command's own; 128+N if it died of signal N (137 with an OOM report, also when \
[limits] oom_policy \"kill\" ended it; stopped by SIGTERM, SIGINT or SIGHUP that killed the command, synwire-run \
dies of the same signal, which a shell shows as 128+N); 124 on timeout; 125 if synwire-run itself failed; 126 if the command could not be executed; 127 if it was not found."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Option<Cmd>,

    /// A built-in profile (default, small, medium, large, isolated, agent, agent-net) or a TOML
    /// file (a path containing `/` or ending in `.toml`).
    #[arg(short, long, value_name = "NAME|PATH", default_value = "default")]
    pub profile: String,

    /// Memory limit (memory.max), e.g. 512MiB or 2G; overrides the profile.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,

    /// CPU limit in CPUs' worth of time (cpu.max), e.g. 0.5; overrides the profile.
    #[arg(long, value_name = "CPUS")]
    pub cpu: Option<String>,

    /// Maximum number of tasks (pids.max); overrides the profile.
    #[arg(long, value_name = "N")]
    pub pids: Option<String>,

    /// Wall-clock limit, e.g. 90s or 30m; overrides the profile.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Also write the final statistics as one JSON object to PATH.
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,

    /// No human summary at the end.
    #[arg(short, long)]
    pub quiet: bool,

    /// Diagnostics on stderr (-v debug, -vv trace); SYNWIRE_LOG takes a tracing filter.
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Place the agent cgroup directly under this cgroup (relative to the cgroup2 mount) instead
    /// of `<parent of our cgroup>/synwire/agents`.
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,

    /// Run in a transient systemd scope with delegation (`synwire-<id>.scope` in synwire.slice),
    /// asked of PID 1 by root and of the user manager otherwise; as `[cgroup] manager = "systemd"`.
    /// Without it, a scope is asked for only where the agents would otherwise have no place
    /// (a login session).
    #[arg(long, conflicts_with_all = ["no_scope", "cgroup_parent"])]
    pub scope: bool,

    /// Never ask systemd for a scope (as `[cgroup] manager = "cgroupfs"`): in a login session
    /// synwire-run refuses, naming the unit lines to add.
    #[arg(long)]
    pub no_scope: bool,

    /// Override any profile key by dotted path, e.g. --set limits.memory_high=1G (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,

    /// Namespaces to add to the profile's: a comma-separated list of user, pid, net, mount, uts,
    /// ipc, cgroup, or `all`.
    #[arg(long, value_name = "LIST")]
    pub unshare: Option<String>,

    /// The agent's network ([network] mode): host (the host's), none (loopback only), or proxy
    /// (only the hosts of [network] allow, through an HTTP and SOCKS5 proxy).
    #[arg(long, value_name = "MODE", value_parser = ["host", "none", "proxy"])]
    pub network: Option<String>,

    /// Allow HOST (ports 80 and 443) or HOST:PORT through the proxy (repeatable; adds to
    /// [network] allow and implies --network proxy). *.example.com allows its subdomains.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<String>,

    /// Pass file descriptors 3 .. 3+N-1 to the command (socket activation); every other inherited
    /// descriptor above 2 is closed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,

    /// Run even where the limits cannot be enforced, with a warning naming each one.
    #[arg(long)]
    pub allow_degraded: bool,

    /// The command and its arguments, after `--`; looked up in PATH as a shell would.
    #[arg(last = true, required = true, value_name = "COMMAND", value_parser = clap::value_parser!(OsString))]
    pub command: Vec<OsString>,
}

impl Cli {
    /// The launch this command line asks for (without a subcommand).
    pub fn launch_request(&self) -> crate::launch::Request {
        use crate::profile::ManagerMode;
        crate::launch::Request {
            profile: self.profile.clone(),
            overrides: crate::profile::Overrides {
                memory: self.memory.clone(),
                cpu: self.cpu.clone(),
                pids: self.pids.clone(),
                timeout: self.timeout.clone(),
                unshare: self.unshare.clone(),
                sets: self.sets.clone(),
                network: self.network.clone(),
                allow_hosts: self.allow_hosts.clone(),
            },
            command: self.command.clone(),
            cgroup_parent: self.cgroup_parent.clone(),
            manager: if self.scope {
                Some(ManagerMode::Systemd)
            } else if self.no_scope {
                Some(ManagerMode::Cgroupfs)
            } else {
                None
            },
            allow_degraded: self.allow_degraded,
            preserve_fds: self.preserve_fds,
            output: crate::launch::Output {
                quiet: self.quiet,
                stats_file: self.stats_file.clone(),
            },
        }
    }
}

/// Commands, used without `--`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Diagnose this host: cgroup2, placement, delegation, controllers, kernel features.
    Check {
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove agent cgroups left by a launcher that was killed.
    Gc {
        /// Also kill what outlived its launcher, then remove its cgroup.
        #[arg(long)]
        kill: bool,
        /// Look in this cgroup (as given to a run's --cgroup-parent) instead of the agents
        /// directory a run from here would use (and, for a non-root user under systemd, every
        /// agents directory of its user manager).
        #[arg(long, value_name = "PATH")]
        cgroup_parent: Option<String>,
    },
    /// List every profile --profile can find, with its source and description.
    Profiles,
    /// Print the keys profile NAME sets (its file, `extends` chain and --set) as TOML; with
    /// --resolved, every key and its default.
    Profile {
        /// A profile name or a path.
        name: String,
        /// Override any key by dotted path, as when running.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print every key, the defaults included: the profile as a run resolves it.
        #[arg(long)]
        resolved: bool,
    },
    /// Print the completion script for SHELL.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}
