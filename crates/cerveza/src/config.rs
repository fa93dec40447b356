//! Layered configuration: flags, then `CERVEZA_*` environment variables (both through
//! clap), then the TOML config file, then defaults.
//!
//! ```toml
//! product = "noc"
//! regions = ["us-east-1", "ap-southeast-1"]   # or one [regions.<name>] table each:
//! # [regions.us-east-1]
//! # vpc = "vpc-0abc1234"           # hosts launch here (default: the region's default VPC)
//! # jump-host = "vpn.us-east-1.noc.public"
//! profiles = "profiles"            # relative to this file
//! endpoint-url = "http://127.0.0.1:5000"
//! concurrency = 512                # hosts worked on at once (waits are batched, requests paced)
//! region-timeout = "20s"
//! wait-timeout = "10m"
//! poll-interval = "2s"
//! max-request-rate = 0             # extra cap: AWS requests a second per region (0: none; EC2's own buckets always apply)
//! max-attempts = 4                 # tries per AWS call, first included (throttling, 5xx, resets)
//!
//! [registry]
//! table = "cerveza-hosts"
//! region = "us-east-1"
//! timeout = "5s"                  # every call, retries included; then existing hosts go on from tags
//!
//! [userdata]                       # cerveza's own cloud-init parts
//! hostname = true                  # hostname, fqdn, /etc/hosts
//! resolv-conf = true               # on by default when nameservers are set
//! nameservers = ["10.0.0.2"]
//! puppet = true                    # puppet from cron at a minute derived from the hostname
//! puppet-server = "puppet.noc.private"
//! ldap-client = true               # nslcd with the host's pam filter; on when [directory] is set
//! ldap-client-uri = "ldaps://ldap.noc.private"   # the default: ldaps://ldap.<product>.private
//!
//! [directory]                      # OpenLDAP: DNS records and user grants
//! uris = ["ldaps://ldap1.noc.example", "ldaps://ldap2.noc.example"]   # tried in order
//! base = "dc=noc,dc=example"
//! bind-dn = "cn=cerveza,dc=noc,dc=example"
//! bind-password-file = "ldap.password"   # or CERVEZA_LDAP_PASSWORD; never a flag
//! starttls = false
//! timeout = "3s"
//!
//! [dns]
//! backend = "ldap"                 # default when [directory] is set; "route53"; "none"
//! vpc-id = "vpc-0abc"              # route53: the VPC of the private zone
//! vpc-region = "us-east-1"
//! public-zone = "noc.example.com"  # route53: public names in your delegated zone (or its Z… id)
//! wait = "2m"                      # lifecycle commands wait until the name servers serve their changes
//!
//! [backup]                         # backup, restore, move, doctor
//! copy-to = ["us-west-1"]          # every backup's set is copied there too (backup --copy-to)
//! max-age = "1d"                   # doctor: a host with data whose newest complete set is older
//!
//! [release]                        # release push/list/deploy
//! bucket = "acme-releases-{region}"  # default: cerveza-<product>-<account id>-<region>
//!
//! [export]                         # cerveza export
//! address = "private"              # or "public"
//! ssh-user = "ubuntu"
//! jump-host = "vpn.noc.public"
//! [export.ganglia]
//! base-port = 8630
//! ports = { dev = 8630, mysql = 8631 }
//! [export.nagios]
//! services = [{ hostgroup = "sg-mysql", description = "MySQL", check = "check_mysql" }]
//! [export.prometheus]
//! port = 9100
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use cerveza_core::{Product, Region};
use serde::Deserialize;

use crate::cli::GlobalArgs;

/// The regions of the paper, searched when none are configured.
pub const DEFAULT_REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-1",
    "eu-west-1",
    "ap-southeast-1",
    "ap-northeast-1",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    product: Option<String>,
    regions: Option<RegionsConfig>,
    profiles: Option<PathBuf>,
    endpoint_url: Option<String>,
    concurrency: Option<usize>,
    region_timeout: Option<String>,
    wait_timeout: Option<String>,
    poll_interval: Option<String>,
    max_request_rate: Option<u32>,
    max_attempts: Option<u32>,
    #[serde(default)]
    registry: RegistryConfig,
    #[serde(default)]
    userdata: UserDataConfig,
    #[serde(default)]
    export: cerveza_export::Options,
    #[serde(default)]
    directory: DirectoryConfig,
    #[serde(default)]
    dns: DnsConfig,
    #[serde(default)]
    remote: RemoteConfig,
    #[serde(default)]
    release: ReleaseConfig,
    #[serde(default)]
    backup: BackupConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BackupConfig {
    copy_to: Option<Vec<String>>,
    max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ReleaseConfig {
    bucket: Option<String>,
}

/// `regions = ["us-east-1", …]`, or one `[regions.<name>]` table per region (in file
/// order) with that region's settings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RegionsConfig {
    List(Vec<String>),
    Tables(toml::Table),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegionConfig {
    jump_host: Option<String>,
    vpc: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RemoteConfig {
    persist: Option<String>,
    known_hosts: Option<PathBuf>,
    host_keys: Option<HostKeys>,
}

/// Who checks host keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeys {
    /// cerveza: keys from the console output, by hostname, strictly checked.
    Cerveza,
    /// The user's ssh config, as it is.
    Ssh,
}

/// How `remote`, `ssh`, `copy` and `doctor` reach hosts.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// How long an idle master connection stays (`None`: no reuse).
    pub persist: Option<Duration>,
    /// cerveza's known_hosts file (`None`: host keys are left to the user's ssh config).
    pub known_hosts: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DirectoryConfig {
    uris: Option<Vec<String>>,
    base: Option<String>,
    bind_dn: Option<String>,
    bind_password: Option<String>,
    bind_password_file: Option<PathBuf>,
    #[serde(default)]
    starttls: bool,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DnsConfig {
    backend: Option<DnsBackend>,
    vpc_id: Option<String>,
    vpc_region: Option<String>,
    public_zone: Option<String>,
    wait: Option<String>,
}

/// Where host names are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsBackend {
    /// Nowhere.
    None,
    /// LDAP, for PowerDNS or BIND with an LDAP backend.
    Ldap,
    /// Route53 hosted zones.
    Route53,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UserDataConfig {
    hostname: Option<bool>,
    resolv_conf: Option<bool>,
    #[serde(default)]
    nameservers: Vec<String>,
    puppet: Option<bool>,
    puppet_server: Option<String>,
    ldap_client: Option<bool>,
    ldap_client_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegistryConfig {
    table: Option<String>,
    region: Option<String>,
    timeout: Option<String>,
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The product, when one was given anywhere.
    pub product: Option<Product>,
    /// Regions searched by `list` and `show`.
    pub regions: Vec<Region>,
    /// The profiles directory.
    pub profiles_dir: PathBuf,
    /// Endpoint override.
    pub endpoint_url: Option<String>,
    /// Hosts handled at once.
    pub concurrency: usize,
    /// Per-region limit of `list`.
    pub region_timeout: Duration,
    /// Longest wait for a state.
    pub wait_timeout: Duration,
    /// First poll interval while waiting.
    pub poll_interval: Duration,
    /// AWS requests per second per region (0: no limit).
    pub max_request_rate: u32,
    /// Tries per AWS call.
    pub max_attempts: u32,
    /// Registry table name.
    pub registry_table: String,
    /// Registry home region.
    pub registry_region: Region,
    /// Longest a registry call may take, retries included, before cerveza goes on
    /// without it (existing hosts) or gives up (new ones).
    pub registry_timeout: Duration,
    /// Cerveza's own user-data parts.
    pub userdata: cerveza_userdata::Settings,
    /// Options of `cerveza export`.
    pub export: cerveza_export::Options,
    /// The LDAP directory, when configured.
    pub directory: Option<cerveza_directory::Settings>,
    /// Where host names are published.
    pub dns: DnsBackend,
    /// The VPC (id, region) Route53 private zones are associated with.
    pub dns_vpc: Option<(String, String)>,
    /// Route53: the user's hosted zone (name or `Z…` id) for the public names, instead
    /// of `<product>.public`.
    pub dns_public_zone: Option<String>,
    /// How long lifecycle commands wait for their DNS changes to be served; `None`:
    /// they do not wait (`cerveza dns sync --wait` does).
    pub dns_wait: Option<Duration>,
    /// Each region's own jump host (`[regions.<name>] jump-host`), over `[export]`'s.
    pub jump_hosts: std::collections::BTreeMap<Region, String>,
    /// The VPC hosts launch into, per region (`[regions.<name>] vpc`; a region not
    /// listed: its default VPC).
    pub vpcs: std::collections::BTreeMap<Region, String>,
    /// Connection reuse and host keys.
    pub remote: RemoteSettings,
    /// The release buckets' name, with `{region}` (and `{product}`, `{account}`) in it;
    /// `None`: `cerveza-<product>-<account>-<region>`.
    pub release_bucket: Option<String>,
    /// `[backup] copy-to`: regions every backup is copied to.
    pub backup_copy_to: Vec<Region>,
    /// `[backup] max-age`: doctor warns about a host with data whose newest complete
    /// set is older (default 1 day).
    pub backup_max_age: Duration,
}

/// A whole number from the environment variable `var`, if set.
fn env_number(var: &str) -> Result<Option<u32>> {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .with_context(|| format!("{var}={v:?} is not a whole number"))
        })
        .transpose()
}

/// `[dns] public-zone`: a hosted zone id (`Z…`) or a domain name of lowercase labels.
fn check_public_zone(zone: &str) -> Result<()> {
    let id = zone.len() >= 5
        && zone
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let name = zone.trim_end_matches('.');
    let domain = name.len() <= 253
        && name.split('.').count() >= 2
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if id || domain {
        Ok(())
    } else {
        bail!("[dns] public-zone {zone:?} is neither a hosted zone id (Z0123456789ABCDEFGHIJ) nor a domain name (noc.example.com, lowercase)")
    }
}

/// Parses `20s`, `10m`, `1h 30m`.
pub fn parse_duration(what: &str, s: &str) -> Result<Duration> {
    humantime::parse_duration(s)
        .with_context(|| format!("{what} {s:?} is not a duration (examples: 500ms, 20s, 10m)"))
}

/// `$XDG_CONFIG_HOME/cerveza/config.toml` (or `~/.config/…`).
pub fn default_config_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cerveza").join("config.toml")
}

/// `$XDG_STATE_HOME/cerveza` (or `~/.local/state/cerveza`): what cerveza learns and
/// keeps for the user (the host keys).
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cerveza")
}

/// A jump host as ssh's `-J` takes it (`[user@]host[:port]`, comma-separated hops):
/// nothing that could become another option.
fn checked_jump_host(region: &str, j: String) -> Result<String> {
    let ok = !j.is_empty()
        && !j.starts_with('-')
        && j.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._@:,[]".contains(&b));
    if !ok {
        bail!("[regions.{region}] jump-host {j:?} is not [user@]host[:port]");
    }
    Ok(j)
}

/// The directory settings: `CERVEZA_LDAP_*` environment variables over the file. The
/// password comes from `CERVEZA_LDAP_PASSWORD`, a file (`CERVEZA_LDAP_PASSWORD_FILE` or
/// `bind-password-file`), or `bind-password`; never from the command line.
fn directory_settings(
    file: DirectoryConfig,
    base_dir: &Path,
) -> Result<Option<cerveza_directory::Settings>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let uris: Vec<String> = match env("CERVEZA_LDAP_URIS") {
        Some(v) => v
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None => file.uris.unwrap_or_default(),
    };
    let Some(base) = env("CERVEZA_LDAP_BASE").or(file.base) else {
        if !uris.is_empty() {
            bail!("[directory] has uris but no base DN (base = \"dc=noc,dc=example\")");
        }
        return Ok(None);
    };
    if uris.is_empty() {
        bail!("[directory] has a base DN but no uris");
    }
    for u in &uris {
        if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
            bail!("LDAP URI {u:?} must start with ldap:// or ldaps://");
        }
    }
    let password_file = env("CERVEZA_LDAP_PASSWORD_FILE")
        .map(PathBuf::from)
        .or_else(|| {
            file.bind_password_file
                .map(|p| if p.is_relative() { base_dir.join(p) } else { p })
        });
    let password = match (
        env("CERVEZA_LDAP_PASSWORD"),
        password_file,
        file.bind_password,
    ) {
        (Some(p), _, _) => Some(p),
        (None, Some(f), _) => Some(
            std::fs::read_to_string(&f)
                .with_context(|| format!("reading the LDAP password file {}", f.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        (None, None, p) => p,
    };
    Ok(Some(cerveza_directory::Settings {
        uris,
        base,
        bind_dn: env("CERVEZA_LDAP_BIND_DN").or(file.bind_dn),
        password: password.map(|p| {
            crate::redact::add_secret(&p);
            cerveza_directory::Secret::new(p)
        }),
        starttls: file.starttls,
        timeout: match file.timeout {
            Some(t) => parse_duration("[directory] timeout", &t)?,
            None => Duration::from_secs(3),
        },
    }))
}

impl Config {
    /// Resolves the configuration from flags/env (`args`) and the config file.
    pub fn load(args: &GlobalArgs) -> Result<Self> {
        let (path, explicit) = match &args.config {
            Some(p) => (p.clone(), true),
            None => (default_config_path(), false),
        };
        let file: FileConfig = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                FileConfig::default()
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading config file {}", path.display()))
            }
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();

        let product = args
            .product
            .clone()
            .or(file.product)
            .map(|p| Product::parse(&p))
            .transpose()?;
        let mut jump_hosts = std::collections::BTreeMap::new();
        let mut vpcs = std::collections::BTreeMap::new();
        let file_regions = match file.regions {
            None => None,
            Some(RegionsConfig::List(l)) => Some(l),
            Some(RegionsConfig::Tables(t)) => {
                let mut names = Vec::new();
                for (name, value) in t {
                    let settings = RegionConfig::deserialize(value).with_context(|| {
                        format!("[regions.{name}] in config file {}", path.display())
                    })?;
                    if let Some(j) = settings.jump_host {
                        jump_hosts.insert(Region::parse(&name)?, checked_jump_host(&name, j)?);
                    }
                    if let Some(v) = settings.vpc {
                        if !cerveza_core::network::is_id(&v, "vpc-") {
                            bail!(
                                "[regions.{name}] vpc {v:?} in config file {} is not a VPC id (vpc- and 8 or 17 hex digits)",
                                path.display()
                            );
                        }
                        vpcs.insert(Region::parse(&name)?, v);
                    }
                    names.push(name);
                }
                Some(names)
            }
        };
        let region_names: Vec<String> = args
            .regions
            .clone()
            .or(file_regions)
            .unwrap_or_else(|| DEFAULT_REGIONS.iter().map(|s| (*s).to_owned()).collect());
        let mut regions = Vec::new();
        for r in region_names
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
        {
            let region = Region::parse(r)?;
            if !regions.contains(&region) {
                regions.push(region);
            }
        }
        if regions.is_empty() {
            bail!("no regions configured (--regions, CERVEZA_REGIONS or `regions =` in the config file)");
        }
        let profiles_dir = match (&args.profiles, file.profiles) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) if p.is_relative() => base.join(p),
            (None, Some(p)) => p,
            (None, None) => base.join("profiles"),
        };
        let duration = |what: &str, v: Option<String>, default: u64| -> Result<Duration> {
            v.map(|s| parse_duration(what, &s))
                .transpose()
                .map(|d| d.unwrap_or(Duration::from_secs(default)))
        };
        let concurrency = args.concurrency.or(file.concurrency).unwrap_or(512);
        if concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        let directory = directory_settings(file.directory, &base)?;
        let env_backend = match std::env::var("CERVEZA_DNS_BACKEND").ok().as_deref() {
            None | Some("") => None,
            Some("ldap") => Some(DnsBackend::Ldap),
            Some("route53") => Some(DnsBackend::Route53),
            Some("none") => Some(DnsBackend::None),
            Some(other) => bail!("CERVEZA_DNS_BACKEND={other:?}: use ldap, route53 or none"),
        };
        let dns_vpc = match (
            std::env::var("CERVEZA_DNS_VPC_ID").ok().or(file.dns.vpc_id),
            std::env::var("CERVEZA_DNS_VPC_REGION")
                .ok()
                .or(file.dns.vpc_region),
        ) {
            (Some(id), Some(region)) => Some((id, Region::parse(&region)?.to_string())),
            (None, None) => None,
            _ => bail!("[dns] vpc-id and vpc-region go together"),
        };
        let dns = match (env_backend.or(file.dns.backend), &directory) {
            (Some(DnsBackend::Ldap), None) => bail!(
                "[dns] backend = \"ldap\" needs [directory] uris and base (or CERVEZA_LDAP_URIS and CERVEZA_LDAP_BASE)"
            ),
            (Some(b), _) => b,
            (None, Some(_)) => DnsBackend::Ldap,
            (None, None) => DnsBackend::None,
        };
        let dns_public_zone = std::env::var("CERVEZA_DNS_PUBLIC_ZONE")
            .ok()
            .filter(|z| !z.is_empty())
            .or(file.dns.public_zone);
        if let Some(zone) = &dns_public_zone {
            if dns != DnsBackend::Route53 {
                bail!("[dns] public-zone = {zone:?} is for backend = \"route53\" (LDAP-served names live under <product>.public)");
            }
            check_public_zone(zone)?;
        }
        let dns_wait = match std::env::var("CERVEZA_DNS_WAIT").ok().or(file.dns.wait) {
            None => None,
            Some(text) => match duration("[dns] wait", Some(text), 0)? {
                d if d.is_zero() => None,
                d => Some(d),
            },
        };
        let ud = file.userdata;
        let userdata = cerveza_userdata::Settings {
            hostname: ud.hostname.unwrap_or(true),
            resolv_conf: ud.resolv_conf.unwrap_or(!ud.nameservers.is_empty()),
            nameservers: ud.nameservers,
            puppet: ud.puppet.unwrap_or(true),
            puppet_server: ud.puppet_server,
            ldap_client: match (ud.ldap_client, &directory) {
                (Some(true), None) => {
                    bail!("[userdata] ldap-client needs [directory] (its base DN)")
                }
                (Some(false), _) | (None, None) => None,
                (_, Some(d)) => Some(cerveza_userdata::LdapClient {
                    uri: ud.ldap_client_uri,
                    base: d.base.clone(),
                }),
            },
        };
        userdata
            .validate()
            .with_context(|| format!("[userdata] in config file {}", path.display()))?;
        let remote = RemoteSettings {
            persist: match duration(
                "[remote] persist",
                std::env::var("CERVEZA_REMOTE_PERSIST")
                    .ok()
                    .or(file.remote.persist),
                600,
            )? {
                d if d.is_zero() => None,
                d => Some(d),
            },
            known_hosts: match file.remote.host_keys.unwrap_or(HostKeys::Cerveza) {
                HostKeys::Ssh => None,
                HostKeys::Cerveza => Some(
                    match std::env::var_os("CERVEZA_KNOWN_HOSTS")
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                        .or(file.remote.known_hosts)
                    {
                        Some(p) if p.is_relative() => base.join(p),
                        Some(p) => p,
                        None => default_state_dir().join("known_hosts"),
                    },
                ),
            },
        };
        let mut export = file.export;
        export.region_jump_hosts = jump_hosts
            .iter()
            .map(|(r, j)| (r.to_string(), j.clone()))
            .collect();
        // `~/…` where it can: the exported file works for the same user anywhere.
        export.known_hosts = remote.known_hosts.as_deref().map(crate::output::tilde);
        let release_bucket = file.release.bucket;
        if let Some(b) = &release_bucket {
            if !b.contains("{region}") {
                bail!(
                    "[release] bucket {b:?} in config file {}: one bucket per region, so the name needs {{region}} (and may use {{product}}, {{account}})",
                    path.display()
                );
            }
        }
        let backup_copy_to = file
            .backup
            .copy_to
            .unwrap_or_default()
            .iter()
            .map(|r| {
                Region::parse(r).map_err(|e| {
                    anyhow::anyhow!("[backup] copy-to in config file {}: {e}", path.display())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let backup_max_age = match &file.backup.max_age {
            Some(d) => parse_duration("[backup] max-age", d)?,
            None => Duration::from_secs(86_400),
        };
        Ok(Self {
            release_bucket,
            backup_copy_to,
            backup_max_age,
            jump_hosts,
            vpcs,
            remote,
            directory,
            dns,
            dns_vpc,
            dns_public_zone,
            dns_wait,
            export,
            userdata,
            product,
            regions,
            profiles_dir,
            // AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> are left to the SDK, which
            // gives a service's own variable precedence; set, they win over the file.
            endpoint_url: args.endpoint_url.clone().or_else(|| {
                std::env::var_os("AWS_ENDPOINT_URL")
                    .filter(|v| !v.is_empty())
                    .map_or(file.endpoint_url, |_| None)
            }),
            concurrency,
            region_timeout: duration(
                "region-timeout",
                std::env::var("CERVEZA_REGION_TIMEOUT")
                    .ok()
                    .or(file.region_timeout),
                20,
            )?,
            wait_timeout: duration("wait-timeout", file.wait_timeout, 600)?,
            poll_interval: match std::env::var("CERVEZA_POLL_INTERVAL")
                .ok()
                .or(file.poll_interval)
            {
                Some(s) => parse_duration("poll-interval", &s)?,
                None => Duration::from_secs(2),
            },
            max_request_rate: env_number("CERVEZA_MAX_REQUEST_RATE")?
                .or(file.max_request_rate)
                .unwrap_or(0),
            max_attempts: match env_number("CERVEZA_MAX_ATTEMPTS")?
                .or(file.max_attempts)
                .unwrap_or(4)
            {
                0 => bail!("max-attempts must be at least 1"),
                n => n,
            },
            registry_table: std::env::var("CERVEZA_REGISTRY_TABLE")
                .ok()
                .or(file.registry.table)
                .unwrap_or_else(|| "cerveza-hosts".into()),
            registry_region: Region::parse(
                &std::env::var("CERVEZA_REGISTRY_REGION")
                    .ok()
                    .or(file.registry.region)
                    .unwrap_or_else(|| "us-east-1".into()),
            )?,
            registry_timeout: duration(
                "[registry] timeout",
                std::env::var("CERVEZA_REGISTRY_TIMEOUT")
                    .ok()
                    .or(file.registry.timeout),
                5,
            )?,
        })
    }

    /// The product, or an error that says where to set it.
    pub fn product(&self) -> Result<&Product> {
        self.product.as_ref().ok_or_else(|| {
            crate::exit::Coded::new(
                crate::exit::USAGE,
                "no product given: pass -m/--product (e.g. -m noc), set CERVEZA_PRODUCT, or `product =` in the config file",
            )
            .into()
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text)?;
        let cli = crate::cli::Cli::try_parse_from([
            "cerveza",
            "--config",
            path.to_str().unwrap_or(""),
            "list",
        ])?;
        Config::load(&cli.global)
    }

    #[test]
    fn regions_as_tables_keep_their_order_and_their_gateways() -> Result<()> {
        let c = load(
            "[regions.us-east-1]\njump-host = \"gw-us.noc.public\"\n[regions.eu-west-1]\n[regions.ap-southeast-1]\njump-host = \"ops@gw-ap.noc.public:2222\"\n",
        )?;
        let names: Vec<&str> = c.regions.iter().map(Region::as_str).collect();
        assert_eq!(names, ["us-east-1", "eu-west-1", "ap-southeast-1"]);
        assert_eq!(c.jump_hosts.len(), 2);
        assert_eq!(
            c.jump_hosts
                .get(&Region::parse("us-east-1")?)
                .map(String::as_str),
            Some("gw-us.noc.public")
        );
        assert_eq!(c.export.region_jump_hosts.len(), 2);
        assert_eq!(load("regions = [\"us-east-1\"]\n")?.regions.len(), 1);
        Ok(())
    }

    #[test]
    fn bad_region_tables_are_refused_with_their_name() {
        let e = format!(
            "{:#}",
            load("[regions.us-east-1]\njumphost = \"x\"\n").unwrap_err()
        );
        assert!(
            e.contains("[regions.us-east-1]") && e.contains("jumphost"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            load("[regions.us-east-1]\njump-host = \"-oProxyCommand=x\"\n").unwrap_err()
        );
        assert!(e.contains("is not [user@]host[:port]"), "{e}");
        let e = format!("{:#}", load("[regions.mars-1]\n").unwrap_err());
        assert!(e.contains("mars"), "{e}");
    }

    #[test]
    fn remote_settings() -> Result<()> {
        let c = load("[remote]\npersist = \"0s\"\nhost-keys = \"ssh\"\n")?;
        assert_eq!(c.remote.persist, None);
        assert_eq!(c.remote.known_hosts, None);
        assert_eq!(c.export.known_hosts, None);
        let c = load("[remote]\npersist = \"2m\"\nknown-hosts = \"keys/known\"\n")?;
        assert_eq!(c.remote.persist, Some(Duration::from_secs(120)));
        assert!(c
            .remote
            .known_hosts
            .as_ref()
            .is_some_and(|k| k.ends_with("keys/known") && k.is_absolute()));
        assert!(load("[remote]\nhost-keys = \"tofu\"\n").is_err());
        Ok(())
    }

    #[test]
    fn a_public_zone_is_a_zone_id_or_a_lowercase_domain() {
        for ok in [
            "noc.example.com",
            "noc.example.com.",
            "Z0123456789ABCDEFGHIJ",
        ] {
            assert!(check_public_zone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "Noc.Example.com",
            "example",
            "-a.example.com",
            "a..b",
            "noc example.com",
        ] {
            let e = check_public_zone(bad).unwrap_err().to_string();
            assert!(e.contains("neither a hosted zone id"), "{bad}: {e}");
        }
    }
}
