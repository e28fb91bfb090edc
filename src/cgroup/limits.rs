//! The limits of `[limits]` as the agent cgroup enforces them: one table ([`table`]) of the
//! interface file each limit is written to and the controller it needs. It writes them, and it
//! says which are not enforced, in degraded mode, when a controller or the whole cgroup is missing.

use std::io::ErrorKind;

use super::{write_file, AgentCgroup, CgroupError, Controller, Unenforced};
use crate::profile::Limits;

/// A limit of `[limits]`: the controller it needs, the interface file it is written to, its
/// profile key, how to read it off the limits (the value written and the limit in words, for a
/// line saying it is not enforced) and how to take it out.
struct Row {
    controller: Controller,
    file: &'static str,
    key: &'static str,
    get: fn(&Limits) -> Option<(String, String)>,
    clear: fn(&mut Limits),
}

/// Every limit, in the order they are written.
const ROWS: [Row; 6] = [
    Row {
        controller: Controller::Memory,
        file: "memory.max",
        key: "limits.memory",
        get: |l| {
            l.memory
                .map(|m| (m.to_cgroup(), format!("memory limit {m}")))
        },
        clear: |l| l.memory = None,
    },
    Row {
        controller: Controller::Memory,
        file: "memory.high",
        key: "limits.memory_high",
        get: |l| {
            l.memory_high
                .map(|m| (m.to_cgroup(), format!("memory.high {m}")))
        },
        clear: |l| l.memory_high = None,
    },
    Row {
        controller: Controller::Memory,
        file: "memory.swap.max",
        key: "limits.swap",
        get: |l| l.swap.map(|m| (m.to_cgroup(), format!("swap limit {m}"))),
        clear: |l| l.swap = None,
    },
    Row {
        controller: Controller::Cpu,
        file: "cpu.max",
        key: "limits.cpu",
        get: |l| Some((l.cpu_max()?, format!("CPU limit {} CPUs", l.cpu?))),
        clear: |l| l.cpu = None,
    },
    Row {
        controller: Controller::Cpu,
        file: "cpu.weight",
        key: "limits.cpu_weight",
        get: |l| {
            l.cpu_weight
                .map(|w| (w.to_string(), format!("cpu.weight {w}")))
        },
        clear: |l| l.cpu_weight = None,
    },
    Row {
        controller: Controller::Pids,
        file: "pids.max",
        key: "limits.pids",
        get: |l| l.pids.map(|p| (p.to_string(), format!("tasks limit {p}"))),
        clear: |l| l.pids = None,
    },
];

/// One limit the profile sets.
struct Limit {
    row: &'static Row,
    /// What is written.
    value: String,
    /// In words: "memory limit 512 MiB".
    what: String,
}

impl Limit {
    /// In words with the file it goes to, unless the words name it already.
    fn with_file(&self) -> String {
        if self.what.starts_with(self.row.file) {
            self.what.clone()
        } else {
            format!("{} ({})", self.what, self.row.file)
        }
    }
}

/// The limits `l` sets, in the order they are written.
fn table(l: &Limits) -> Vec<Limit> {
    ROWS.iter()
        .filter_map(|row| {
            let (value, what) = (row.get)(l)?;
            Some(Limit { row, value, what })
        })
        .collect()
}

/// Takes the limits that need `c` out of `l`, returning their descriptions.
pub(super) fn drop_limits(l: &mut Limits, c: Controller) -> Vec<String> {
    let dropped: Vec<Limit> = table(l)
        .into_iter()
        .filter(|x| x.row.controller == c)
        .collect();
    for x in &dropped {
        (x.row.clear)(l);
    }
    dropped.iter().map(Limit::with_file).collect()
}

/// What a run without an agent cgroup leaves unenforced: the cgroup itself (`why` it could not be
/// had), and every limit.
pub fn without_cgroup(l: &Limits, why: String) -> Vec<Unenforced> {
    let mut out = vec![Unenforced {
        what: "the agent's cgroup (its leftover processes are neither tracked nor killed)".into(),
        why,
    }];
    out.extend(table(l).into_iter().map(|x| Unenforced {
        what: x.what,
        why: "no cgroup".into(),
    }));
    out
}

impl AgentCgroup {
    /// Writes the limits; a write that fails is an error, or with `degraded_ok` a line in
    /// `unenforced`.
    pub(super) fn apply_limits(
        &self,
        l: &Limits,
        degraded_ok: bool,
        unenforced: &mut Vec<Unenforced>,
    ) -> Result<(), CgroupError> {
        let mut writes: Vec<(&str, String, &str)> = Vec::new();
        for x in table(l) {
            let memory_max = x.row.file == "memory.max";
            writes.push((x.row.file, x.value, x.row.key));
            if memory_max {
                // An OOM kills the whole agent, not one random process in it.
                writes.push(("memory.oom.group", "1".into(), "limits.memory"));
            }
        }
        for (file, value, key) in writes {
            let path = self.dir.join(file);
            if let Err(source) = write_file(&path, &value) {
                let fix = match file {
                    "memory.swap.max" if source.kind() == ErrorKind::NotFound => {
                        "this kernel does not account swap: boot with swapaccount=1 (or a kernel with CONFIG_MEMCG_SWAP), or remove limits.swap".to_string()
                    }
                    _ => format!("check the value of {key}, or run with --allow-degraded"),
                };
                let err = CgroupError::Limit {
                    path,
                    value: value.clone(),
                    source,
                    fix,
                };
                if degraded_ok {
                    unenforced.push(Unenforced {
                        what: format!("{file} = {value}"),
                        why: err.to_string(),
                    });
                } else {
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Size;

    fn all() -> Limits {
        Limits {
            memory: Some(Size::Bytes(512 << 20)),
            memory_high: Some(Size::Bytes(256 << 20)),
            swap: Some(Size::Bytes(0)),
            cpu: Some(0.5),
            cpu_weight: Some(50),
            pids: Some(64),
            ..Limits::default()
        }
    }

    #[test]
    fn a_missing_controller_drops_its_limits_and_names_their_files() {
        let mut l = all();
        assert_eq!(
            drop_limits(&mut l, Controller::Memory),
            [
                "memory limit 512 MiB (memory.max)",
                "memory.high 256 MiB",
                "swap limit 0 B (memory.swap.max)"
            ]
        );
        assert_eq!(
            drop_limits(&mut l, Controller::Cpu),
            ["CPU limit 0.5 CPUs (cpu.max)", "cpu.weight 50"]
        );
        assert_eq!(
            (l.memory, l.memory_high, l.swap, l.cpu, l.cpu_weight),
            (None, None, None, None, None)
        );
        assert_eq!(l.pids, Some(64));
        assert_eq!(
            drop_limits(&mut l, Controller::Pids),
            ["tasks limit 64 (pids.max)"]
        );
        assert_eq!(l, Limits::default());
    }

    #[test]
    fn without_a_cgroup_every_limit_is_named_after_the_cgroup() {
        let lines = without_cgroup(&all(), "no cgroup2".into());
        let what: Vec<&str> = lines.iter().map(|u| u.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "the agent's cgroup (its leftover processes are neither tracked nor killed)",
                "memory limit 512 MiB",
                "memory.high 256 MiB",
                "swap limit 0 B",
                "CPU limit 0.5 CPUs",
                "cpu.weight 50",
                "tasks limit 64"
            ]
        );
        assert_eq!(lines[0].why, "no cgroup2");
        assert!(lines[1..].iter().all(|u| u.why == "no cgroup"));
    }
}
