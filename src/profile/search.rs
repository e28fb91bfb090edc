//! Profiles as a product: where `--profile NAME` is looked for, `extends` chains, and `--set`.
//!
//! NAME is searched in `$SYNWIRE_PROFILE_PATH` (colon-separated), `$XDG_CONFIG_HOME/synwire/profiles`
//! (default ~/.config/synwire/profiles), /etc/synwire/profiles, then the built-ins, as NAME.toml.
//! Every file in an `extends` chain is first checked on its own, so an error names its own file,
//! line and column; the chain is then merged table by table (the child wins), `--set KEY=VALUE`
//! is applied by dotted path (each one checked alone, with the same messages), and the result is
//! checked once more as a whole.
//!
//! Above 400 lines only by its tests (the search order, `extends` and `--set`).

use std::path::{Path, PathBuf};

use super::{is_path, parse, Profile, ProfileError, BUILTINS};

/// A profile's text and where it came from.
#[derive(Debug, Clone)]
pub struct Found {
    pub name: String,
    /// A path, or "built-in".
    pub source: String,
    /// How errors name it: the path, or "built-in profile `x`".
    pub origin: String,
    pub text: String,
}

/// The directories searched for NAME.toml, in order, from this process's environment.
pub fn search_dirs() -> Vec<PathBuf> {
    search_dirs_from(|k| std::env::var_os(k))
}

/// The search path for an environment given as a lookup function.
pub fn search_dirs_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = var("SYNWIRE_PROFILE_PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let config = var("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(c) = config {
        dirs.push(c.join("synwire/profiles"));
    }
    dirs.push(PathBuf::from("/etc/synwire/profiles"));
    dirs
}

fn read(path: &Path, name: &str) -> Result<Found, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Found {
        name: name.to_string(),
        source: path.display().to_string(),
        origin: path.display().to_string(),
        text,
    })
}

/// Finds the profile `arg` names: a path, or a name along `dirs`, or a built-in.
pub fn find(dirs: &[PathBuf], arg: &str) -> Result<Found, ProfileError> {
    if is_path(arg) {
        return read(Path::new(arg), arg);
    }
    for dir in dirs {
        let path = dir.join(format!("{arg}.toml"));
        if path.is_file() {
            return read(&path, arg);
        }
    }
    let (_, text) =
        BUILTINS
            .iter()
            .find(|(n, _)| *n == arg)
            .ok_or_else(|| ProfileError::Unknown {
                name: arg.to_string(),
                builtins: super::builtin_names(),
                searched: dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    Ok(Found {
        name: arg.to_string(),
        source: "built-in".into(),
        origin: format!("built-in profile `{arg}`"),
        text: text.to_string(),
    })
}

/// Every profile that `--profile NAME` can find along `dirs`, with true where an earlier one of
/// the same name shadows it.
pub fn all(dirs: &[PathBuf]) -> Vec<(Found, bool)> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut push = |f: Found, out: &mut Vec<(Found, bool)>| {
        let shadowed = seen.contains(&f.name);
        seen.push(f.name.clone());
        out.push((f, shadowed));
    };
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for p in files {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Ok(f) = read(&p, &name) {
                push(f, &mut out);
            }
        }
    }
    for (name, text) in BUILTINS {
        push(
            Found {
                name: name.to_string(),
                source: "built-in".into(),
                origin: format!("built-in profile `{name}`"),
                text: text.to_string(),
            },
            &mut out,
        );
    }
    out
}

/// Merges `child` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, child: toml::Table) {
    for (k, v) in child {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(c)) => merge(b, c),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Loads `arg` with its `extends` chain and `--set` assignments, searching `dirs`; checks every
/// piece.
pub fn load_chain(
    dirs: &[PathBuf],
    arg: &str,
    sets: &[String],
) -> Result<(Profile, Vec<Found>), ProfileError> {
    load_chain_table(dirs, arg, sets).map(|(profile, chain, _)| (profile, chain))
}

/// As [`load_chain`], with the TOML the profile was read from: the chain merged, `--set`
/// applied, `extends` left out. Its keys are the ones the profile sets; everything else has its
/// default.
pub fn load_chain_table(
    dirs: &[PathBuf],
    arg: &str,
    sets: &[String],
) -> Result<(Profile, Vec<Found>, toml::Table), ProfileError> {
    let chain = chain(dirs, arg)?;
    let mut merged = toml::Table::new();
    for found in chain.iter().rev() {
        let mut table: toml::Table = toml::from_str(&found.text).expect("parsed above");
        table.remove("extends");
        merge(&mut merged, table);
    }
    apply_sets(&mut merged, sets)?;
    let text = toml::to_string(&merged).expect("a table serialises");
    let origin = if chain.len() > 1 || !sets.is_empty() {
        format!("the merged profile `{arg}`")
    } else {
        chain[0].origin.clone()
    };
    let profile = parse(
        arg,
        &origin,
        if chain.len() > 1 || !sets.is_empty() {
            &text
        } else {
            &chain[0].text
        },
    )?;
    Ok((profile, chain, merged))
}

/// The files of `arg`'s `extends` chain, `arg`'s own first; each checked on its own.
fn chain(dirs: &[PathBuf], arg: &str) -> Result<Vec<Found>, ProfileError> {
    let mut chain: Vec<Found> = Vec::new();
    let mut next = Some(arg.to_string());
    while let Some(name) = next.take() {
        if chain.iter().any(|f| f.name == name) {
            let mut names: Vec<&str> = chain.iter().map(|f| f.name.as_str()).collect();
            names.push(&name);
            return Err(ProfileError::Cycle {
                chain: names.join(" -> "),
            });
        }
        let found = find(dirs, &name)?;
        // Alone first: keys, types and ranges are reported against this file's own lines.
        parse(&found.name, &found.origin, &found.text)?;
        let table: toml::Table = toml::from_str(&found.text).expect("parsed above");
        next = table
            .get("extends")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        chain.push(found);
    }
    Ok(chain)
}

/// Applies `--set KEY=VALUE` assignments to `merged`, each checked on its own first.
fn apply_sets(merged: &mut toml::Table, sets: &[String]) -> Result<(), ProfileError> {
    for set in sets {
        let (path, value) = parse_set(set)?;
        // Alone first, so its error reads as the same check on the same key.
        let mut alone = toml::Table::new();
        insert(&mut alone, &path, value.clone());
        let text = toml::to_string(&alone).map_err(|e| set_error(set, e.to_string()))?;
        parse("--set", "--set", &text)
            .map_err(|e| set_error(set, strip_position(&e.to_string())))?;
        insert(merged, &path, value);
    }
    Ok(())
}

fn set_error(set: &str, message: String) -> ProfileError {
    ProfileError::Flag {
        flag: "--set",
        value: set.to_string(),
        message,
    }
}

/// "invalid profile --set:2:10: `limits.cpu` = …: msg" -> "`limits.cpu` = …: msg".
fn strip_position(e: &str) -> String {
    match e.strip_prefix("invalid profile --set:") {
        Some(rest) => rest
            .splitn(3, ':')
            .nth(2)
            .unwrap_or(rest)
            .trim()
            .to_string(),
        None => e.to_string(),
    }
}

/// "limits.memory_high=1G" -> (["limits", "memory_high"], "1G"). The value is TOML where it
/// parses as TOML (numbers, booleans, arrays, quoted strings), else a plain string.
pub fn parse_set(set: &str) -> Result<(Vec<String>, toml::Value), ProfileError> {
    let (key, value) = set
        .split_once('=')
        .ok_or_else(|| set_error(set, "expected KEY=VALUE, e.g. limits.memory_high=1G".into()))?;
    let path: Vec<String> = key
        .trim()
        .split('.')
        .map(|p| p.trim().to_string())
        .collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(set_error(
            set,
            "the key is a dotted path such as limits.memory".into(),
        ));
    }
    let value = value.trim();
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok((path, parsed))
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = entry.as_table_mut().expect("a table");
    }
    t.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn search_path_order() {
        let env = |k: &str| -> Option<OsString> {
            match k {
                "SYNWIRE_PROFILE_PATH" => Some("/a:/b::".into()),
                "XDG_CONFIG_HOME" => Some("/x".into()),
                "HOME" => Some("/home/u".into()),
                _ => None,
            }
        };
        let dirs = search_dirs_from(env);
        let want: Vec<PathBuf> = ["/a", "/b", "/x/synwire/profiles", "/etc/synwire/profiles"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(dirs, want);
        let home_only = search_dirs_from(|k| (k == "HOME").then(|| OsString::from("/home/u")));
        assert_eq!(
            home_only[0],
            PathBuf::from("/home/u/.config/synwire/profiles")
        );
    }

    #[test]
    fn earlier_directories_win_then_builtins() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        write(&a, "coder.toml", "description = \"from a\"\n");
        write(&b, "coder.toml", "description = \"from b\"\n");
        write(
            &b,
            "small.toml",
            "description = \"my small\"\n[limits]\npids = 5\n",
        );
        let dirs = vec![a.clone(), b.clone()];
        let (p, chain) = load_chain(&dirs, "coder", &[]).unwrap();
        assert_eq!(p.description.as_deref(), Some("from a"));
        assert_eq!(chain[0].source, a.join("coder.toml").display().to_string());
        // A file shadows the built-in of the same name.
        assert_eq!(
            load_chain(&dirs, "small", &[]).unwrap().0.limits.pids,
            Some(5)
        );
        assert_eq!(
            load_chain(&dirs, "medium", &[]).unwrap().1[0].source,
            "built-in"
        );
        let listed = all(&dirs);
        let coder: Vec<_> = listed
            .iter()
            .filter(|(f, _)| f.name == "coder")
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(coder, [false, true]);
        let e = load_chain(&dirs, "nope", &[]).unwrap_err().to_string();
        assert!(
            e.contains("no nope.toml in") && e.contains(&a.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn extends_merges_key_by_key_and_the_child_wins() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().to_path_buf();
        write(
            &d,
            "base.toml",
            "extends = \"small\"\n[limits]\ntimeout = \"1h\"\ncpu = 2\n",
        );
        write(
            &d,
            "child.toml",
            "extends = \"base\"\ndescription = \"child\"\n[limits]\ncpu = 0.25\n",
        );
        let (p, chain) = load_chain(std::slice::from_ref(&d), "child", &[]).unwrap();
        assert_eq!(
            chain.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["child", "base", "small"]
        );
        assert_eq!(p.description.as_deref(), Some("child"));
        assert_eq!(p.limits.cpu, Some(0.25));
        assert_eq!(p.limits.timeout, Some(std::time::Duration::from_secs(3600)));
        assert_eq!(
            p.limits.memory,
            Some(super::super::Size::Bytes(512 << 20)),
            "from small"
        );
        assert_eq!(p.limits.pids, Some(64));
    }

    #[test]
    fn an_extends_cycle_names_the_chain() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().to_path_buf();
        write(&d, "a.toml", "extends = \"b\"\n");
        write(&d, "b.toml", "extends = \"c\"\n");
        write(&d, "c.toml", "extends = \"a\"\n");
        let e = load_chain(&[d], "a", &[]).unwrap_err().to_string();
        assert!(e.contains("a -> b -> c -> a"), "{e}");
    }

    #[test]
    fn an_error_in_a_parent_names_the_parents_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().to_path_buf();
        write(&d, "base.toml", "\n[limits]\ncpu_weight = 0\n");
        write(&d, "child.toml", "extends = \"base\"\n");
        let e = load_chain(std::slice::from_ref(&d), "child", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{}:3:14", d.join("base.toml").display())),
            "{e}"
        );
    }

    #[test]
    fn set_overrides_by_dotted_path_with_the_same_checks() {
        let sets = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (p, _) = load_chain(
            &[],
            "small",
            &sets(&[
                "limits.memory_high=448MiB",
                "limits.pids=10",
                "namespaces.pid=true",
                "stop.signal=SIGINT",
            ]),
        )
        .unwrap();
        assert_eq!(
            p.limits.memory_high,
            Some(super::super::Size::Bytes(448 << 20))
        );
        assert_eq!(p.limits.pids, Some(10));
        assert!(p.namespaces.pid);
        assert_eq!(p.stop.signal, libc::SIGINT);
        for (bad, needle) in [
            ("limits.cpu_weight=0", "`limits.cpu_weight`"),
            ("limits.memroy=1G", "unknown key `limits.memroy`"),
            ("limits.pids=many", "`limits.pids`"),
            ("nokey", "KEY=VALUE"),
            ("limits..pids=1", "dotted path"),
        ] {
            let e = load_chain(&[], "small", &sets(&[bad]))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("invalid --set `{bad}`")) && e.contains(needle),
                "{bad}: {e}"
            );
        }
        // A --set can break a cross-key rule only the merged profile shows.
        let e = load_chain(&[], "small", &sets(&["limits.memory_high=1GiB"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("merged profile `small`") && e.contains("limits.memory_high"),
            "{e}"
        );
    }
}
