//! Host keys tied to the hostname and the instance, learned from a trusted source.
//!
//! At first boot cloud-init prints the host's public keys to the serial console between
//! `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`, and EC2 hands
//! that console to the account's API (GetConsoleOutput): a channel the network between
//! the user and the host cannot touch. [`console_keys`] reads that block, and
//! [`KnownHosts`] keeps the keys in a known_hosts file of cerveza's own, one line per key:
//!
//! ```text
//! web01.noc.private ssh-ed25519 AAAAC3Nz… cerveza:i-0abc123
//! ```
//!
//! ssh then runs with `HostKeyAlias=web01.noc.private`, `UserKnownHostsFile=` that file
//! and `StrictHostKeyChecking=yes`: a new address of the same instance is no key change,
//! another instance at an old address is no key match, and a key that differs from the
//! recorded one is refused. Keys of an instance are never replaced by other keys of the
//! same instance (that would be exactly the attack); a new instance id replaces them.
//! Names come from tags, so an alias, instance or key that could make another field or
//! line is refused.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BEGIN: &str = "-----BEGIN SSH HOST KEY KEYS-----";
const END: &str = "-----END SSH HOST KEY KEYS-----";
const TAG: &str = "cerveza:";

/// Key types ssh accepts in known_hosts.
fn key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-sha2-") || t.starts_with("sk-")
}

/// The public keys (`type base64`) in the first host key block of a console output.
/// Lines may carry a `ec2: ` prefix and `\r`; anything that is not a key is skipped.
pub fn console_keys(console: &str) -> Vec<String> {
    let mut lines = console.lines().map(|l| {
        let l = l.trim_end_matches('\r').trim();
        l.strip_prefix("ec2:").map_or(l, str::trim)
    });
    if !lines.any(|l| l == BEGIN) {
        return Vec::new();
    }
    let mut keys = Vec::new();
    for l in lines {
        if l == END {
            return keys;
        }
        let mut words = l.split_whitespace();
        if let (Some(t), Some(k)) = (words.next(), words.next()) {
            let base64 = k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            if key_type(t) && base64 && k.len() >= 16 {
                keys.push(format!("{t} {k}"));
            }
        }
    }
    // No end marker: the output was cut, and keys from it could be partial.
    Vec::new()
}

/// A word that is safe as a known_hosts field and an ssh option value: letters, digits,
/// `.`, `-`, `_`, not starting with `-`.
pub fn safe_word(w: &str) -> bool {
    !w.is_empty()
        && !w.starts_with('-')
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// What recording keys did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The same keys were there for this instance.
    Unchanged,
    /// The host had no keys before.
    Added,
    /// The host had keys of another instance, now replaced.
    Replaced {
        /// The instance the old keys were for.
        old_instance: String,
    },
}

/// Why keys were not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Keys that differ from the recorded ones for the same instance.
    #[error("the host keys of {alias} ({instance}) in the console output differ from the ones recorded for the same instance in {path}: not replacing them. If the host's keys were regenerated on purpose, delete its lines from that file and sync again; otherwise someone may be impersonating it", path = path.display())]
    Differs {
        /// The host key alias.
        alias: String,
        /// The instance.
        instance: String,
        /// The known_hosts file.
        path: PathBuf,
    },
    /// A name or key that could make another field or line of known_hosts.
    #[error("{0} cannot go into known_hosts")]
    Unsafe(String),
}

/// cerveza's known_hosts file: its own lines (tagged with an instance id) and any other
/// lines, which are kept as they are.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    lines: Vec<String>,
}

/// One of cerveza's lines: alias, key (`type base64`), instance.
fn parse_line(l: &str) -> Option<(&str, String, &str)> {
    let mut w = l.split_whitespace();
    let (alias, t, k, tag) = (w.next()?, w.next()?, w.next()?, w.next()?);
    Some((alias, format!("{t} {k}"), tag.strip_prefix(TAG)?))
}

impl KnownHosts {
    /// Reads the file (none yet: empty).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.to_owned(),
            lines: text.lines().map(str::to_owned).collect(),
        })
    }

    /// The instance whose keys are recorded for `alias`, if any.
    pub fn instance_of(&self, alias: &str) -> Option<&str> {
        self.lines
            .iter()
            .filter_map(|l| parse_line(l))
            .find(|(a, _, _)| *a == alias)
            .map(|(_, _, i)| i)
    }

    /// The keys recorded for `alias`.
    pub fn keys_of(&self, alias: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|l| parse_line(l))
            .filter(|(a, _, _)| *a == alias)
            .map(|(_, k, _)| k)
            .collect()
    }

    /// Records the keys of `alias` for `instance`. The same instance with other keys is
    /// refused; another instance's keys are replaced.
    pub fn record(
        &mut self,
        alias: &str,
        instance: &str,
        keys: &[String],
    ) -> Result<Recorded, RecordError> {
        // Names come from tags: nothing that could make another line or field.
        let keys_ok = keys.iter().all(|k| {
            let mut w = k.split(' ');
            matches!((w.next(), w.next(), w.next()), (Some(t), Some(b), None) if safe_word(t) && b.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')))
        });
        if !safe_word(alias) || !safe_word(instance) || !keys_ok || keys.is_empty() {
            return Err(RecordError::Unsafe(format!(
                "{alias:?} ({instance:?}) with {} key(s)",
                keys.len()
            )));
        }
        let old_instance = self.instance_of(alias).map(str::to_owned);
        let mut old_keys = self.keys_of(alias);
        old_keys.sort();
        let mut new_keys = keys.to_vec();
        new_keys.sort();
        new_keys.dedup();
        let outcome = match old_instance {
            Some(i) if i == instance && old_keys == new_keys => return Ok(Recorded::Unchanged),
            Some(i) if i == instance => {
                return Err(RecordError::Differs {
                    alias: alias.to_owned(),
                    instance: instance.to_owned(),
                    path: self.path.clone(),
                })
            }
            Some(old_instance) => Recorded::Replaced { old_instance },
            None => Recorded::Added,
        };
        self.lines
            .retain(|l| parse_line(l).is_none_or(|(a, _, _)| a != alias));
        self.lines.extend(
            new_keys
                .iter()
                .map(|k| format!("{alias} {k} {TAG}{instance}")),
        );
        Ok(outcome)
    }

    /// Writes the file: a private temporary file renamed over it, under a lock file so
    /// that two cerveza runs never lose each other's keys (see [`update`]).
    fn save(&self) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = private_file(&tmp)?;
            for l in &self.lines {
                writeln!(f, "{l}")?;
            }
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::File::create(path)
}

/// Holds `<file>.lock` while it lives.
struct Lock(PathBuf);

impl Lock {
    /// Takes the lock, waiting up to 10 s; a lock older than a minute is from a run that
    /// died and is taken over.
    fn take(file: &Path) -> std::io::Result<Self> {
        let path = file.with_extension("lock");
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Self(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(60));
                    if stale {
                        let _ = fs::remove_file(&path);
                    } else if Instant::now() > deadline {
                        return Err(std::io::Error::other(format!(
                            "{} is held by another cerveza; remove it if none runs",
                            path.display()
                        )));
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Reads the file under its lock, lets `change` edit it, and writes it back when
/// `change` says so (returns `Ok((value, true))`).
pub fn update<T, E>(
    path: &Path,
    change: impl FnOnce(&mut KnownHosts) -> Result<(T, bool), E>,
) -> Result<T, E>
where
    E: From<std::io::Error>,
{
    let _lock = Lock::take(path)?;
    let mut known = KnownHosts::load(path)?;
    let (value, changed) = change(&mut known)?;
    if changed {
        known.save()?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str =
        "[   12.3] cloud-init[812]: Generating public/private ed25519 key pair.\r\n\
ec2: #############################################################\r\n\
ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n\
ec2: 256 SHA256:abc root@web01 (ED25519)\r\n\
ec2: -----END SSH HOST KEY FINGERPRINTS-----\r\n\
-----BEGIN SSH HOST KEY KEYS-----\r\n\
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI root@web01\r\n\
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake root@web01\r\n\
-----END SSH HOST KEY KEYS-----\r\n\
-----BEGIN SSH HOST KEY KEYS-----\r\n\
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvil root@evil\r\n\
-----END SSH HOST KEY KEYS-----\r\n";

    #[test]
    fn the_first_key_block_of_the_console_is_read() {
        assert_eq!(
            console_keys(CONSOLE),
            [
                "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake"
            ]
        );
        assert!(console_keys("Linux version 6.1\nno keys yet\n").is_empty());
        let cut = CONSOLE
            .split("-----END SSH HOST KEY KEYS-----")
            .next()
            .unwrap();
        assert!(
            console_keys(cut).is_empty(),
            "a cut-off block gives no keys"
        );
        let junk = "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 not;base64!!\nssh-rsa\n-----END SSH HOST KEY KEYS-----\n";
        assert!(console_keys(junk).is_empty());
    }

    #[test]
    fn keys_are_kept_per_alias_and_instance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(&path, "github.com ssh-ed25519 AAAAC3Nzkeep\n").unwrap();
        let k1 = vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne".to_owned()];
        let k2 = vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo".to_owned()];
        let r: Result<_, std::io::Error> = update(&path, |k| {
            let r = k.record("web01.noc.private", "i-1", &k1).unwrap();
            Ok((r, true))
        });
        assert_eq!(r.unwrap(), Recorded::Added);
        let mut known = KnownHosts::load(&path).unwrap();
        assert_eq!(known.instance_of("web01.noc.private"), Some("i-1"));
        assert_eq!(
            known.record("web01.noc.private", "i-1", &k1),
            Ok(Recorded::Unchanged)
        );
        let e = known.record("web01.noc.private", "i-1", &k2).unwrap_err();
        assert!(e
            .to_string()
            .contains("differ from the ones recorded for the same instance"));
        assert_eq!(
            known.record("web01.noc.private", "i-2", &k2),
            Ok(Recorded::Replaced {
                old_instance: "i-1".into()
            })
        );
        known.save().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "github.com ssh-ed25519 AAAAC3Nzkeep\nweb01.noc.private ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo cerveza:i-2\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(!path.with_extension("lock").exists());
    }

    #[test]
    fn names_that_could_make_another_line_are_refused() {
        let mut known = KnownHosts {
            path: "/k".into(),
            lines: Vec::new(),
        };
        let k = vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne".to_owned()];
        for alias in ["a b", "a\nweb01.noc.private", "-oProxyCommand=x", ""] {
            assert!(known.record(alias, "i-1", &k).is_err(), "{alias:?}");
        }
        assert!(known.record("web01", "i-1 x", &k).is_err());
        let bad = vec!["ssh-ed25519 AAAA\nweb01 ssh-ed25519 BBBB".to_owned()];
        assert!(known.record("web01", "i-1", &bad).is_err());
        assert!(known.lines.is_empty());
    }
}
