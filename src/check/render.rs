//! The human report of `synwire-run check`: one line per finding, and each distinct fix once.

use super::{Check, Level};

/// The human report: one line per finding, and each distinct fix once. Findings in a row that
/// share a fix (the three controllers of a hybrid host) get it once, under the last of them; a fix
/// already given further up is referred to rather than repeated.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    // The fixes given so far, with the finding each was first given for.
    let mut given: Vec<(&str, &Check)> = Vec::new();
    let mut run = 0;
    for (i, c) in checks.iter().enumerate() {
        let label = match c.status {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        s.push_str(&format!("{label} {:<26} {}\n", c.check, c.detail));
        let Some(fix) = c.fix.as_deref() else {
            continue;
        };
        run += 1;
        if checks.get(i + 1).and_then(|n| n.fix.as_deref()) == Some(fix) {
            continue;
        }
        if let Some((_, first)) = given.iter().find(|(f, _)| *f == fix) {
            s.push_str(&format!("     fix: as for \"{}\" above\n", first.detail));
        } else {
            if run > 1 {
                s.push_str(&format!("     fix for the {run} lines above: {fix}\n"));
            } else {
                s.push_str(&format!("     fix: {fix}\n"));
            }
            given.push((fix, &checks[i + 1 - run]));
        }
        run = 0;
    }
    let failed = checks.iter().any(|c| c.status == Level::Fail);
    s.push_str(if failed {
        "synwire-run: the `small` profile would not run enforced here; see FAIL above\n"
    } else {
        "synwire-run: this host runs the `small` profile enforced\n"
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(check: &'static str, status: Level, detail: &str, fix: Option<&str>) -> Check {
        Check {
            check,
            status,
            detail: detail.into(),
            fix: fix.map(Into::into),
        }
    }

    /// The fix sentences of a rendering, as printed (references to an earlier fix left out).
    fn fixes(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.trim_start().strip_prefix("fix"))
            .filter_map(|l| l.split_once(": ").map(|(_, fix)| fix))
            .filter(|f| !f.starts_with("as for \""))
            .collect()
    }

    /// The findings of a hybrid host as `run_checks` makes them, with one fix repeated further
    /// down as well.
    fn hybrid() -> Vec<Check> {
        let hybrid = "this host runs cgroups in hybrid mode (…): boot with systemd.unified_cgroup_hierarchy=1 on the kernel command line, or run with --allow-degraded to run without these limits";
        vec![
            finding("cgroup2", Level::Warn, "/sys/fs/cgroup/unified (hybrid)", Some("boot with systemd.unified_cgroup_hierarchy=1 so cgroup v2 gets the controllers")),
            finding("own cgroup", Level::Ok, "/", None),
            finding("controller", Level::Fail, "memory missing in /sys/fs/cgroup/unified", Some(hybrid)),
            finding("controller", Level::Fail, "cpu missing in /sys/fs/cgroup/unified", Some(hybrid)),
            finding("controller", Level::Fail, "pids missing in /sys/fs/cgroup/unified", Some(hybrid)),
            finding("controller", Level::Warn, "io missing in /sys/fs/cgroup/unified", Some("only needed by io limits; delegate it like the others")),
            finding("delegation", Level::Ok, "/sys/fs/cgroup/unified is writable by uid 0", None),
            finding("elsewhere", Level::Fail, "something else", Some(hybrid)),
        ]
    }

    #[test]
    fn each_fix_is_printed_once_and_every_finding_keeps_its_line() {
        let checks = hybrid();
        let text = render(&checks);
        let fixes = fixes(&text);
        for (i, f) in fixes.iter().enumerate() {
            assert!(!fixes[..i].contains(f), "printed twice: {f}\n{text}");
        }
        for c in &checks {
            if let Some(fix) = &c.fix {
                assert!(
                    fixes.contains(&fix.as_str()),
                    "never printed: {fix}\n{text}"
                );
            }
            let label = format!("{:<26} {}\n", c.check, c.detail);
            assert_eq!(text.matches(&label).count(), 1, "{label}\n{text}");
        }
    }

    #[test]
    fn findings_in_a_row_share_one_fix_and_a_later_one_refers_back() {
        let text = render(&hybrid());
        assert!(
            text.contains("pids missing in /sys/fs/cgroup/unified\n     fix for the 3 lines above: this host runs cgroups in hybrid mode"),
            "{text}"
        );
        assert!(
            text.contains("FAIL elsewhere                  something else\n     fix: as for \"memory missing in /sys/fs/cgroup/unified\" above\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "(hybrid)\n     fix: boot with systemd.unified_cgroup_hierarchy=1 so cgroup v2"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("would not run enforced here; see FAIL above\n"),
            "{text}"
        );
    }
}
