//! The on-host checks: a read-only script prints the files the paper's rules are about,
//! and this module judges what it printed.
//!
//! The script is POSIX sh, sent base64-encoded (`echo … | base64 -d | sh -s -- ROOT
//! MARKER`) so no login shell, quoting rule or history expansion can change it. It only
//! reads: files it cannot read as the login user it reads with `sudo -n` when that works
//! without a password, and otherwise reports them unreadable, which makes the checks that
//! need them say "could not check" rather than pass. Every section starts with a marker
//! line carrying a random nonce, so a file cannot forge another file's section, and the
//! output ends with an `end` marker, so a cut-off output is never judged.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use crate::{Check, Finding};

mod volumes;
pub use volumes::{data_volumes, WantedVolume};

/// The files the checks read.
pub const FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/nslcd.conf",
    "/etc/pam_ldap.conf",
    "/etc/ssh/sshd_config",
    "/etc/autofs.conf",
    "/etc/fstab",
    "/etc/crontab",
    "/var/spool/cron/crontabs/root",
    "/etc/default/puppet",
    "/etc/updatedb.conf",
    "/etc/passwd",
    "/proc/mounts",
];

const SCRIPT: &str = r#"R=$1 M=$2 S=
if [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then S='sudo -n'; fi
rd() { cat -- "$R$1" 2>/dev/null || { [ -n "$S" ] && $S cat -- "$R$1" 2>/dev/null; }; }
ex() { [ -e "$R$1" ] || { [ -n "$S" ] && $S test -e "$R$1" 2>/dev/null; }; }
show() {
  if ! ex "$1"; then printf '%s missing %s\n' "$M" "$1"
  elif c=$(rd "$1"); then printf '%s file %s\n%s\n' "$M" "$1" "$c"
  else printf '%s unreadable %s\n' "$M" "$1"; fi
}
for f in FILES; do show "$f"; done
for f in "$R"/etc/cron.d/* "$R"/etc/ssh/sshd_config.d/*.conf "$R"/etc/cerveza/volumes/*.conf "$R"/var/lib/cerveza/volumes/*.status; do
  [ -f "$f" ] && show "${f#"$R"}"
done
for u in puppet puppet-agent; do
  [ -e "$R/etc/systemd/system/multi-user.target.wants/$u.service" ] && printf '%s enabled %s.service\n' "$M" "$u"
done
if [ -r "$R/etc/passwd" ]; then
  while IFS=: read -r u _ _ _ _ h s; do
    case $s in */nologin|*/false|'') continue;; esac
    for k in "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2"; do
      if [ -s "$R$k" ] || { [ -n "$S" ] && $S test -s "$R$k" 2>/dev/null; }; then
        printf '%s key %s\n' "$M" "$u"; break
      fi
    done
  done < "$R/etc/passwd"
fi
printf '%s end\n' "$M"
"#;

/// The script's text.
pub fn script() -> String {
    SCRIPT.replace("FILES", &FILES.join(" "))
}

/// The remote command: the script, decoded and run by `sh` with the root prefix (empty
/// on a real host) and the marker as its arguments. Both are single-quoted; the marker
/// is hex and the root a path the caller chose.
pub fn command(root: &str, marker: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(script());
    format!(
        "echo {b64} | base64 -d | sh -s -- {} {}",
        quote(root),
        quote(marker)
    )
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A file as the script saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Its text.
    Present(String),
    /// It does not exist.
    Missing,
    /// It exists and could not be read.
    Unreadable,
}

/// What the script printed about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFiles {
    files: BTreeMap<String, FileState>,
    enabled_units: BTreeSet<String>,
    keyed_users: Vec<String>,
    complete: bool,
}

impl HostFiles {
    /// Reads the script's output. Lines before the first marker (a login banner) are
    /// ignored.
    pub fn parse(output: &str, marker: &str) -> Self {
        let mut out = HostFiles::default();
        let mut current: Option<String> = None;
        let prefix = format!("{marker} ");
        for line in output.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                if let Some(FileState::Present(text)) =
                    current.as_ref().and_then(|p| out.files.get_mut(p))
                {
                    text.push_str(line);
                    text.push('\n');
                }
                continue;
            };
            current = None;
            let (kind, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            match kind {
                "file" => {
                    out.files
                        .insert(arg.to_owned(), FileState::Present(String::new()));
                    current = Some(arg.to_owned());
                }
                "missing" => {
                    out.files.insert(arg.to_owned(), FileState::Missing);
                }
                "unreadable" => {
                    out.files.insert(arg.to_owned(), FileState::Unreadable);
                }
                "enabled" => {
                    out.enabled_units.insert(arg.to_owned());
                }
                "key" => out.keyed_users.push(arg.to_owned()),
                "end" => out.complete = true,
                _ => {}
            }
        }
        out
    }

    /// Whether the output reached its end marker.
    pub fn complete(&self) -> bool {
        self.complete
    }

    fn state(&self, path: &str) -> &FileState {
        self.files.get(path).unwrap_or(&FileState::Missing)
    }

    /// The text of a file: `Ok(None)` when it does not exist, an error naming it when it
    /// could not be read.
    fn text(&self, path: &str) -> Result<Option<&str>, String> {
        match self.state(path) {
            FileState::Present(t) => Ok(Some(t)),
            FileState::Missing => Ok(None),
            FileState::Unreadable => Err(format!(
                "cannot read {path} (log in as root, or give the ssh user passwordless sudo)"
            )),
        }
    }

    /// The files under `dir` the script printed, in name order.
    fn under(&self, dir: &str) -> Vec<(&str, Result<Option<&str>, String>)> {
        self.files
            .keys()
            .filter(|p| p.strip_prefix(dir).is_some_and(|r| !r.contains('/')))
            .map(|p| (p.as_str(), self.text(p)))
            .collect()
    }
}

/// A host check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing found.
    Pass,
    /// Problems, each naming its file.
    Fail(Vec<String>),
    /// The host could not be checked, and why.
    Unknown(String),
}

impl From<Result<Vec<String>, String>> for Verdict {
    fn from(r: Result<Vec<String>, String>) -> Self {
        match r {
            Ok(p) if p.is_empty() => Verdict::Pass,
            Ok(p) => Verdict::Fail(p),
            Err(e) => Verdict::Unknown(e),
        }
    }
}

/// Judges one host for one check. [`Check::Puppet`] here covers the host alone (no
/// daemon); the spread of minutes over a group is [`puppet_spread`]. Cloud checks pass.
pub fn judge(check: Check, files: &HostFiles) -> Verdict {
    if !files.complete {
        return Verdict::Unknown("the check script's output ended early".into());
    }
    match check {
        Check::Resolver => resolver(files),
        Check::Nsswitch => nsswitch(files),
        Check::LoginTimeouts => login_timeouts(files),
        Check::Fstab => fstab(files),
        Check::Puppet => puppet(files).map(|p| p.problems),
        Check::Updatedb => updatedb(files),
        Check::DataVolumes => data_volumes(files, None),
        Check::LocalAccount => Ok(if files.keyed_users.is_empty() {
            vec!["no local account in /etc/passwd has a login shell and an ssh key in ~/.ssh/authorized_keys".into()]
        } else {
            Vec::new()
        }),
        _ => Ok(Vec::new()),
    }
    .into()
}

/// Lines that are not blank or comments, trimmed.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// What resolv.conf says, with glibc's defaults.
#[derive(Debug, PartialEq, Eq)]
struct Resolver {
    nameservers: Vec<String>,
    timeout: u64,
    attempts: u64,
}

fn parse_resolver(text: &str) -> Resolver {
    let mut r = Resolver {
        nameservers: Vec::new(),
        timeout: 5,
        attempts: 2,
    };
    for l in lines(text) {
        let mut words = l.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_owned)),
            Some("options") => {
                for o in words {
                    if let Some(v) = o.strip_prefix("timeout:").and_then(|v| v.parse().ok()) {
                        r.timeout = v;
                    }
                    if let Some(v) = o.strip_prefix("attempts:").and_then(|v| v.parse().ok()) {
                        r.attempts = v;
                    }
                }
            }
            _ => {}
        }
    }
    r
}

fn resolver(files: &HostFiles) -> Result<Vec<String>, String> {
    let Some(text) = files.text("/etc/resolv.conf")? else {
        return Ok(vec![
            "/etc/resolv.conf is missing: lookups go to 127.0.0.1 alone".into(),
        ]);
    };
    let r = parse_resolver(text);
    let mut p = Vec::new();
    match r.nameservers.as_slice() {
        [] => p.push("/etc/resolv.conf names no nameserver".into()),
        [one] => p.push(format!(
            "/etc/resolv.conf names one nameserver ({one}): when it is down, every lookup fails"
        )),
        _ => {}
    }
    if r.timeout > 1 {
        p.push(format!(
            "/etc/resolv.conf: timeout {} s per try, not `options timeout:1`",
            r.timeout
        ));
    }
    if r.attempts > 1 {
        p.push(format!(
            "/etc/resolv.conf: {} attempts, not `options attempts:1`",
            r.attempts
        ));
    }
    Ok(p)
}

/// The sources of an nsswitch database, actions (`[NOTFOUND=return]`) left out.
fn nss_sources<'t>(text: &'t str, db: &str) -> Option<Vec<&'t str>> {
    lines(text).find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        (name.trim() == db).then(|| {
            rest.split_whitespace()
                .filter(|w| !w.starts_with('['))
                .collect()
        })
    })
}

/// Whether a database asks a directory (ldap or sss).
fn remote_source(s: &str) -> bool {
    matches!(s, "ldap" | "sss")
}

fn nsswitch(files: &HostFiles) -> Result<Vec<String>, String> {
    let Some(text) = files.text("/etc/nsswitch.conf")? else {
        return Ok(Vec::new());
    };
    let mut p = Vec::new();
    for db in ["passwd", "group", "shadow"] {
        let Some(src) = nss_sources(text, db) else {
            continue;
        };
        let Some(remote) = src.iter().position(|s| remote_source(s)) else {
            continue;
        };
        match src.iter().position(|s| matches!(*s, "files" | "compat")) {
            Some(local) if local < remote => {}
            Some(_) => p.push(format!(
                "/etc/nsswitch.conf: `{db}: {}` asks {} before local files",
                src.join(" "),
                src[remote]
            )),
            None => p.push(format!(
                "/etc/nsswitch.conf: `{db}: {}` never reads local files",
                src.join(" ")
            )),
        }
    }
    Ok(p)
}

/// An sshd time (`120`, `2m`, `1m30s`) in seconds.
fn sshd_seconds(v: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total += n * match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
    }
    if !digits.is_empty() {
        total += digits.parse::<u64>().ok()?;
    }
    Some(total)
}

/// sshd's LoginGraceTime from sshd_config and what it includes: the first value wins,
/// as in sshd; `Match` blocks are not global and end the search.
fn login_grace(files: &HostFiles) -> Result<u64, String> {
    fn walk(files: &HostFiles, path: &str, depth: u8) -> Result<Option<u64>, String> {
        let Some(text) = files.text(path)? else {
            return Ok(None);
        };
        for l in lines(text) {
            let (key, value) = l
                .split_once(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or((l, ""));
            let value = value.trim_start_matches([' ', '\t', '=']).trim();
            match key.to_ascii_lowercase().as_str() {
                "match" => return Ok(None),
                "logingracetime" => {
                    return sshd_seconds(value)
                        .map(Some)
                        .ok_or_else(|| format!("{path}: LoginGraceTime {value:?} is not a time"))
                }
                "include" if depth < 4 => {
                    for pattern in value.split_whitespace() {
                        let pattern = if pattern.starts_with('/') {
                            pattern.to_owned()
                        } else {
                            format!("/etc/ssh/{pattern}")
                        };
                        let (dir, glob) = pattern.rsplit_once('/').unwrap_or(("", &pattern));
                        let suffix = glob.strip_prefix('*').unwrap_or(glob);
                        for (p, _) in files.under(&format!("{dir}/")) {
                            let name = p.rsplit('/').next().unwrap_or(p);
                            let hit = if glob.starts_with('*') {
                                name.ends_with(suffix)
                            } else {
                                name == glob
                            };
                            if hit {
                                if let Some(v) = walk(files, p, depth + 1)? {
                                    return Ok(Some(v));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
    Ok(walk(files, "/etc/ssh/sshd_config", 0)?.unwrap_or(120))
}

/// One LDAP client's settings: its URIs, and how long it may wait to connect to each and
/// for a search (`None`: no limit).
struct LdapClient {
    file: &'static str,
    uris: Vec<String>,
    bind: u64,
    search: Option<u64>,
}

fn ldap_client(
    files: &HostFiles,
    file: &'static str,
    default_bind: u64,
) -> Result<Option<LdapClient>, String> {
    let Some(text) = files.text(file)? else {
        return Ok(None);
    };
    let mut c = LdapClient {
        file,
        uris: Vec::new(),
        bind: default_bind,
        search: None,
    };
    for l in lines(text) {
        let mut words = l.split_whitespace();
        let key = words.next().unwrap_or("").to_ascii_lowercase();
        match key.as_str() {
            "uri" | "host" => c.uris.extend(words.map(str::to_owned)),
            "bind_timelimit" => {
                c.bind = words.next().and_then(|v| v.parse().ok()).unwrap_or(c.bind)
            }
            "timelimit" => {
                c.search = words
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|v| *v > 0)
            }
            _ => {}
        }
    }
    if c.uris.is_empty() {
        c.uris.push("ldap://localhost".into());
    }
    Ok(Some(c))
}

/// autofs' `mount_wait` from autofs.conf (`None`: unlimited, the default).
fn autofs_mount_wait(text: &str) -> Option<u64> {
    let mut in_autofs = false;
    let mut wait = None;
    for l in lines(text) {
        if l.starts_with('[') {
            in_autofs = l.trim_matches(['[', ']', ' ']) == "autofs";
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if in_autofs && k.trim() == "mount_wait" {
                wait = v.trim().parse::<i64>().ok().filter(|v| *v > 0);
            }
        }
    }
    wait.and_then(|v| u64::try_from(v).ok())
}

/// Lookups a login makes through the directory: the user, its groups, the pam check.
const LOGIN_LOOKUPS: u64 = 3;

fn login_timeouts(files: &HostFiles) -> Result<Vec<String>, String> {
    let grace = login_grace(files)?;
    let resolver = parse_resolver(files.text("/etc/resolv.conf")?.unwrap_or(""));
    let dns = resolver.timeout * resolver.attempts * resolver.nameservers.len().clamp(1, 3) as u64;
    let clients: Vec<LdapClient> = [
        ldap_client(files, "/etc/nslcd.conf", 10)?,
        ldap_client(files, "/etc/pam_ldap.conf", 30)?,
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut p = Vec::new();
    let mut total = 0u64;
    let mut parts = Vec::new();
    for c in &clients {
        let Some(search) = c.search else {
            p.push(format!(
                "{}: no timelimit (or 0): an LDAP search to a server that answers slowly waits forever",
                c.file
            ));
            continue;
        };
        let named = c
            .uris
            .iter()
            .any(|u| uri_host(u).parse::<std::net::IpAddr>().is_err());
        let dns_cost = if named { dns } else { 0 };
        let one = dns_cost + c.uris.len() as u64 * c.bind + search;
        total += LOGIN_LOOKUPS * one;
        parts.push(format!(
            "{LOGIN_LOOKUPS} lookups × ({}{} URI(s) × bind_timelimit {} s + timelimit {search} s) in {}",
            if named { format!("DNS {dns} s + ") } else { String::new() },
            c.uris.len(),
            c.bind,
            c.file
        ));
    }
    if let Some(text) = files.text("/etc/autofs.conf")? {
        match autofs_mount_wait(text) {
            Some(w) => {
                total += w;
                parts.push(format!("autofs mount_wait {w} s"));
            }
            None => p.push(
                "/etc/autofs.conf: no mount_wait: a login waits for a hung NFS home as long as mount(8) does".into(),
            ),
        }
    }
    if grace > 0 && total >= grace && !parts.is_empty() {
        p.push(format!(
            "a login can wait {total} s ({}), not less than sshd's LoginGraceTime {grace} s",
            parts.join(" + ")
        ));
    }
    Ok(p)
}

/// The host of an LDAP URI (`ldaps://ldap1.noc.private:636/` → `ldap1.noc.private`).
pub fn uri_host(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    rest.rsplit_once(':').map_or(rest, |(h, _)| h)
}

const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "smb3",
    "glusterfs",
    "ceph",
    "fuse.sshfs",
    "sshfs",
    "davfs",
    "fuse.glusterfs",
    "lustre",
    "9p",
];
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devpts",
    "devtmpfs",
    "swap",
    "none",
    "debugfs",
    "securityfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "hugetlbfs",
    "efivarfs",
    "binfmt_misc",
    "configfs",
    "pstore",
    "bpf",
    "tracefs",
    "fusectl",
    "rpc_pipefs",
];

fn fstab(files: &HostFiles) -> Result<Vec<String>, String> {
    let Some(text) = files.text("/etc/fstab")? else {
        return Ok(Vec::new());
    };
    let mut p = Vec::new();
    for l in lines(text) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [spec, dir, kind, options, ..] = f[..] else {
            continue;
        };
        let options: Vec<&str> = options.split(',').collect();
        if options.iter().any(|o| matches!(*o, "nofail" | "noauto")) {
            continue;
        }
        let network = NETWORK_FS.contains(&kind) || spec.starts_with("//") || spec.contains(":/");
        let system = matches!(dir, "/" | "/boot" | "/boot/efi" | "/usr" | "/var" | "none");
        if network {
            p.push(format!(
                "/etc/fstab: network filesystem {spec} on {dir} without nofail: the boot waits for its server"
            ));
        } else if !system && !PSEUDO_FS.contains(&kind) {
            p.push(format!(
                "/etc/fstab: {spec} on {dir} without nofail: if that volume fails, the host does not boot"
            ));
        }
    }
    Ok(p)
}

/// What one host does with puppet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Puppet {
    /// Problems of the host alone.
    pub problems: Vec<String>,
    /// Minutes past the hour cron runs puppet at (empty: not from cron).
    pub minutes: BTreeSet<u32>,
}

/// Expands a cron minute field (`17,47`, `*/30`, `5-10/2`, `*`).
fn cron_minutes(field: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (item, 1),
        };
        let (lo, hi) = match range {
            "*" => (0, 59),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let v: u32 = r.parse().ok()?;
                    (v, if item.contains('/') { 59 } else { v })
                }
            },
        };
        if hi > 59 || lo > hi {
            return None;
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    Some(out)
}

/// The host's own puppet facts: a daemon is a problem; cron minutes are kept for the
/// group's spread.
pub fn puppet(files: &HostFiles) -> Result<Puppet, String> {
    let mut out = Puppet::default();
    for unit in &files.enabled_units {
        out.problems.push(format!(
            "{unit} is enabled: puppet runs as a daemon (disable it; run it from cron)"
        ));
    }
    if let Some(text) = files.text("/etc/default/puppet")? {
        if lines(text).any(|l| l.replace(['"', ' '], "").eq_ignore_ascii_case("START=yes")) {
            out.problems
                .push("/etc/default/puppet has START=yes: puppet runs as a daemon".into());
        }
    }
    let mut tabs = vec![
        ("/etc/crontab", files.text("/etc/crontab")?),
        (
            "/var/spool/cron/crontabs/root",
            files.text("/var/spool/cron/crontabs/root")?,
        ),
    ];
    for (path, text) in files.under("/etc/cron.d/") {
        tabs.push((path, text?));
    }
    for (path, text) in tabs {
        for l in lines(text.unwrap_or("")) {
            if !l
                .split_whitespace()
                .any(|w| w.rsplit('/').next() == Some("puppet"))
            {
                continue;
            }
            let first = l.split_whitespace().next().unwrap_or("");
            let minutes = match first {
                "@hourly" => Some(BTreeSet::from([0])),
                f if f.starts_with('@') || f.contains('=') => continue,
                f => cron_minutes(f),
            };
            match minutes {
                Some(m) => out.minutes.extend(m),
                None => out
                    .problems
                    .push(format!("{path}: cannot read the minute field {first:?}")),
            }
        }
    }
    Ok(out)
}

/// One host's puppet minutes, with its group (the profile).
#[derive(Debug, Clone)]
pub struct PuppetHost<'a> {
    /// The hostname.
    pub host: &'a str,
    /// Hosts of one group should not run at one minute.
    pub group: &'a str,
    /// Its cron minutes.
    pub minutes: &'a BTreeSet<u32>,
}

/// Hosts of a group that run puppet at the same minute when the group fits in the hour
/// without it: with `k` runs an hour there are `60 / k` slots, and a minute holding more
/// than `ceil(hosts / slots)` hosts of the group is a peak that could be avoided.
pub fn puppet_spread(hosts: &[PuppetHost<'_>]) -> Vec<Finding> {
    let mut groups: BTreeMap<&str, Vec<&PuppetHost<'_>>> = BTreeMap::new();
    for h in hosts.iter().filter(|h| !h.minutes.is_empty()) {
        groups.entry(h.group).or_default().push(h);
    }
    let mut out = Vec::new();
    for (group, members) in groups {
        let runs = members
            .iter()
            .map(|h| h.minutes.len())
            .min()
            .unwrap_or(1)
            .max(1);
        let slots = (60 / runs).max(1);
        let allowed = members.len().div_ceil(slots);
        let mut at: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for h in &members {
            for m in h.minutes.iter() {
                at.entry(*m).or_default().push(h.host);
            }
        }
        let mut crowded: BTreeMap<&str, BTreeSet<(u32, Vec<&str>)>> = BTreeMap::new();
        for (m, names) in &at {
            if names.len() > allowed {
                for n in names {
                    let others: Vec<&str> = names.iter().copied().filter(|o| o != n).collect();
                    crowded.entry(n).or_default().insert((*m, others));
                }
            }
        }
        for (host, hits) in crowded {
            let (m, others) = hits.iter().next().expect("a crowded host has a minute");
            out.push(Finding::new(
                host,
                format!(
                    "runs puppet at minute {m} like {} ({} hosts of {group} fit in {slots} minutes)",
                    others.join(", "),
                    members.len()
                ),
            ));
        }
    }
    out
}

fn updatedb(files: &HostFiles) -> Result<Vec<String>, String> {
    let Some(text) = files.text("/etc/updatedb.conf")? else {
        return Ok(Vec::new());
    };
    let prunefs = lines(text).find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "PRUNEFS").then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    });
    let Some(prunefs) = prunefs else {
        return Ok(vec![
            "/etc/updatedb.conf has no PRUNEFS: updatedb crawls every NFS mount".into(),
        ]);
    };
    let have: BTreeSet<&str> = prunefs.split_whitespace().collect();
    let lacking: Vec<&str> = ["nfs", "nfs4"]
        .into_iter()
        .filter(|f| !have.contains(f))
        .collect();
    Ok(if lacking.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "/etc/updatedb.conf: PRUNEFS lacks {}: updatedb crawls those mounts",
            lacking.join(", ")
        )]
    })
}

#[cfg(test)]
mod tests;
