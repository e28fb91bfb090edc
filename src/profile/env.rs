//! `[env]`: which of the caller's variables the agent gets, and which are set or unset.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::privilege::strings;
use super::{ProfileError, Source, Val};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnv {
    clear: Val,
    pass: Val,
    set: Val,
    unset: Val,
}

/// `[env]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSpec {
    pub clear: bool,
    pub pass: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub unset: Vec<String>,
}

impl Default for EnvSpec {
    fn default() -> Self {
        EnvSpec {
            clear: false,
            pass: ["PATH", "HOME", "LANG", "TERM"].map(String::from).to_vec(),
            set: BTreeMap::new(),
            unset: Vec::new(),
        }
    }
}

/// systemd's protocol variables, kept by `clear = true` (unless listed in `unset`): readiness
/// notification and socket activation must reach the agent.
pub const SYSTEMD_VARS: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_PID",
];

impl EnvSpec {
    /// The agent's environment from the caller's.
    pub fn apply<K, V>(&self, caller: Vec<(K, V)>) -> Vec<(K, V)>
    where
        K: AsRef<std::ffi::OsStr> + From<String>,
        V: From<String>,
    {
        let mut env: Vec<(K, V)> = caller
            .into_iter()
            .filter(|(k, _)| {
                let k = k.as_ref().to_string_lossy();
                let passed =
                    self.pass.iter().any(|p| *p == k) || SYSTEMD_VARS.contains(&k.as_ref());
                (!self.clear || passed) && !self.unset.iter().any(|u| *u == k)
            })
            .collect();
        for (k, v) in &self.set {
            env.retain(|(ek, _)| ek.as_ref() != std::ffi::OsStr::new(k));
            env.push((K::from(k.clone()), V::from(v.clone())));
        }
        env
    }
}

pub(super) fn env(src: &Source, raw: &RawEnv) -> Result<EnvSpec, ProfileError> {
    let mut e = EnvSpec::default();
    if let Some(v) = &raw.clear {
        e.clear = src.boolean(v, "env.clear")?;
    }
    if let Some(v) = &raw.pass {
        e.pass = strings(src, v, "env.pass")?;
    }
    if let Some(v) = &raw.unset {
        e.unset = strings(src, v, "env.unset")?;
    }
    if let Some(v) = &raw.set {
        let table = v
            .get_ref()
            .as_table()
            .ok_or_else(|| src.bad(v, "env.set", "expected a table of NAME = \"value\"".into()))?;
        for (k, val) in table {
            let val = val.as_str().ok_or_else(|| {
                src.bad(v, &format!("env.set.{k}"), "expected a string value".into())
            })?;
            if k.is_empty() || k.contains('=') || k.contains('\0') || val.contains('\0') {
                return Err(src.bad(
                    v,
                    &format!("env.set.{k}"),
                    "a variable name cannot be empty or hold `=`; neither may hold a NUL".into(),
                ));
            }
            e.set.insert(k.clone(), val.to_string());
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_clear_pass_set_unset() {
        let spec = EnvSpec {
            clear: true,
            set: [("MODE".to_string(), "sandbox".to_string())].into(),
            ..Default::default()
        };
        let caller: Vec<(String, String)> = vec![
            ("PATH".into(), "/bin".into()),
            ("SECRET".into(), "x".into()),
            ("TERM".into(), "xterm".into()),
        ];
        let out = spec.apply(caller.clone());
        assert_eq!(
            out,
            [("PATH", "/bin"), ("TERM", "xterm"), ("MODE", "sandbox")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let spec = EnvSpec {
            unset: vec!["SECRET".into()],
            ..Default::default()
        };
        let out = spec.apply(caller);
        assert!(out.iter().all(|(k, _)| k != "SECRET") && out.len() == 2);
        // systemd's protocol variables survive clear = true, unless unset.
        let spec = EnvSpec {
            clear: true,
            ..Default::default()
        };
        let caller: Vec<(String, String)> = vec![
            ("NOTIFY_SOCKET".into(), "/run/systemd/notify".into()),
            ("LISTEN_FDS".into(), "1".into()),
        ];
        assert_eq!(spec.apply(caller.clone()).len(), 2);
        let spec = EnvSpec {
            clear: true,
            unset: vec!["NOTIFY_SOCKET".into()],
            ..Default::default()
        };
        assert_eq!(spec.apply(caller).len(), 1);
    }
}
