//! Units a profile speaks in: sizes ("512MiB", "2G", "max") and durations ("30m", "1h30m", "500ms").

use std::time::Duration;

/// A memory-like limit: a number of bytes, or no limit ("max").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Bytes(u64),
    Max,
}

impl Size {
    /// The value as a cgroup interface file takes it.
    pub fn to_cgroup(self) -> String {
        match self {
            Size::Bytes(b) => b.to_string(),
            Size::Max => "max".to_string(),
        }
    }

    pub fn bytes(self) -> Option<u64> {
        match self {
            Size::Bytes(b) => Some(b),
            Size::Max => None,
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Max => f.write_str("max"),
            Size::Bytes(b) => f.write_str(&human_bytes(*b)),
        }
    }
}

/// "536870912" -> "512 MiB", exact where it can be.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut v = b as f64;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub const SIZE_HELP: &str =
    "a number of bytes, or a number with K/M/G/T (x1000) or KiB/MiB/GiB/TiB (x1024), or \"max\"";

/// Parses a size: bytes, decimal (K, M, G, T, optionally with B) or binary (KiB, MiB, GiB,
/// TiB, or Ki…) multiples, fractions allowed ("1.5GiB"), or "max".
pub fn parse_size(s: &str) -> Result<Size, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("max") {
        return Ok(Size::Max);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num = num.replace('_', "");
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u64.pow(2),
        "g" | "gb" => 1000_u64.pow(3),
        "t" | "tb" => 1000_u64.pow(4),
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(format!("`{s}` is not a size: expected {SIZE_HELP}")),
    };
    if num.is_empty() {
        return Err(format!("`{s}` is not a size: expected {SIZE_HELP}"));
    }
    let bytes = if let Ok(n) = num.parse::<u64>() {
        n.checked_mul(mult)
    } else {
        match num.parse::<f64>() {
            Ok(f) if f.is_finite() && f >= 0.0 && f * (mult as f64) < u64::MAX as f64 => {
                Some((f * mult as f64) as u64)
            }
            _ => None,
        }
    };
    bytes
        .map(Size::Bytes)
        .ok_or_else(|| format!("`{s}` is not a size: expected {SIZE_HELP}"))
}

pub const DURATION_HELP: &str =
    "a duration such as \"90s\", \"30m\", \"1h30m\" or \"500ms\" (units ms, s, m, h, d; a bare number is seconds)";

/// Parses a duration: a sequence of number+unit pairs ("1h30m", "2.5s"), or a bare number of
/// seconds. Decimal numbers are read exactly, to the nanosecond (a float would turn
/// 9223372036854775807 seconds into ...808), so a rendered duration reads back as the same one.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration: expected {DURATION_HELP}");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Some(nanos) = decimal_nanos(t, NANOS_PER_SEC) {
        return nanos.and_then(duration_from_nanos).ok_or_else(bad);
    }
    // Other spellings of a bare number, such as "1e3".
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n_end);
        let u_end = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u_end);
        let unit_nanos = match unit {
            "ms" => NANOS_PER_SEC / 1000,
            "s" | "sec" => NANOS_PER_SEC,
            "m" | "min" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "d" => 86400 * NANOS_PER_SEC,
            _ => return Err(bad()),
        };
        total = decimal_nanos(num, unit_nanos)
            .flatten()
            .and_then(|n| total.checked_add(n))
            .ok_or_else(bad)?;
        rest = tail.trim_start();
    }
    duration_from_nanos(total).ok_or_else(bad)
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `num` ("90", "2.5", ".5") times `unit` nanoseconds, exactly but for digits below a
/// nanosecond: None when `num` is not such a number, Some(None) when the product overflows.
fn decimal_nanos(num: &str, unit: u128) -> Option<Option<u128>> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) {
        return None;
    }
    let whole = match int {
        "" => Some(0),
        _ => int.parse::<u128>().ok().and_then(|i| i.checked_mul(unit)),
    };
    // 18 digits of fraction are far below a nanosecond even in days, and keep the product
    // within a u128.
    let frac = &frac[..frac.len().min(18)];
    let part = match frac {
        "" => 0,
        _ => frac.parse::<u128>().ok()? * unit / 10u128.pow(frac.len() as u32),
    };
    Some(whole.and_then(|w| w.checked_add(part)))
}

fn duration_from_nanos(n: u128) -> Option<Duration> {
    let secs = u64::try_from(n / NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, (n % NANOS_PER_SEC) as u32))
}

/// "90.5s", "12m3s", "1h02m": short and exact enough for a summary.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.3}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h{:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(Size::Bytes(512 << 20)));
        assert_eq!(parse_size("2G"), Ok(Size::Bytes(2_000_000_000)));
        assert_eq!(parse_size("1.5GiB"), Ok(Size::Bytes(3 << 29)));
        assert_eq!(parse_size("4096"), Ok(Size::Bytes(4096)));
        assert_eq!(parse_size("8 KiB"), Ok(Size::Bytes(8192)));
        assert_eq!(parse_size("1TiB"), Ok(Size::Bytes(1 << 40)));
        assert_eq!(parse_size("max"), Ok(Size::Max));
        assert_eq!(parse_size("0"), Ok(Size::Bytes(0)));
        for bad in [
            "",
            "12X",
            "MiB",
            "-1G",
            "1.2.3M",
            "99999999999999999999",
            "1e3",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("KiB/MiB/GiB/TiB"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        for bad in ["", "s", "10y", "-5s", "1h-3m", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_exact_to_the_nanosecond() {
        // A float would round these (found by fuzz/run: the rendering did not read back).
        assert_eq!(
            parse_duration("9223372036854775807s"),
            Ok(Duration::from_secs(i64::MAX as u64))
        );
        assert_eq!(
            parse_duration("9223372036854775807"),
            Ok(Duration::from_secs(i64::MAX as u64))
        );
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_duration("2.735552885ms"),
            Ok(Duration::from_nanos(2_735_552))
        );
        assert_eq!(parse_duration("1.000000001s"), Ok(Duration::new(1, 1)));
        assert_eq!(parse_duration(".5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1e3"), Ok(Duration::from_secs(1000)));
        for bad in ["18446744073709551616s", "1.2.3s", ".s", "."] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_duration_too_long_to_hold_is_refused_not_a_panic() {
        // Each part fits in a Duration; their sum does not (a panic the fuzz target reports).
        let e = parse_duration("10000000000000000000s10000000000000000000s").unwrap_err();
        assert!(e.contains("is not a duration"), "{e}");
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(1536 << 10), "1.5 MiB");
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
    }
}
