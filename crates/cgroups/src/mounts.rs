//! Where the hierarchies are: cgroup mounts from `/proc/self/mountinfo` and
//! the controller's own group in each from `/proc/self/cgroup`. Pure
//! parsing, tested on text.

use std::path::{Path, PathBuf};

/// One cgroup mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// The group of the hierarchy that the mount shows at `point`.
    pub root: String,
    /// `true` for cgroup2.
    pub unified: bool,
    /// v1 controllers of the mount (`cpu`, `cpuacct`, `memory`, ...).
    pub controllers: Vec<String>,
}

/// The cgroup and cgroup2 mounts of a `mountinfo` text.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let unified = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let controllers = if unified {
                Vec::new()
            } else {
                options
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro") && !o.starts_with("name=") && !o.contains('=')
                    })
                    .map(str::to_string)
                    .collect()
            };
            Some(Mount {
                point: PathBuf::from(unescape(left.get(4)?)),
                root: unescape(left.get(3)?),
                unified,
                controllers,
            })
        })
        .collect()
}

/// mountinfo escapes blanks and backslashes as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(byte) => out.push(byte as char),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `/proc/self/cgroup` as (controllers, path) pairs; the unified hierarchy
/// has no controllers (`0::/path`).
pub fn parse_self_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_string)
                .collect();
            Some((controllers, path.to_string()))
        })
        .collect()
}

/// The directory of our own group in `mount`: its mount point plus our
/// path below the mount's root.
pub(crate) fn own_dir(mount: &Mount, own_path: &str) -> PathBuf {
    let relative = own_path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(own_path)
        .trim_start_matches('/');
    if relative.is_empty() {
        mount.point.clone()
    } else {
        Path::new(&mount.point).join(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /inner /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn cgroup_mounts_and_their_controllers_are_found() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[0].controllers, ["cpu"]);
        assert_eq!(mounts[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(mounts[2].root, "/inner");
        assert!(
            mounts[3].controllers.is_empty(),
            "name= hierarchies have none"
        );
        assert!(mounts[4].unified);
    }

    #[test]
    fn own_groups_are_parsed_and_placed_below_the_mount_root() {
        let own = parse_self_cgroup("4:memory:/inner/box\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(
            own[0],
            (vec!["memory".to_string()], "/inner/box".to_string())
        );
        assert_eq!(own[1].0, ["cpu", "cpuacct"]);
        assert_eq!(own[2], (vec![], "/user.slice".to_string()));
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            own_dir(&mounts[2], "/inner/box"),
            PathBuf::from("/sys/fs/cgroup/memory/box")
        );
        assert_eq!(
            own_dir(&mounts[0], "/"),
            PathBuf::from("/sys/fs/cgroup/cpu")
        );
    }

    #[test]
    fn escaped_mount_points_are_unescaped() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
