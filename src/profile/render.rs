//! A profile as TOML (`synwire-run profile NAME`), in the format a profile file takes, so the
//! output can be saved and edited as a profile of its own: either only the keys the profile's own
//! text sets ([`Profile::to_toml_set_in`]) or every key with its default ([`Profile::to_toml`]);
//! each value as a run reads it (sizes in their unit, durations in seconds, users as uids).

use std::time::Duration;

use toml::{Table, Value};

use super::env::EnvSpec;
use super::privilege::{Enforce, Filesystem, Rlimit, Rlimits, Security};
use super::seccomp::Seccomp;
use super::{signal_name, Limits, Namespaces, Profile, Size, Stop};

fn size(s: Size) -> Value {
    match s {
        Size::Max => Value::String("max".into()),
        Size::Bytes(b) => {
            for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
                if b != 0 && b % (1u64 << shift) == 0 {
                    return Value::String(format!("{}{unit}", b >> shift));
                }
            }
            // TOML integers stop at i64::MAX; a size string takes any u64.
            i64::try_from(b).map_or_else(|_| Value::String(b.to_string()), Value::Integer)
        }
    }
}

/// Whole seconds as "90s", whole milliseconds as "1500ms", anything finer as exact decimal
/// seconds ("0.0001s"): never rounded, or a short timeout would render as a refused "0s".
fn duration(d: Duration) -> Value {
    let nanos = d.subsec_nanos();
    Value::String(if nanos == 0 {
        format!("{}s", d.as_secs())
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        let fraction = format!("{nanos:09}");
        format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
    })
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// The synwire library's names for `[limits]` keys, each setting the same value as its key.
const LIMIT_ALIASES: &[(&str, &str)] = &[
    ("memory", "memory_bytes"),
    ("cpu", "cpu_quota"),
    ("pids", "max_pids"),
    ("timeout", "exec_timeout_secs"),
];

/// True when `source`, the text of section `section`, sets `key`: itself, by its alias, or (the
/// group) through the user, whose group depends on how the user was written ("1000", 1000 or a
/// name) while the user is printed as a bare uid.
fn sets(section: &str, source: &Table, key: &str) -> bool {
    source.contains_key(key)
        || (section == "limits"
            && LIMIT_ALIASES
                .iter()
                .any(|(k, alias)| *k == key && source.contains_key(*alias)))
        || (section == "security" && key == "group" && source.contains_key("user"))
}

impl Profile {
    /// Every key, the defaults included: the profile as a run resolves it.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.to_table()).expect("a table serialises")
    }

    /// Only the keys `source` sets, `source` being the profile's own TOML (its file, merged with
    /// its `extends` chain and `--set`, as [`super::search::load_chain_table`] gives it): the
    /// sections it has (even empty) and, in them, its keys; a whole value for a key whose value
    /// is a table (`env.set`). It parses back to the same profile, since every key left out has
    /// its default there.
    pub fn to_toml_set_in(&self, source: &Table) -> String {
        let only: Table = self
            .to_table()
            .into_iter()
            .filter_map(|(name, value)| {
                let src = source.get(&name)?;
                Some(match (value, src) {
                    (Value::Table(section), Value::Table(src)) => {
                        let keys = section
                            .into_iter()
                            .filter(|(key, _)| sets(&name, src, key))
                            .collect();
                        (name, Value::Table(keys))
                    }
                    (value, _) => (name, value),
                })
            })
            .collect();
        toml::to_string(&only).expect("a table serialises")
    }

    fn to_table(&self) -> Table {
        let mut root = Table::new();
        if let Some(d) = &self.description {
            root.insert("description".into(), Value::String(d.clone()));
        }
        let sections = [
            ("limits", limits(&self.limits)),
            ("stop", stop(&self.stop)),
            ("cgroup", self.cgroup_table()),
            ("namespaces", namespaces(&self.namespaces)),
            ("security", security(&self.security)),
            ("env", env(&self.env)),
            ("rlimits", rlimits(&self.rlimits)),
            ("seccomp", seccomp(&self.seccomp)),
            ("network", network(&self.network)),
        ];
        for (name, t) in sections {
            root.insert(name.into(), Value::Table(t));
        }
        if let Some(fs) = &self.filesystem {
            root.insert("filesystem".into(), Value::Table(filesystem(fs)));
        }
        root
    }

    fn cgroup_table(&self) -> Table {
        let mut cgroup = Table::new();
        cgroup.insert("required".into(), Value::Boolean(self.cgroup_required));
        cgroup.insert(
            "manager".into(),
            Value::String(self.cgroup_manager.name().into()),
        );
        cgroup
    }
}

/// Inserts `k` = `v` where there is a value.
fn put(t: &mut Table, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        t.insert(k.into(), v);
    }
}

fn limits(l: &Limits) -> Table {
    let mut limits = Table::new();
    put(&mut limits, "memory", l.memory.map(size));
    put(&mut limits, "memory_high", l.memory_high.map(size));
    put(&mut limits, "swap", l.swap.map(size));
    put(&mut limits, "cpu", l.cpu.map(Value::Float));
    put(
        &mut limits,
        "cpu_weight",
        l.cpu_weight.map(|w| Value::Integer(w.into())),
    );
    put(
        &mut limits,
        "pids",
        l.pids.map(|p| Value::Integer(p as i64)),
    );
    put(&mut limits, "timeout", l.timeout.map(duration));
    limits.insert(
        "oom_policy".into(),
        Value::String(l.oom_policy.name().into()),
    );
    limits
}

fn stop(s: &Stop) -> Table {
    let mut stop = Table::new();
    stop.insert("signal".into(), Value::String(signal_name(s.signal)));
    stop.insert("grace".into(), duration(s.grace));
    stop
}

fn namespaces(n: &Namespaces) -> Table {
    let mut ns = Table::new();
    for k in &crate::ns::KINDS {
        ns.insert(k.name.into(), Value::Boolean(k.in_set(n)));
    }
    ns.insert("hostname".into(), Value::String(n.hostname.clone()));
    ns
}

fn security(s: &Security) -> Table {
    let mut sec = Table::new();
    sec.insert(
        "no_new_privileges".into(),
        Value::Boolean(s.no_new_privileges),
    );
    if let Some(mask) = s.capabilities {
        let names = super::privilege::CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| Value::String(n.to_string()))
            .collect();
        sec.insert("capabilities".into(), Value::Array(names));
    }
    put(&mut sec, "user", s.user.map(|u| Value::Integer(u.into())));
    put(&mut sec, "group", s.group.map(|g| Value::Integer(g.into())));
    sec
}

fn env(e: &EnvSpec) -> Table {
    let mut env = Table::new();
    env.insert("clear".into(), Value::Boolean(e.clear));
    env.insert("pass".into(), strings(&e.pass));
    let set: Table = e
        .set
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    env.insert("set".into(), Value::Table(set));
    env.insert("unset".into(), strings(&e.unset));
    env
}

fn rlimits(r: &Rlimits) -> Table {
    let mut rl = Table::new();
    for &(which, v) in &r.limits {
        let value = match which {
            Rlimit::Cpu => Value::String(format!("{v}s")),
            Rlimit::Fsize | Rlimit::Core if v == libc::RLIM_INFINITY => Value::String("max".into()),
            Rlimit::Fsize | Rlimit::Core => size(Size::Bytes(v)),
            _ => Value::Integer(v as i64),
        };
        rl.insert(which.key().trim_start_matches("rlimits.").into(), value);
    }
    rl
}

fn seccomp(s: &Seccomp) -> Table {
    let mut t = Table::new();
    t.insert("default".into(), Value::Boolean(s.default));
    t.insert("action".into(), Value::String(s.action.name().into()));
    t.insert("deny".into(), strings(&s.deny));
    t.insert("allow".into(), strings(&s.allow));
    t
}

fn network(n: &super::network::Network) -> Table {
    let mut t = Table::new();
    t.insert("mode".into(), Value::String(n.mode.name().into()));
    t.insert("allow".into(), strings(&n.allow));
    t
}

fn filesystem(fs: &Filesystem) -> Table {
    let mut t = Table::new();
    let enforce = match fs.enforce {
        Enforce::BestEffort => "best_effort",
        Enforce::Required => "required",
    };
    t.insert("enforce".into(), Value::String(enforce.into()));
    t.insert("read".into(), strings(&fs.read));
    t.insert("write".into(), strings(&fs.write));
    for (key, ports) in [("bind_tcp", &fs.bind_tcp), ("connect_tcp", &fs.connect_tcp)] {
        if let Some(ports) = ports {
            let list = ports.iter().map(|&p| Value::Integer(p.into())).collect();
            t.insert(key.into(), Value::Array(list));
        }
    }
    let scope = fs
        .scope
        .names()
        .into_iter()
        .map(|n| Value::String(n.into()));
    t.insert("scope".into(), Value::Array(scope.collect()));
    t.insert("view".into(), Value::String(fs.view.name().into()));
    t.insert("hide".into(), strings(&fs.hide));
    t
}

#[cfg(test)]
mod tests {
    use super::super::{load, parse, search, Overrides, BUILTINS};
    use toml::Table;

    /// The dotted keys a TOML text sets: each section, and each key in it.
    fn keys(table: &Table) -> Vec<String> {
        let mut out = Vec::new();
        for (name, value) in table {
            out.push(name.clone());
            if let Some(section) = value.as_table() {
                out.extend(section.keys().map(|k| format!("{name}.{k}")));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_builtin_prints_just_the_keys_its_toml_sets_and_parses_back_to_itself() {
        for (name, text) in BUILTINS {
            let (p, _, source) = search::load_chain_table(&[], name, &[]).unwrap();
            let mut own: Table = toml::from_str(text).unwrap();
            // A built-in that extends another (agent-net) sets its own keys and its base's.
            if let Some(base) = own.remove("extends") {
                let base = base.as_str().unwrap();
                let (_, _, mut merged) = search::load_chain_table(&[], base, &[]).unwrap();
                for (section, value) in std::mem::take(&mut own) {
                    match (merged.get_mut(&section), value) {
                        (Some(toml::Value::Table(m)), toml::Value::Table(t)) => m.extend(t),
                        (_, value) => {
                            merged.insert(section, value);
                        }
                    }
                }
                own = merged;
            }
            assert_eq!(source, own, "{name}: the source is the built-in's TOML");
            let printed = p.to_toml_set_in(&source);
            let back = parse(name, "printed", &printed)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{printed}"));
            assert_eq!(back, p, "{name}:\n{printed}");
            let printed_keys = keys(&toml::from_str(&printed).unwrap());
            assert_eq!(printed_keys, keys(&own), "{name}:\n{printed}");
        }
    }

    #[test]
    fn only_the_keys_set_are_printed_under_their_own_names_aliases_included() {
        let text = "[limits]\nmemory_bytes = 536870912\nmax_pids = 5\ncpu_quota = 1\nexec_timeout_secs = 90\n\n[env.set]\nA = \"1\"\n\n[filesystem]\n";
        let p = parse("t", "t", text).unwrap();
        let printed = p.to_toml_set_in(&toml::from_str(text).unwrap());
        assert_eq!(
            printed,
            "[limits]\nmemory = \"512MiB\"\ncpu = 1.0\npids = 5\ntimeout = \"90s\"\n\n[env.set]\nA = \"1\"\n\n[filesystem]\n"
        );
        assert_eq!(parse("t", "printed", &printed).unwrap(), p);
    }

    #[test]
    fn a_user_is_printed_with_the_group_it_implies() {
        // "4321" as a string takes gid 4321; the printed uid 4321 alone would take its passwd
        // entry's primary group, if it has one.
        let text = "[security]\nuser = \"4321\"\n";
        let p = parse("t", "t", text).unwrap();
        let printed = p.to_toml_set_in(&toml::from_str(text).unwrap());
        assert_eq!(printed, "[security]\nuser = 4321\ngroup = 4321\n");
        assert_eq!(
            parse("t", "printed", &printed).unwrap().security.group,
            Some(4321)
        );
    }

    #[test]
    fn a_chain_and_its_sets_print_every_key_any_of_them_sets_and_no_other() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("coder.toml"),
            "extends = \"default\"\n[limits]\ntimeout = \"30m\"\n[namespaces]\npid = true\n",
        )
        .unwrap();
        let (p, _, source) = search::load_chain_table(
            &[t.path().to_path_buf()],
            "coder",
            &["limits.pids=7".to_string()],
        )
        .unwrap();
        let printed = p.to_toml_set_in(&source);
        let table: Table = toml::from_str(&printed).unwrap();
        assert_eq!(
            keys(&table),
            [
                "cgroup",
                "cgroup.required",
                "description",
                "limits",
                "limits.pids",
                "limits.timeout",
                "namespaces",
                "namespaces.pid",
                "stop",
                "stop.grace",
                "stop.signal"
            ],
            "{printed}"
        );
        assert_eq!(parse("coder", "printed", &printed).unwrap(), p);
    }

    #[test]
    fn every_builtin_round_trips_through_its_rendering() {
        for (name, _) in BUILTINS {
            let p = load(name, &Overrides::default()).unwrap();
            let text = p.to_toml();
            let back =
                parse(name, "rendered", &text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert_eq!(back, p, "{name}:\n{text}");
        }
    }

    #[test]
    fn durations_finer_than_a_millisecond_render_exactly() {
        // Found by fuzz/run: "0.0001s" rendered as "0s", which a timeout refuses, and
        // "2.735552885ms" as "2735ms".
        for (timeout, rendered) in [
            ("0.0001s", "0.0001s"),
            ("2.735552885ms", "0.002735552s"),
            ("1.5s", "1500ms"),
            ("90s", "90s"),
        ] {
            let p = parse("t", "t", &format!("[limits]\ntimeout = \"{timeout}\"\n")).unwrap();
            let text = p.to_toml();
            assert!(
                text.contains(&format!("timeout = \"{rendered}\"")),
                "{timeout}: {text}"
            );
            assert_eq!(parse("t", "rendered", &text).unwrap(), p, "{timeout}");
        }
    }

    #[test]
    fn a_size_beyond_a_toml_integer_renders_as_a_string() {
        // 2^63 + 1 bytes rendered as a negative integer, which does not parse (the fuzz target's
        // round trip reports it).
        let p = parse("t", "t", "[limits]\nmemory = \"9223372036854775809\"\n").unwrap();
        let text = p.to_toml();
        assert!(text.contains("memory = \"9223372036854775809\""), "{text}");
        assert_eq!(parse("t", "rendered", &text).unwrap(), p);
    }

    #[test]
    fn a_rendering_reads_like_a_profile() {
        let text = load("small", &Overrides::default()).unwrap().to_toml();
        assert!(
            text.contains("[limits]\nmemory = \"512MiB\"\ncpu = 0.5\npids = 64\n"),
            "{text}"
        );
        assert!(
            text.contains("signal = \"SIGTERM\"") && text.contains("grace = \"10s\""),
            "{text}"
        );
    }
}
