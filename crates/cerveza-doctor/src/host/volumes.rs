//! The data-volumes check: every volume profile of a host is mounted at its mount point
//! from what its assembler made of the host's own volumes; otherwise data written there
//! lands on the root disk, which `terminate` deletes.
//!
//! It reads what the host's user-data installed and its assembler wrote (see
//! `cerveza-userdata`'s volume part): the settings `<profile>.conf`
//! ([`VOLUME_SETTINGS_DIR`]), the status `<profile>.status` ([`VOLUME_STATUS_DIR`]) with
//! the mount's source as the kernel showed it, and `/proc/mounts`.

use std::collections::BTreeMap;

use cerveza_core::profile::{VOLUME_SETTINGS_DIR, VOLUME_STATUS_DIR};

use super::HostFiles;

/// A volume profile a host should have mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WantedVolume<'a> {
    /// The volume profile's name.
    pub name: &'a str,
    /// Where it is mounted.
    pub mount_point: &'a str,
}

/// `KEY='value'` or `key=value` lines (comments and anything else left out).
fn assignments(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('\'')))
        .collect()
}

/// What is mounted where, the last mount on a point winning (as the kernel shows it).
fn mounts(text: &str) -> BTreeMap<String, &str> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        if let (Some(source), Some(point)) = (f.next(), f.next()) {
            out.insert(unescape(point), source);
        }
    }
    out
}

/// `/proc/mounts` writes a space as `\040` (and tab, newline, backslash likewise).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Judges the host's data volumes. `wanted` is what the host's instance profile names
/// (when the profiles could be read); without it, the volume profiles installed on the
/// host are checked.
pub fn data_volumes(
    files: &HostFiles,
    wanted: Option<&[WantedVolume<'_>]>,
) -> Result<Vec<String>, String> {
    let settings_dir = format!("{VOLUME_SETTINGS_DIR}/");
    let mut installed: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (path, text) in files.under(&settings_dir) {
        let Some(name) = path
            .strip_prefix(&settings_dir)
            .and_then(|n| n.strip_suffix(".conf"))
        else {
            continue;
        };
        installed.insert(name, assignments(text?.unwrap_or("")));
    }
    let from_host: Vec<WantedVolume<'_>> = installed
        .iter()
        .map(|(name, conf)| WantedVolume {
            name,
            mount_point: conf.get("MOUNT").copied().unwrap_or(""),
        })
        .collect();
    let wanted = wanted.unwrap_or(&from_host);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let Some(proc_mounts) = files.text("/proc/mounts")? else {
        return Err("cannot read /proc/mounts".into());
    };
    let mounted = mounts(proc_mounts);
    let mut p = Vec::new();
    for w in wanted {
        let conf_path = format!("{VOLUME_SETTINGS_DIR}/{}.conf", w.name);
        match installed.get(w.name).and_then(|c| c.get("MOUNT")) {
            None => p.push(format!(
                "{conf_path} is missing: the user-data that assembles volume profile {} never ran on this host (launched by an older cerveza or with other user-data), so nothing re-assembles it",
                w.name
            )),
            Some(m) if *m != w.mount_point => p.push(format!(
                "{conf_path} mounts at {m}, the profile at {}: the profile changed after the host was launched; `cerveza restart` applies it",
                w.mount_point
            )),
            Some(_) => {}
        }
        let status_path = format!("{VOLUME_STATUS_DIR}/{}.status", w.name);
        let status = files.text(&status_path)?.map(assignments);
        let said = |s: &BTreeMap<&str, &str>| {
            format!(
                "its assembler says {} at {}: {}",
                s.get("state").copied().unwrap_or("nothing"),
                s.get("time").copied().unwrap_or("an unknown time"),
                s.get("message").copied().unwrap_or("")
            )
        };
        match (mounted.get(w.mount_point), &status) {
            (None, _) => p.push(format!(
                "volume profile {} is not mounted on {}: what is written there goes to the root disk; {}",
                w.name,
                w.mount_point,
                status.as_ref().map_or_else(
                    || format!("{status_path} does not exist (the assembler never ran; see `journalctl -u cerveza-volumes@{}`)", w.name),
                    said
                )
            )),
            (Some(source), Some(s))
                if s.get("state") == Some(&"mounted") && s.get("source") == Some(source) => {}
            (Some(source), Some(s)) => p.push(format!(
                "{} is mounted from {source}, not from what the assembler of volume profile {} mounted ({}); {}",
                w.mount_point,
                w.name,
                s.get("source").filter(|v| !v.is_empty()).copied().unwrap_or("nothing"),
                said(s)
            )),
            (Some(source), None) => p.push(format!(
                "{} is mounted from {source}, but no assembler of volume profile {} mounted it ({status_path} does not exist)",
                w.mount_point, w.name
            )),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape(r"/srv/my\040data"), "/srv/my data");
        assert_eq!(unescape(r"/a\\b"), r"/a\\b");
        let m = mounts("/dev/root / ext4 rw 0 0\n/dev/md127 /var/lib/mysql xfs rw 0 0\n/dev/nvme1n1 /var/lib/mysql xfs rw 0 0\n");
        assert_eq!(m["/var/lib/mysql"], "/dev/nvme1n1", "the last mount wins");
    }
}
