//! Fuzzes the profile parser. Each input is used three ways:
//! - its bytes, when they are UTF-8, as a profile file;
//! - when that text is one line, as a `--set KEY=VALUE` applied to the built-in `small`;
//! - its bytes as a recipe for a profile built from the real sections and keys, with values
//!   drawn from the shapes the parser takes (numbers, sizes, durations, names, lists). Random text
//!   almost never gets past the key checks to the values; the recipe does, every time.
//!
//! Beyond "never panics", every profile that parses must survive its own rendering: what
//! `synwire-run profile NAME [--resolved]` prints (`Profile::to_toml_set_in`, `Profile::to_toml`)
//! is documented as a profile that can be saved and used, so it must parse again, to the same
//! profile, and the full rendering must render to the same text.

#![no_main]

use std::fmt::Write;

use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use synwire_run::profile::{self, search, Profile};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
        if !text.contains('\n') {
            set(text);
        }
    }
    if let Ok(text) = recipe(&mut Unstructured::new(data)) {
        check(&text);
    }
});

fn check(text: &str) {
    if let Ok(p) = profile::parse("fuzz", "input", text) {
        let mut source: toml::Table = toml::from_str(text).expect("it parsed as a profile");
        source.remove("extends");
        round_trip(text, &p, &source);
    }
}

/// The rendering of `first` parses back to `first` and renders to the same text; so does the
/// rendering of only the keys `source` (the TOML it was read from) sets.
fn round_trip(input: &str, first: &Profile, source: &toml::Table) {
    let only = first.to_toml_set_in(source);
    let back = profile::parse(&first.name, "printed", &only).unwrap_or_else(|e| {
        panic!("the keys a valid profile sets do not parse: {e}\n--- input:\n{input}\n--- printed:\n{only}")
    });
    assert_eq!(
        &same_user(back, first),
        first,
        "the keys a profile sets parse to a different profile\n--- input:\n{input}\n--- printed:\n{only}"
    );
    let rendered = first.to_toml();
    let second = profile::parse(&first.name, "rendered", &rendered).unwrap_or_else(|e| {
        panic!("the rendering of a valid profile does not parse: {e}\n--- input:\n{input}\n--- rendering:\n{rendered}")
    });
    let again = second.to_toml();
    assert_eq!(
        again, rendered,
        "the rendering changed on a second round\n--- input:\n{input}"
    );
    assert_eq!(
        &same_user(second, first),
        first,
        "the rendering parses to a different profile\n--- input:\n{input}\n--- rendering:\n{rendered}"
    );
}

/// `second` with the user name of `first`: the user is rendered as the uid it resolved to, so
/// the name as written is not kept.
fn same_user(second: Profile, first: &Profile) -> Profile {
    Profile {
        security: profile::privilege::Security {
            user_name: first.security.user_name.clone(),
            ..second.security
        },
        ..second
    }
}

/// `text` as one `--set`: a well-formed dotted path when it parses, and, applied to a built-in
/// profile, a result that round-trips like any other.
fn set(text: &str) {
    if let Ok((path, _)) = search::parse_set(text) {
        assert!(
            !path.is_empty() && path.iter().all(|p| !p.is_empty() && p.trim() == p),
            "parse_set({text:?}) gave the path {path:?}"
        );
    }
    if let Ok((p, _, source)) = search::load_chain_table(&[], "small", &[text.to_string()]) {
        round_trip(text, &p, &source);
    }
}

/// Every section of a profile with its keys (the top level first, unnamed).
const SECTIONS: &[(&str, &[&str])] = &[
    ("", &["description", "extends"]),
    (
        "limits",
        &[
            "memory",
            "memory_high",
            "swap",
            "cpu",
            "cpu_weight",
            "pids",
            "timeout",
            "oom_policy",
            "memory_bytes",
            "cpu_quota",
            "max_pids",
            "exec_timeout_secs",
        ],
    ),
    ("stop", &["signal", "grace"]),
    ("cgroup", &["required", "manager"]),
    (
        "namespaces",
        &[
            "user", "pid", "net", "mount", "uts", "ipc", "cgroup", "hostname",
        ],
    ),
    (
        "security",
        &["no_new_privileges", "capabilities", "user", "group"],
    ),
    ("env", &["clear", "pass", "set", "unset"]),
    ("rlimits", &["nofile", "core", "cpu", "fsize", "nproc"]),
    (
        "filesystem",
        &[
            "enforce",
            "read",
            "write",
            "bind_tcp",
            "connect_tcp",
            "scope",
            "view",
            "hide",
        ],
    ),
    ("seccomp", &["default", "action", "deny", "allow"]),
];

/// Units and words the parser knows, to follow a number or stand alone.
const WORDS: &[&str] = &[
    "",
    "b",
    "k",
    "KB",
    "M",
    "G",
    "T",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
    "Ki",
    "max",
    "ms",
    "s",
    "sec",
    "m",
    "min",
    "h",
    "d",
    "all",
    "SIGTERM",
    "auto",
    "systemd",
    "cgroupfs",
    "usr1",
    "KILL",
    "NET_BIND_SERVICE",
    "cap_kill",
    "root",
    "nobody",
    "best_effort",
    "required",
    "signal",
    "abstract_unix_socket",
    "kill",
    "continue",
    "/",
    "/tmp",
    "/usr",
    "PATH",
    "synwire",
    "errno",
    "log",
    "ptrace",
    "clone3",
    "iopl",
];

/// Numbers at the edges of the types and limits the parser converts between.
const EDGES: &[u64] = &[
    0,
    1,
    2,
    3,
    999,
    1000,
    1024,
    1 << 20,
    10000,
    10001,
    65535,
    65536,
    4_194_304,
    4_194_305,
    (1 << 53) + 1,
    u32::MAX as u64 - 1,
    u32::MAX as u64,
    i64::MAX as u64,
    i64::MAX as u64 + 2,
    u64::MAX,
];

fn recipe(u: &mut Unstructured) -> arbitrary::Result<String> {
    let mut out = String::new();
    for (section, keys) in SECTIONS {
        if !section.is_empty() {
            if !u.arbitrary::<bool>()? {
                continue;
            }
            writeln!(out, "[{section}]").unwrap();
        }
        for key in *keys {
            if u.ratio(1, 3)? {
                writeln!(out, "{key} = {}", value(u, 2)?).unwrap();
            }
        }
    }
    Ok(out)
}

/// One TOML value, of any type the keys take (and some they do not).
fn value(u: &mut Unstructured, depth: u32) -> arbitrary::Result<String> {
    Ok(match u.choose_index(if depth == 0 { 6 } else { 8 })? {
        0 => number(u)?,
        1 => {
            let f: f64 = u.arbitrary()?;
            toml::Value::Float(f).to_string()
        }
        2 => u.arbitrary::<bool>()?.to_string(),
        3 => quoted(&format!("{}{}", number(u)?, u.choose(WORDS)?)),
        4 => {
            // Several number-unit pairs, as in "1h30m".
            let mut s = String::new();
            for _ in 0..u.int_in_range(1..=3)? {
                s += &format!("{}{}", number(u)?, u.choose(WORDS)?);
            }
            quoted(&s)
        }
        5 => quoted(&format!("{}{}", u.choose(WORDS)?, u.arbitrary::<&str>()?)),
        6 => {
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0..=3)? {
                items.push(value(u, depth - 1)?);
            }
            format!("[{}]", items.join(", "))
        }
        _ => {
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0..=2)? {
                let name = u.arbitrary::<&str>()?;
                items.push(format!("{} = {}", quoted(name), value(u, depth - 1)?));
            }
            format!("{{ {} }}", items.join(", "))
        }
    })
}

/// A number as a profile might spell it: an edge, an integer, a fraction, possibly negative.
fn number(u: &mut Unstructured) -> arbitrary::Result<String> {
    let n = if u.arbitrary::<bool>()? {
        *u.choose(EDGES)?
    } else {
        u.arbitrary::<u64>()?
    };
    let mut s = n.to_string();
    if u.ratio(1, 3)? {
        write!(s, ".{}", u.int_in_range(0..=999_999_999u32)?).unwrap();
    }
    if u.ratio(1, 8)? {
        s.insert(0, '-');
    }
    Ok(s)
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
