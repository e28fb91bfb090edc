//! A launch as typed stages, started from a typed [`Request`] rather than the command line, so that
//! any front end (the CLI, a binding, an agent framework in Rust) runs an agent the same way:
//!
//! - [`Prepared::new`]: the profile loaded and checked, inherited descriptors sorted out, the id,
//!   the least-privilege plan with its Landlock ruleset, the command resolved. Nothing is created.
//! - [`Prepared::start`] → [`Running`]: the signals blocked, the agent cgroup created (or the run
//!   degraded), its guardian started, the agent spawned inside it.
//! - [`Running::wait`] → [`Finished`]: supervised to its end, the cgroup torn down, the statistics
//!   and the outcome.
//!
//! A stage may end the launch early with a [`Finished`] ([`Next::Finished`]): the command could
//! not be executed, or a stop signal came before the agent started. [`run`] goes through all of
//! them as the command line does.
//!
//! Start a launch from a single-threaded process: the agent and the guardian are forked.

mod finished;
mod prepared;
mod running;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::Error;
use crate::profile::ManagerMode;
use crate::profile::Overrides;

pub use finished::Finished;
pub use prepared::Prepared;
pub use running::Running;

/// A launch as a front end asks for it: what `synwire-run [OPTIONS] -- COMMAND` says, typed.
#[derive(Debug, Clone)]
pub struct Request {
    /// A built-in profile, a profile along the search path, or a TOML file (a path containing
    /// `/` or ending in `.toml`).
    pub profile: String,
    /// Overrides of the profile: `--set` assignments, the limits, `--unshare`.
    pub overrides: Overrides,
    /// The command and its arguments, looked up in PATH as a shell would.
    pub command: Vec<OsString>,
    /// Place the agent cgroup directly under this cgroup (relative to the cgroup2 mount).
    pub cgroup_parent: Option<String>,
    /// Whether to ask systemd for a transient scope (`--scope`, `--no-scope`); None: as the
    /// profile's `[cgroup] manager` says.
    pub manager: Option<ManagerMode>,
    /// Run even where the limits cannot be enforced, naming each one that is not.
    pub allow_degraded: bool,
    /// Pass descriptors 3 .. 3+N-1 to the command; with 0, a socket-activated synwire-run passes
    /// LISTEN_FDS of them.
    pub preserve_fds: u32,
    pub output: Output,
}

impl Request {
    /// `command` under the `default` profile, nothing overridden.
    pub fn new(command: Vec<OsString>) -> Request {
        Request {
            profile: "default".into(),
            overrides: Overrides::default(),
            command,
            cgroup_parent: None,
            manager: None,
            allow_degraded: false,
            preserve_fds: 0,
            output: Output::default(),
        }
    }
}

/// Where the result of a launch goes.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// No human summary on stderr.
    pub quiet: bool,
    /// Also write the statistics as one JSON object to this file.
    pub stats_file: Option<PathBuf>,
}

/// What a stage leads to: the next stage, or the end of the launch.
#[derive(Debug)]
pub enum Next<T> {
    Stage(T),
    Finished(Finished),
}

/// Runs the launch `req` describes through every stage, as the command line does: reports the
/// result, and ends synwire-run by the agent's signal after a clean stop. Returns the exit code.
pub fn run(req: &Request) -> Result<i32, Error> {
    let prepared = match Prepared::new(req)? {
        Next::Stage(p) => p,
        Next::Finished(f) => return f.exit(&req.output),
    };
    let running = match prepared.start()? {
        Next::Stage(r) => r,
        Next::Finished(f) => return f.exit(&req.output),
    };
    running.wait().exit(&req.output)
}
