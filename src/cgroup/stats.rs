//! Reading the agent cgroup's final statistics: cpu.stat, memory.peak, memory.events, pids.peak.
//! A value the kernel cannot give (memory.peak before 5.19, pids.peak before 6.1, a controller
//! that is not enabled) is None, never a guess.

use std::fs;
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use super::{AgentCgroup, Controller};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu_usage_us: Option<u64>,
    pub cpu_user_us: Option<u64>,
    pub cpu_system_us: Option<u64>,
    pub cpu_nr_throttled: Option<u64>,
    pub cpu_throttled_us: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_peak: Option<u64>,
    /// pids.events `max`: forks and clones refused at pids.max.
    pub pids_limit_hits: Option<u64>,
}

/// A flat-keyed events file (memory.events, cgroup.events) kept open. kernfs wakes a poll for
/// POLLPRI on it when its content changes; what counts as seen is what was last read through
/// that same descriptor, so it is always re-read through it: a descriptor that reads the file
/// anew by path (or never read it) polls as changed forever, a busy loop.
#[derive(Debug)]
pub struct EventsFile {
    file: fs::File,
    text: String,
}

impl EventsFile {
    /// Opens `path` and reads it once, which arms the POLLPRI notification.
    pub fn open(path: &Path) -> io::Result<EventsFile> {
        let mut e = EventsFile {
            file: fs::File::open(path)?,
            text: String::new(),
        };
        e.read()?;
        Ok(e)
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Reads the whole file again, from the start, through the same descriptor.
    pub fn read(&mut self) -> io::Result<&str> {
        self.file.rewind()?;
        self.text.clear();
        self.file.read_to_string(&mut self.text)?;
        Ok(&self.text)
    }

    /// The current value of `key`.
    pub fn read_key(&mut self, key: &str) -> Option<u64> {
        self.read().ok().and_then(|t| key_value(t, key))
    }
}

/// The value of `key` in a flat-keyed file ("usage_usec 1234\n…").
pub fn key_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_single(path: &Path) -> Option<u64> {
    crate::sys::read_file(path).ok()?.trim().parse().ok()
}

impl CgroupStats {
    pub(super) fn read(dir: &Path, cg: &AgentCgroup) -> CgroupStats {
        let mut s = CgroupStats::default();
        if let Ok(cpu) = crate::sys::read_file(dir.join("cpu.stat")) {
            s.cpu_usage_us = key_value(&cpu, "usage_usec");
            s.cpu_user_us = key_value(&cpu, "user_usec");
            s.cpu_system_us = key_value(&cpu, "system_usec");
            if cg.has(Controller::Cpu) {
                s.cpu_nr_throttled = key_value(&cpu, "nr_throttled");
                s.cpu_throttled_us = key_value(&cpu, "throttled_usec");
            }
        }
        if cg.has(Controller::Memory) {
            s.memory_peak_bytes = read_single(&dir.join("memory.peak"));
            s.oom_kills = crate::sys::read_file(dir.join("memory.events"))
                .ok()
                .and_then(|t| key_value(&t, "oom_kill"));
        }
        if cg.has(Controller::Pids) {
            s.pids_peak = read_single(&dir.join("pids.peak"));
            s.pids_limit_hits = crate::sys::read_file(dir.join("pids.events"))
                .ok()
                .and_then(|t| key_value(&t, "max"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_files() {
        let cpu = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 2\nthrottled_usec 77\n";
        assert_eq!(key_value(cpu, "usage_usec"), Some(1500));
        assert_eq!(key_value(cpu, "nr_throttled"), Some(2));
        assert_eq!(key_value(cpu, "throttled_usec"), Some(77));
        assert_eq!(key_value(cpu, "usage"), None);
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n";
        assert_eq!(key_value(events, "oom_kill"), Some(1));
        assert_eq!(key_value("populated 0\nfrozen 0\n", "populated"), Some(0));
    }
}
