//! synwire-run: launch a program inside its own cgroup v2 with the limits of a profile, report
//! exactly what it used, and leave nothing behind.
//!
//! The architecture, in the order a run goes through it:
//! - [`cli`] turns the command line into a typed [`launch::Request`] (or a command that runs no
//!   agent: [`commands`], [`check`], [`gc`]);
//! - [`launch`] takes a request through its stages, Prepared → Running → Finished, calling:
//! - [`profile`], which reads and validates the TOML profile and the overrides;
//! - [`plan`], [`security`], [`landlock`] and [`seccomp`], which resolve before fork everything the
//!   child needs (program path, argv, envp, least privilege, the Landlock ruleset, the system-call
//!   filter);
//! - [`cgroup`], which finds the hierarchy and our place, enables controllers from the parent
//!   down, creates `<parent>/synwire/agents/<uuid>` with its limits, and later kills, reads,
//!   removes; [`guardian`] does that if synwire-run is killed;
//! - [`spawn`], which starts the agent inside that cgroup (clone3 CLONE_INTO_CGROUP, or fork plus
//!   a cgroup.procs handshake) in its namespaces ([`ns`]), with only async-signal-safe code
//!   between fork and execve;
//! - [`supervise`], which forwards signals through a pidfd, reaps, and enforces the timeout;
//! - [`net`], the HTTP and SOCKS5 proxy that is the agent's only way out in `proxy` network mode,
//!   with its allow list;
//! - [`report`], which prints the summary and writes the JSON statistics.
//!
//! Everything that runs after fork and before execve (or instead of it: the pid namespace's init,
//! the guardian) is in [`postfork`], where lints forbid allocation, formatting, tracing and
//! panics. All unsafe code is in [`sys`] and in `postfork`'s raw layer (its raw calls and its
//! three forks), every block with its `// SAFETY:`; the rest of the crate denies `unsafe`.
//!
//! Unit tests cover parsing and placement rules, and start agents and guardians without a cgroup;
//! the behaviour on real kernels (5.10, 6.1, 6.12) is tested by the VM suite in tests/vm.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cgroup;
pub mod check;
pub mod cli;
pub mod commands;
pub mod error;
pub mod gc;
pub mod guardian;
pub mod landlock;
pub mod launch;
pub mod log;
pub mod net;
pub mod ns;
pub mod plan;
pub mod postfork;
pub mod probe;
pub mod profile;
pub mod report;
pub mod seccomp;
pub mod security;
pub mod signals;
pub mod spawn;
pub mod supervise;
pub mod sys;
pub mod systemd;
pub mod view;

pub use cli::Cli;
pub use error::Error;

/// Runs the command the CLI describes; returns the exit code synwire-run should exit with.
pub fn run(cli: &Cli) -> Result<i32, Error> {
    match &cli.cmd {
        Some(cmd) => commands::run(cmd),
        None => launch::run(&cli.launch_request()),
    }
}
