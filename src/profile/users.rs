//! Users and groups, resolved from /etc/passwd and /etc/group (a static binary has no NSS), with
//! errors that name the key and the fix.

use toml::Spanned;

use super::{ProfileError, Source};

/// Looks `name` (or a number) up in a passwd- or group-style file: (id, primary gid if passwd).
fn lookup(file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok()))))
            .flatten()
    })
}

/// The highest uid or gid: 4294967295 is (uid_t) -1, which setresuid(2) reads as "unchanged".
const ID_MAX: u32 = u32::MAX - 1;

/// A user or group id, given as a number or a name; with the user's primary group when `file` is
/// /etc/passwd.
pub(super) fn id_or_name(
    src: &Source,
    v: &Spanned<toml::Value>,
    key: &str,
    file: &str,
) -> Result<(u32, Option<u32>), ProfileError> {
    let out_of_range = || src.bad(v, key, format!("out of range: ids go from 0 to {ID_MAX}"));
    match v.get_ref() {
        toml::Value::Integer(i) if (0..=ID_MAX as i64).contains(i) => {
            let id = *i as u32;
            let primary = if file == "/etc/passwd" {
                std::fs::read_to_string(file).ok().and_then(|t| {
                    t.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 4 && f[2] == id.to_string())
                            .then(|| f[3].parse().ok())
                            .flatten()
                    })
                })
            } else {
                None
            };
            Ok((id, primary))
        }
        toml::Value::String(s) => {
            if let Ok(id) = s.parse::<u32>() {
                return if id <= ID_MAX {
                    Ok((id, None))
                } else {
                    Err(out_of_range())
                };
            }
            lookup(file, s).ok_or_else(|| {
                src.bad(
                    v,
                    key,
                    format!(
                        "no such {} in {file}; give an existing name or a number",
                        if file == "/etc/passwd" {
                            "user"
                        } else {
                            "group"
                        }
                    ),
                )
            })
        }
        toml::Value::Integer(_) => Err(out_of_range()),
        _ => Err(src.bad(v, key, "expected a name or a number".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_that_means_unchanged_is_refused_however_it_is_written() {
        // "4294967295" was taken as a uid, and rendered as an integer that was refused (the fuzz
        // target's round trip reports it).
        for text in [
            "[security]\nuser = \"4294967295\"\n",
            "[security]\nuser = 4294967295\n",
            "[security]\ngroup = \"4294967295\"\n",
            "[security]\nuser = -1\n",
        ] {
            let e = super::super::parse("t", "t.toml", text)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("out of range: ids go from 0 to 4294967294"),
                "{text}: {e}"
            );
        }
        let p = super::super::parse("t", "t.toml", "[security]\nuser = \"4294967294\"\n").unwrap();
        assert_eq!(
            (p.security.user, p.security.group),
            (Some(ID_MAX), Some(ID_MAX))
        );
    }
}
