//! Shell completion. Commands, flags and fixed values come from the clap definitions;
//! hostnames, profiles, zones, regions and selection prefixes come from the fleet,
//! through clap_complete's engine (the shell script runs `CERVEZA_COMPLETE=bash cerveza` at
//! each Tab).
//!
//! Hostnames are read from a small local cache that `list` writes (one per product, in
//! `$XDG_CACHE_HOME/cerveza`): a Tab never waits for EC2. When the cache is older than a
//! minute (or missing), the completer starts `cerveza list` in the background to refresh
//! it and answers from what it has; the next Tab sees the new hosts. Everything a
//! completer does is local and bounded: the profiles directory, the config file, the
//! cache, one `spawn`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use cerveza_core::model::Instance;
use cerveza_core::profile::ProfileSet;
use cerveza_core::Product;
use clap_complete::engine::CompletionCandidate;

use crate::cli::{GlobalArgs, Output};
use crate::config::{Config, DEFAULT_REGIONS};

/// The environment variable the shell scripts set to ask cerveza for completions (its
/// own name, not clap's usual `COMPLETE`: a `COMPLETE` some other tool left in the
/// environment must not turn every cerveza run into a completion request).
pub const VAR: &str = "CERVEZA_COMPLETE";
/// A cache older than this is refreshed in the background.
const REFRESH_AFTER: Duration = Duration::from_secs(60);
/// At most one background refresh per product in this long.
const REFRESH_GUARD: Duration = Duration::from_secs(30);

/// The global options on the command line being completed (or their environment
/// variables), enough to find the config, the product and the profiles.
fn words_args() -> GlobalArgs {
    // Lossily: `std::env::args` panics on a word that is not UTF-8 (a file name, say).
    let words: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .skip_while(|a| a != "--")
        .skip(1)
        .collect();
    let flag = |short: Option<&str>, long: &str| -> Option<String> {
        let mut found = None;
        for (i, w) in words.iter().enumerate() {
            if let Some(v) = w.strip_prefix(&format!("{long}=")) {
                found = Some(v.to_owned());
            } else if w == long || short == Some(w.as_str()) {
                found = words.get(i + 1).cloned();
            } else if let Some(v) = short
                .and_then(|s| w.strip_prefix(s))
                .filter(|v| !v.is_empty() && !w.starts_with("--"))
            {
                found = Some(v.to_owned());
            }
        }
        found
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    GlobalArgs {
        product: flag(Some("-m"), "--product").or_else(|| env("CERVEZA_PRODUCT")),
        config: flag(Some("-c"), "--config")
            .or_else(|| env("CERVEZA_CONFIG"))
            .map(PathBuf::from),
        profiles: flag(None, "--profiles")
            .or_else(|| env("CERVEZA_PROFILES"))
            .map(PathBuf::from),
        regions: flag(None, "--regions")
            .or_else(|| env("CERVEZA_REGIONS"))
            .map(|r| r.split(',').map(str::to_owned).collect()),
        endpoint_url: flag(None, "--endpoint-url"),
        output: Output::Table,
        concurrency: None,
        verbose: 0,
        quiet: true,
        color: crate::cli::ColorChoice::Never,
    }
}

/// The configuration as the command line being completed would see it.
fn config() -> Option<(GlobalArgs, Config)> {
    let args = words_args();
    let config = Config::load(&args).ok()?;
    Some((args, config))
}

/// Where the host caches live.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cerveza"))
}

fn cache_file(product: &Product) -> Option<PathBuf> {
    Some(cache_dir()?.join(format!("hosts-{product}.tsv")))
}

/// One cached host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The hostname.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// Its profile.
    pub profile: String,
}

/// Writes the hosts of a complete listing (every region answered) to the cache, through
/// a temporary file and a rename. Failures only cost completions: they are ignored.
pub fn remember(product: &Product, instances: &[Instance]) {
    let Some(path) = cache_file(product) else {
        return;
    };
    let mut text = String::new();
    let mut seen = BTreeSet::new();
    for i in instances {
        let Some(name) = i.host() else { continue };
        // Tags are untrusted: only names and values that are plain words go in.
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let zone = i.zone.as_ref().map(|z| z.as_str()).unwrap_or("-");
        let profile = i.profile().filter(|p| plain(p)).unwrap_or("-");
        if plain(name) && seen.insert(name.to_owned()) {
            text.push_str(&format!("{name}\t{zone}\t{profile}\n"));
        }
    }
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".hosts-{product}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        tracing::debug!(error = %e, "could not write the completion cache");
    }
}

/// The cached hosts of a product and the cache's age; `None` without a cache.
pub fn cached(product: &Product) -> Option<(Vec<Cached>, Duration)> {
    let path = cache_file(product)?;
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    let text = std::fs::read_to_string(&path).ok()?;
    let hosts = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Cached {
                name: f.next()?.to_owned(),
                zone: f.next()?.to_owned(),
                profile: f.next()?.to_owned(),
            })
        })
        .collect();
    Some((hosts, age))
}

/// Starts `cerveza list` in the background to refresh the cache (at most once per
/// [`REFRESH_GUARD`]); never waits for it.
fn refresh(args: &GlobalArgs, product: &Product) {
    let Some(dir) = cache_dir() else { return };
    let guard = dir.join(format!("hosts-{product}.refreshing"));
    let recent = std::fs::metadata(&guard)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < REFRESH_GUARD);
    if recent || std::fs::create_dir_all(&dir).is_err() || std::fs::write(&guard, "").is_err() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--product")
        .arg(product.as_str())
        .args(["-q", "-o", "json"]);
    if let Some(c) = &args.config {
        cmd.arg("--config").arg(c);
    }
    if let Some(r) = &args.regions {
        cmd.arg("--regions").arg(r.join(","));
    }
    if let Some(e) = &args.endpoint_url {
        cmd.arg("--endpoint-url").arg(e);
    }
    cmd.arg("list")
        .env_remove(VAR)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Err(e) = cmd.spawn() {
        tracing::debug!(error = %e, "could not start the cache refresh");
    }
}

/// The cached hosts for the command line being completed, refreshing a stale cache in
/// the background.
fn hosts() -> (Vec<Cached>, Option<Config>) {
    let Some((args, config)) = config() else {
        return (Vec::new(), None);
    };
    let Some(product) = config.product.clone() else {
        return (Vec::new(), Some(config));
    };
    let (hosts, age) = cached(&product).unwrap_or((Vec::new(), Duration::MAX));
    if age > REFRESH_AFTER {
        refresh(&args, &product);
    }
    (hosts, Some(config))
}

fn candidates<I: IntoIterator<Item = String>>(
    current: &str,
    prefix: &str,
    values: I,
) -> Vec<CompletionCandidate> {
    let mut set: BTreeSet<String> = BTreeSet::new();
    for v in values {
        let full = format!("{prefix}{v}");
        if full.starts_with(current) {
            set.insert(full);
        }
    }
    set.into_iter().map(CompletionCandidate::new).collect()
}

/// The host group of a name: the name without its trailing digits.
fn group(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
}

fn profiles(config: Option<&Config>, instances_only: bool) -> Vec<String> {
    let Some(set) = config.and_then(|c| ProfileSet::load_dir(&c.profiles_dir).ok()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = set
        .instances()
        .filter(|p| !(instances_only && p.is_abstract))
        .map(|p| p.name.to_string())
        .collect();
    if !instances_only {
        names.extend(set.volumes().map(|v| v.name.clone()));
    }
    names
}

fn regions(config: Option<&Config>) -> Vec<String> {
    let mut out: BTreeSet<String> = DEFAULT_REGIONS.iter().map(|r| (*r).to_owned()).collect();
    if let Some(c) = config {
        out.extend(c.regions.iter().map(ToString::to_string));
        if let Ok(set) = ProfileSet::load_dir(&c.profiles_dir) {
            for p in set.instances() {
                out.extend(p.ami.keys().map(ToString::to_string));
            }
        }
    }
    out.into_iter().collect()
}

/// Zones: those of known hosts, and a, b and c of every region cerveza knows of.
fn zones(hosts: &[Cached], config: Option<&Config>) -> Vec<String> {
    let mut out: BTreeSet<String> = hosts
        .iter()
        .filter(|h| h.zone != "-")
        .map(|h| h.zone.clone())
        .collect();
    for r in regions(config) {
        for letter in ['a', 'b', 'c'] {
            out.insert(format!("{r}{letter}"));
        }
    }
    out.into_iter().collect()
}

/// Hostnames (for commands that take hosts, not selections).
pub fn complete_host(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let (hosts, _) = hosts();
    candidates(&current, "", hosts.into_iter().map(|h| h.name))
}

/// A selection word: hostnames, `@group`, `zone:`, `region:`, `profile:` and `!` before
/// any of them; `a,b` lists complete their last element.
pub fn complete_selection(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy().into_owned();
    let (head, word) = match current.rfind(',') {
        Some(i) => current.split_at(i + 1),
        None => ("", current.as_str()),
    };
    let (bang, word) = match word.strip_prefix('!') {
        Some(w) => ("!", w),
        None => ("", word),
    };
    let prefix = format!("{head}{bang}");
    let (hosts, config) = hosts();
    let config = config.as_ref();
    let typed = |p: &str| format!("{prefix}{p}");
    let mut out = Vec::new();
    if word.starts_with("zone:") {
        out = candidates(&current, &typed("zone:"), zones(&hosts, config));
    } else if word.starts_with("region:") {
        out = candidates(&current, &typed("region:"), regions(config));
    } else if word.starts_with("profile:") {
        out = candidates(&current, &typed("profile:"), profiles(config, true));
    } else if word.starts_with('@') {
        out = candidates(
            &current,
            &typed("@"),
            hosts.iter().map(|h| group(&h.name).to_owned()),
        );
    } else {
        out.extend(candidates(
            &current,
            &prefix,
            hosts.iter().map(|h| h.name.clone()),
        ));
        out.extend(candidates(
            &current,
            &prefix,
            ["zone:", "region:", "profile:", "@"].map(str::to_owned),
        ));
    }
    out
}

/// Instance profiles that can be launched.
pub fn complete_profile(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let config = config().map(|(_, c)| c);
    candidates(&current, "", profiles(config.as_ref(), true))
}

/// Every profile, instance and volume.
pub fn complete_any_profile(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let config = config().map(|(_, c)| c);
    candidates(&current, "", profiles(config.as_ref(), false))
}

/// Availability zones.
pub fn complete_zone(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let (hosts, config) = hosts();
    candidates(&current, "", zones(&hosts, config.as_ref()))
}

/// One region of `--regions` (the engine splits the list at its commas and puts the
/// ones before back in front).
pub fn complete_regions(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let config = config().map(|(_, c)| c);
    candidates(&current, "", regions(config.as_ref()))
}

/// The registration script for `shell`: what `cerveza completions SHELL` prints and
/// the Debian package installs. It calls back into `cerveza` (found on PATH) at each Tab.
pub fn registration(shell: crate::cli::Shell, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
    let completer: &dyn EnvCompleter = match shell {
        crate::cli::Shell::Bash => &Bash,
        crate::cli::Shell::Zsh => &Zsh,
        crate::cli::Shell::Fish => &Fish,
        crate::cli::Shell::Powershell => &Powershell,
        crate::cli::Shell::Elvish => &Elvish,
    };
    completer.write_registration(VAR, "cerveza", "cerveza", "cerveza", out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the engine offers for `words` (the last one being completed).
    fn engine(words: &[&str]) -> Vec<String> {
        let args: Vec<std::ffi::OsString> = words.iter().map(Into::into).collect();
        let index = args.len() - 1;
        clap_complete::engine::complete(&mut crate::cli::command(), args, index, None)
            .unwrap()
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_engine_completes_commands_flags_values_and_the_cached_fleet() {
        // The only test of this binary that touches these variables.
        let dir = tempfile::tempdir().unwrap();
        let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/profiles");
        std::env::set_var("XDG_CACHE_HOME", dir.path());
        std::env::set_var("XDG_CONFIG_HOME", dir.path().join("none"));
        std::env::set_var("CERVEZA_PRODUCT", "noc");
        std::env::set_var("CERVEZA_PROFILES", profiles);
        let cache = dir.path().join("cerveza");
        std::fs::create_dir_all(&cache).unwrap();
        // Fresh, so no background refresh starts (it would run this test binary).
        std::fs::write(
            cache.join("hosts-noc.tsv"),
            "web01\tus-east-1b\tWeb\nweb02\tus-east-1b\tWeb\ndb01\teu-west-1a\tMysql\n",
        )
        .unwrap();
        std::fs::write(cache.join("hosts-noc.refreshing"), "").unwrap();

        assert!(engine(&["cerveza", "st"]).contains(&"stop".to_owned()));
        assert!(engine(&["cerveza", "stop", "--no-w"]).contains(&"--no-wait".to_owned()));
        assert_eq!(
            engine(&["cerveza", "--color", ""]),
            ["auto", "always", "never"]
        );
        assert_eq!(engine(&["cerveza", "stop", "w"]), ["web01", "web02"]);
        assert_eq!(engine(&["cerveza", "list", "@"]), ["@db", "@web"]);
        assert_eq!(engine(&["cerveza", "list", "web01,d"]), ["web01,db01"]);
        assert_eq!(engine(&["cerveza", "list", "profile:M"]), ["profile:Mysql"]);
        assert_eq!(
            engine(&["cerveza", "list", "region:ap-s"]),
            ["region:ap-southeast-1"]
        );
        assert!(engine(&["cerveza", "start", "x", "--zone", "eu-west-1"])
            .contains(&"eu-west-1a".to_owned()));
        assert_eq!(
            engine(&["cerveza", "list", "--regions", "us-east-1,eu"]),
            ["us-east-1,eu-west-1"]
        );
        assert_eq!(
            engine(&["cerveza", "profiles", "show", "M"]),
            ["Mysql", "MysqlRaid10"]
        );
        assert!(engine(&["cerveza", "start", "x", "--profile", ""])
            .iter()
            .all(|p| p != "UbuntuBase"));
    }

    #[test]
    fn groups_drop_trailing_digits_only() {
        assert_eq!(group("dev-mysql01"), "dev-mysql");
        assert_eq!(group("web"), "web");
        assert_eq!(group("x2y3"), "x2y");
    }

    #[test]
    fn candidates_keep_the_typed_prefix_and_filter_by_it() {
        let c: Vec<String> = candidates(
            "us-east-1,eu",
            "us-east-1,",
            ["eu-west-1", "us-west-1", "eu-central-1"].map(str::to_owned),
        )
        .iter()
        .map(|c| c.get_value().to_string_lossy().into_owned())
        .collect();
        assert_eq!(c, ["us-east-1,eu-central-1", "us-east-1,eu-west-1"]);
    }
}
