//! Errors that point into a profile's text: a span turned into the file, the line, the column and
//! the dotted key, and the typed reads of a value that fail with such an error.

use std::time::Duration;

use toml::Spanned;

use super::{parse_duration, parse_size, units, ProfileError, Size};

/// Turns spans into "line:column" errors for one source text.
pub(super) struct Source<'a> {
    pub origin: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    pub(super) fn error(&self, offset: usize, message: String) -> ProfileError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ProfileError::Invalid {
            origin: self.origin.to_string(),
            line,
            column,
            message,
        }
    }

    /// The dotted key at `offset`: the table header above it and the key on its line.
    pub(super) fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let header_of = |l: &str| -> Option<String> {
            let l = l.trim();
            (l.starts_with('[') && !l.starts_with("[[")).then(|| {
                l.trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
        };
        if let Some(h) = header_of(line) {
            return h;
        }
        let key = line
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string();
        let table = self.text[..line_start].lines().rev().find_map(header_of);
        match table {
            Some(t) if !t.is_empty() => format!("{t}.{key}"),
            _ => key,
        }
    }

    pub(super) fn de_error(&self, e: toml::de::Error) -> ProfileError {
        let offset = e.span().map_or(0, |s| s.start);
        let msg = e.message().trim().to_string();
        let message = if msg.starts_with("unknown field") {
            let expected = msg
                .split_once("expected ")
                .map(|(_, rest)| {
                    format!(
                        "; the keys allowed here are {}",
                        rest.trim_start_matches("one of ")
                    )
                })
                .unwrap_or_default();
            format!(
                "unknown key `{}`{expected}; fix its spelling or remove it",
                self.key_at(offset)
            )
        } else if e.span().is_some_and(|s| s.start != s.end) && !msg.contains("expected `") {
            format!("`{}`: {msg}", self.key_at(offset))
        } else {
            format!("{msg}; this is not valid TOML")
        };
        self.error(offset, message)
    }

    pub(super) fn bad(&self, v: &Spanned<toml::Value>, key: &str, what: String) -> ProfileError {
        self.error(v.span().start, format!("`{key}` = {}: {what}", v.get_ref()))
    }

    pub(super) fn string<'v>(
        &self,
        v: &'v Spanned<toml::Value>,
        key: &str,
    ) -> Result<&'v str, ProfileError> {
        v.get_ref()
            .as_str()
            .ok_or_else(|| self.bad(v, key, "expected a string".into()))
    }

    pub(super) fn boolean(
        &self,
        v: &Spanned<toml::Value>,
        key: &str,
    ) -> Result<bool, ProfileError> {
        v.get_ref()
            .as_bool()
            .ok_or_else(|| self.bad(v, key, "expected true or false".into()))
    }

    pub(super) fn size(&self, v: &Spanned<toml::Value>, key: &str) -> Result<Size, ProfileError> {
        match v.get_ref() {
            toml::Value::String(s) => parse_size(s).map_err(|m| self.bad(v, key, m)),
            toml::Value::Integer(i) if *i >= 0 => Ok(Size::Bytes(*i as u64)),
            _ => Err(self.bad(v, key, format!("expected {}", units::SIZE_HELP))),
        }
    }

    pub(super) fn bytes(&self, v: &Spanned<toml::Value>, key: &str) -> Result<Size, ProfileError> {
        match v.get_ref() {
            toml::Value::Integer(i) if *i >= 0 => Ok(Size::Bytes(*i as u64)),
            _ => Err(self.bad(v, key, "expected a whole number of bytes".into())),
        }
    }

    pub(super) fn float(&self, v: &Spanned<toml::Value>, key: &str) -> Result<f64, ProfileError> {
        match v.get_ref() {
            toml::Value::Float(f) => Ok(*f),
            toml::Value::Integer(i) => Ok(*i as f64),
            _ => Err(self.bad(v, key, "expected a number such as 0.5 or 2".into())),
        }
    }

    pub(super) fn uint(&self, v: &Spanned<toml::Value>, key: &str) -> Result<u64, ProfileError> {
        match v.get_ref() {
            toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            _ => Err(self.bad(v, key, "expected a whole number".into())),
        }
    }

    pub(super) fn duration(
        &self,
        v: &Spanned<toml::Value>,
        key: &str,
    ) -> Result<Duration, ProfileError> {
        match v.get_ref() {
            toml::Value::String(s) => parse_duration(s).map_err(|m| self.bad(v, key, m)),
            toml::Value::Integer(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
            _ => Err(self.bad(v, key, format!("expected {}", units::DURATION_HELP))),
        }
    }

    pub(super) fn check<T>(
        &self,
        v: &Spanned<toml::Value>,
        key: &str,
        r: Result<T, String>,
    ) -> Result<T, ProfileError> {
        r.map_err(|m| self.bad(v, key, m))
    }
}
