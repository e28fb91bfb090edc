//! Controllers: which ones a cgroup offers its children ([`Available`], read the same way by a
//! run and by `synwire-run check`), which ones the agent's limits need, and enabling them in a
//! cgroup's `cgroup.subtree_control`.

use std::path::Path;

use super::limits::drop_limits;
use super::place::Layout;
use super::{io_err, mkdir, tokens, write_file, CgroupError, Hierarchy, Unenforced};
use crate::profile::Limits;

/// A controller with the limits that need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
}

impl Controller {
    /// Every controller synwire-run uses, in the order they are checked.
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }

    /// Whether a limit of `l` needs this controller.
    fn needed_by(self, l: &Limits) -> bool {
        match self {
            Controller::Memory => l.needs_memory(),
            Controller::Cpu => l.needs_cpu(),
            Controller::Pids => l.needs_pids(),
        }
    }
}

/// The controllers a cgroup offers its children: its `cgroup.controllers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Available(Vec<String>);

impl Available {
    pub fn read(dir: &Path) -> Result<Available, CgroupError> {
        tokens(&dir.join("cgroup.controllers")).map(Available)
    }

    /// Whether the controller named `name` is offered.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|t| t == name)
    }

    /// The list for a message: the names, or "nothing".
    fn list(&self) -> String {
        if self.0.is_empty() {
            "nothing".into()
        } else {
            self.0.join(" ")
        }
    }
}

/// The controllers an agent cgroup gets, decided from what its parent offers and what its
/// limits need, before anything is created.
#[derive(Debug)]
pub(super) struct Choice {
    /// Each controller, with whether a limit needs it (then enabling it may not fail quietly).
    pub needed: Vec<(Controller, bool)>,
    /// To be enabled on every level: memory and pids wherever they are offered (they give the
    /// memory peak, OOM events and the tasks peak), cpu only when limited (it costs scheduling).
    pub enable: Vec<Controller>,
    /// The limits that stay: in degraded mode, those whose controller is missing are dropped.
    pub limits: Limits,
    pub unenforced: Vec<Unenforced>,
}

impl Choice {
    /// Chooses for `limits` below `parent`. A controller a limit needs but the parent lacks is
    /// an error, or with `degraded_ok` its limits are dropped and named in `unenforced`. `fail`
    /// makes the error from the missing names and the parent's list.
    pub fn new(
        available: &Available,
        limits: &Limits,
        parent: &Path,
        degraded_ok: bool,
        fail: impl FnOnce(String, String) -> CgroupError,
    ) -> Result<Choice, CgroupError> {
        let needed: Vec<(Controller, bool)> = Controller::ALL
            .iter()
            .map(|&c| (c, c.needed_by(limits)))
            .collect();
        let has = |c: Controller| available.has(c.name());
        let missing: Vec<Controller> = needed
            .iter()
            .filter(|(c, n)| *n && !has(*c))
            .map(|(c, _)| *c)
            .collect();
        let mut limits = limits.clone();
        let mut unenforced = Vec::new();
        if !missing.is_empty() && !degraded_ok {
            let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
            return Err(fail(names.join(" "), available.list()));
        }
        for c in missing {
            let why = format!(
                "the {} controller is not available in {}",
                c.name(),
                parent.display()
            );
            for what in drop_limits(&mut limits, c) {
                let why = why.clone();
                unenforced.push(Unenforced { what, why });
            }
        }
        let enable = needed
            .iter()
            .filter(|(c, n)| has(*c) && (*n || *c != Controller::Cpu))
            .map(|(c, _)| *c)
            .collect();
        Ok(Choice {
            needed,
            enable,
            limits,
            unenforced,
        })
    }

    /// Whether a limit needs `c`.
    pub fn required(&self, c: Controller) -> bool {
        self.needed.iter().any(|(n, need)| *n == c && *need)
    }

    /// Enables the chosen controllers on every level of `layout`, from the parent down (creating
    /// the levels below it); returns those the agents directory passes on to its children.
    pub fn enable_down(
        &mut self,
        h: &Hierarchy,
        layout: &Layout,
        degraded_ok: bool,
    ) -> Result<Vec<Controller>, CgroupError> {
        for (i, level) in layout.levels.iter().enumerate() {
            let dir = h.path(level);
            if i > 0 {
                mkdir(&dir)?;
            }
            self.enable_in(&dir, degraded_ok)?;
        }
        let enabled = tokens(&h.path(layout.agents()).join("cgroup.subtree_control"))?;
        Ok(self
            .enable
            .iter()
            .copied()
            .filter(|c| enabled.iter().any(|t| t == c.name()))
            .collect())
    }

    /// Enables the chosen controllers in `dir`. One a limit needs that cannot be enabled is an
    /// error, or with `degraded_ok` its limits are dropped; one only accounted is skipped.
    fn enable_in(&mut self, dir: &Path, degraded_ok: bool) -> Result<(), CgroupError> {
        for c in self.enable.clone() {
            match enable(dir, c) {
                Ok(()) => {}
                Err(e) if !self.required(c) => {
                    tracing::debug!("not accounting {}: {e}", c.name());
                }
                Err(e) if degraded_ok => {
                    let why = e.to_string();
                    for what in drop_limits(&mut self.limits, c) {
                        let why = why.clone();
                        self.unenforced.push(Unenforced { what, why });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Enables `c` in `dir`'s cgroup.subtree_control unless it is already there.
fn enable(dir: &Path, c: Controller) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    if tokens(&control)?.iter().any(|t| t == c.name()) {
        return Ok(());
    }
    write_file(&control, &format!("+{}", c.name())).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => CgroupError::InternalProcesses {
            controller: c.name().into(),
            path: dir.to_path_buf(),
        },
        _ => io_err("write", &control)(e),
    })
}
