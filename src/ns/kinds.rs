//! The namespaces a profile can ask for: one table ([`KINDS`]) of their names and clone flags,
//! and the set an agent gets ([`Namespaces`]).

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;

/// A namespace a profile can ask for.
pub struct Kind {
    /// Its name in `[namespaces]`, `--unshare` and messages.
    pub name: &'static str,
    /// The flag clone gets for it; 0 for the cgroup namespace, which the child unshares once it
    /// is in its cgroup, so that its cgroup is the namespace's root.
    pub clone_flag: u64,
    get: fn(&Namespaces) -> bool,
    set: fn(&mut Namespaces, bool),
}

/// Every namespace, in the order they are listed (the user namespace first: inside it, the
/// others need no privilege).
pub const KINDS: [Kind; 7] = [
    Kind {
        name: "user",
        clone_flag: CLONE_NEWUSER,
        get: |n| n.user,
        set: |n, on| n.user = on,
    },
    Kind {
        name: "pid",
        clone_flag: CLONE_NEWPID,
        get: |n| n.pid,
        set: |n, on| n.pid = on,
    },
    Kind {
        name: "net",
        clone_flag: CLONE_NEWNET,
        get: |n| n.net,
        set: |n, on| n.net = on,
    },
    Kind {
        name: "mount",
        clone_flag: CLONE_NEWNS,
        get: |n| n.mount,
        set: |n, on| n.mount = on,
    },
    Kind {
        name: "uts",
        clone_flag: CLONE_NEWUTS,
        get: |n| n.uts,
        set: |n, on| n.uts = on,
    },
    Kind {
        name: "ipc",
        clone_flag: CLONE_NEWIPC,
        get: |n| n.ipc,
        set: |n, on| n.ipc = on,
    },
    Kind {
        name: "cgroup",
        clone_flag: 0,
        get: |n| n.cgroup,
        set: |n, on| n.cgroup = on,
    },
];

/// The names of [`KINDS`], in their order.
pub const NAMES: [&str; 7] = {
    let mut names = [""; 7];
    let mut i = 0;
    while i < KINDS.len() {
        names[i] = KINDS[i].name;
        i += 1;
    }
    names
};

/// `[namespaces]`: which namespaces the agent gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    pub user: bool,
    pub pid: bool,
    pub net: bool,
    pub mount: bool,
    pub uts: bool,
    pub ipc: bool,
    pub cgroup: bool,
    /// The hostname inside a new uts namespace.
    pub hostname: String,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            user: false,
            pid: false,
            net: false,
            mount: false,
            uts: false,
            ipc: false,
            cgroup: false,
            hostname: "synwire".into(),
        }
    }
}

impl Kind {
    /// Whether `n` asks for this namespace.
    pub fn in_set(&self, n: &Namespaces) -> bool {
        (self.get)(n)
    }

    /// Asks for it in `n`, or not.
    pub fn set_in(&self, n: &mut Namespaces, on: bool) {
        (self.set)(n, on)
    }
}

impl Namespaces {
    /// True when any namespace is asked for.
    pub fn any(&self) -> bool {
        KINDS.iter().any(|k| k.in_set(self))
    }

    /// The names of the namespaces asked for.
    pub fn names(&self) -> Vec<&'static str> {
        KINDS
            .iter()
            .filter(|k| k.in_set(self))
            .map(|k| k.name)
            .collect()
    }

    /// The flags clone creates them with (the cgroup namespace's excepted, see [`Kind`]).
    pub fn clone_flags(&self) -> u64 {
        KINDS
            .iter()
            .filter(|k| k.in_set(self))
            .fold(0, |flags, k| flags | k.clone_flag)
    }

    /// Adds `--unshare LIST`: comma-separated names, or `all`. The error says what is wrong with
    /// a name.
    pub fn unshare(&mut self, list: &str) -> Result<(), String> {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                KINDS.iter().for_each(|k| k.set_in(self, true));
                continue;
            }
            let kind = KINDS.iter().find(|k| k.name == name).ok_or_else(|| {
                format!(
                    "`{name}` is not a namespace; use a comma-separated list of {} or `all`",
                    NAMES.join(", ")
                )
            })?;
            kind.set_in(self, true);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_its_own_field() {
        for k in &KINDS {
            let mut n = Namespaces::default();
            k.set_in(&mut n, true);
            assert_eq!(n.names(), [k.name]);
            assert!(k.in_set(&n) && n.any());
            n.unshare(k.name).unwrap();
            assert_eq!(n.names(), [k.name]);
        }
        let mut all = Namespaces::default();
        all.unshare("all").unwrap();
        assert_eq!(all.names(), NAMES);
        assert!(all.unshare("pid,netw").unwrap_err().contains("`netw`"));
    }
}
