//! Finding the cgroup v2 hierarchy and our own place in it, from /proc/self/mountinfo and
//! /proc/self/cgroup. Pure parsing, tested against fixture files.

use std::path::PathBuf;

/// What /proc/self/mountinfo says about cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    /// The cgroup2 mount point (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid
    /// ones), if any.
    pub cgroup2: Option<PathBuf>,
    /// cgroup v1 controllers bound to v1 hierarchies ("memory", "pids", …): a hybrid or legacy host.
    pub v1_controllers: Vec<String>,
}

/// Undoes mountinfo's octal escapes ("\040" for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

pub fn parse_mountinfo(text: &str) -> Mounts {
    let mut cgroup2: Option<(PathBuf, bool)> = None;
    let mut v1 = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 5 || fields.len() < sep + 4 {
            continue;
        }
        let (root, mount_point) = (fields[3], unescape(fields[4]));
        let (fstype, super_opts) = (fields[sep + 1], fields[sep + 3]);
        match fstype {
            // Prefer a mount of the hierarchy's root; among those, the conventional places.
            "cgroup2" => {
                let conventional =
                    mount_point == "/sys/fs/cgroup" || mount_point == "/sys/fs/cgroup/unified";
                let better = match &cgroup2 {
                    None => true,
                    Some((_, was_conventional)) => conventional && !was_conventional,
                };
                if root == "/" && better {
                    cgroup2 = Some((PathBuf::from(mount_point), conventional));
                }
            }
            "cgroup" => {
                for opt in super_opts.split(',') {
                    if V1_CONTROLLERS.contains(&opt) && !v1.iter().any(|c| c == opt) {
                        v1.push(opt.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Mounts {
        cgroup2: cgroup2.map(|(p, _)| p),
        v1_controllers: v1,
    }
}

/// Our cgroup v2 path from /proc/self/cgroup's `0::` line ("/user.slice/…/foo.scope").
pub fn parse_own_cgroup(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("0::")).map(|p| {
        // A cgroup we were moved out of under a cgroup namespace reads "/../…": treat as the root.
        let p = p.trim_end_matches(" (deleted)");
        if p.starts_with("/..") {
            "/".to_string()
        } else {
            p.to_string()
        }
    })
}

/// The parent in which agents are placed: the parent of our cgroup, or the root when we are in
/// the root (inside a container's cgroup namespace, or a host without systemd).
pub fn default_parent(own: &str) -> String {
    match own.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((parent, _)) => parent.to_string(),
    }
}

/// Joins cgroup paths: ("/a", "b/c") -> "/a/b/c"; ("/", "b") -> "/b".
pub fn join(parent: &str, child: &str) -> String {
    let p = parent.trim_end_matches('/');
    let c = child.trim_matches('/');
    if c.is_empty() {
        if p.is_empty() {
            "/".into()
        } else {
            p.into()
        }
    } else {
        format!("{p}/{c}")
    }
}

/// Normalises a user-given cgroup path: "a/b/" -> "/a/b"; rejects "..".
pub fn normalise(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIFIED: &str = include_str!("../../tests/fixtures/mountinfo-unified");
    const HYBRID: &str = include_str!("../../tests/fixtures/mountinfo-hybrid");
    const LEGACY: &str = include_str!("../../tests/fixtures/mountinfo-legacy");

    #[test]
    fn unified_host() {
        let m = parse_mountinfo(UNIFIED);
        assert_eq!(m.cgroup2, Some(PathBuf::from("/sys/fs/cgroup")));
        assert!(m.v1_controllers.is_empty());
    }

    #[test]
    fn hybrid_host_finds_unified_and_v1_controllers() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.cgroup2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        for c in ["memory", "pids", "cpu", "cpuacct"] {
            assert!(
                m.v1_controllers.iter().any(|x| x == c),
                "{c}: {:?}",
                m.v1_controllers
            );
        }
        assert!(!m.v1_controllers.iter().any(|x| x == "name=systemd"));
    }

    #[test]
    fn legacy_host_has_no_cgroup2() {
        let m = parse_mountinfo(LEGACY);
        assert_eq!(m.cgroup2, None);
        assert!(m.v1_controllers.iter().any(|x| x == "memory"));
    }

    #[test]
    fn escaped_mount_points_and_non_root_bind_mounts() {
        let text = "30 1 0:26 /some/sub /mnt/bind rw - cgroup2 cgroup2 rw\n\
                    31 1 0:26 / /mnt/my\\040cgroups rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            parse_mountinfo(text).cgroup2,
            Some(PathBuf::from("/mnt/my cgroups"))
        );
    }

    #[test]
    fn own_cgroup() {
        assert_eq!(
            parse_own_cgroup(include_str!("../../tests/fixtures/proc-cgroup-hybrid")).as_deref(),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(parse_own_cgroup("0::/\n").as_deref(), Some("/"));
        assert_eq!(parse_own_cgroup("0::/../../x\n").as_deref(), Some("/"));
        assert_eq!(parse_own_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn placement_rules() {
        let own = "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.scope";
        assert_eq!(
            join(&join(&default_parent(own), "synwire/agents"), "u"),
            "/user.slice/user-1000.slice/user@1000.service/app.slice/synwire/agents/u"
        );
        assert_eq!(default_parent("/"), "/");
        assert_eq!(default_parent("/init.scope"), "/");
        assert_eq!(join("/", "synwire/agents"), "/synwire/agents");
        assert_eq!(normalise("a/b/"), Some("/a/b".into()));
        assert_eq!(normalise("/"), Some("/".into()));
        assert_eq!(normalise("/a/../b"), None);
    }
}
