//! The top-level error: one variant per layer, and the exit code each maps to.

use crate::cgroup::CgroupError;
use crate::profile::ProfileError;
use crate::spawn::SpawnError;

/// synwire-run's own failures: all exit 125. (The agent's exec failures are outcomes, 126/127.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error(transparent)]
    Landlock(#[from] crate::landlock::LandlockError),
    #[error(transparent)]
    View(#[from] crate::view::ViewError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Network(#[from] crate::net::setup::NetworkError),
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    StatsFile(#[from] crate::report::file::StatsFileError),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error(
        "cannot read random bytes for the agent's id (getrandom and /dev/urandom failed): {0}"
    )]
    Random(std::io::Error),
}

/// Exit code for synwire-run's own errors.
pub const EXIT_OWN_ERROR: i32 = 125;
/// Exit code on timeout, as timeout(1).
pub const EXIT_TIMEOUT: i32 = 124;

impl Error {
    pub fn exit_code(&self) -> i32 {
        EXIT_OWN_ERROR
    }
}
