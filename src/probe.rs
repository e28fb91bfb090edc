//! What this host offers, asked of it rather than read off the kernel version (backports,
//! seccomp filters and missing controllers all make the version lie): sysctls, and cgroup
//! interface files looked for where they would be. `synwire-run check` reports from these, and a
//! launch decides from the same ones.

use std::path::PathBuf;

/// The value of the sysctl at `path` (under /proc/sys), trimmed; None where it does not exist.
pub fn sysctl(path: &str) -> Option<String> {
    crate::sys::read_file(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Where a kernel feature that is a cgroup interface file was looked for.
#[derive(Debug, PartialEq, Eq)]
pub enum FileProbe {
    /// In this directory, which has the anchor.
    Present(PathBuf),
    /// Not in this directory, which has the anchor.
    Absent(PathBuf),
    /// None of the directories has the anchor.
    Nowhere,
}

/// Looks for `file` in the first of `dirs` that has `anchor`: an older file that exists wherever
/// `file` would on a kernel that has it (the same controller, and kept off the root cgroup too).
pub fn probe_file(dirs: &[PathBuf], anchor: &str, file: &str) -> FileProbe {
    match dirs.iter().find(|d| d.join(anchor).exists()) {
        Some(d) if d.join(file).exists() => FileProbe::Present(d.clone()),
        Some(d) => FileProbe::Absent(d.clone()),
        None => FileProbe::Nowhere,
    }
}
