//! One module per command; this one holds what they share: the backends, the profile
//! set, the lifecycle settings and how per-host results are reported.

pub mod access;
pub mod backup;
pub mod copy;
pub mod dns;
pub mod doctor;
pub mod existing;
pub mod export;
pub(crate) mod freeze;
pub mod hostkeys;
pub mod iam_policy;
pub mod init;
pub mod list;
pub mod man;
pub mod plan;
pub mod profiles;
pub mod registry;
pub mod release;
pub mod remote;
pub mod restore;
pub mod show;
pub mod start;
pub mod userdata;
pub mod volumes;

use std::fmt;

use anyhow::{Context as _, Result};
use cerveza_aws::{AwsOptions, DynamoRegistry, Ec2};
use cerveza_core::fleet;
use cerveza_core::lifecycle::{self, Results, Settings};
use cerveza_core::ports::Dns;
use cerveza_core::profile::{ProfileError, ProfileSet};
use cerveza_core::selection::{self, Selection};
use cerveza_core::{Error, ErrorKind, Hostname};
use serde::Serialize;

use crate::cli::{GlobalArgs, Output, WaitArgs};
use crate::config::{Config, DnsBackend};
use crate::exit;
use crate::output::{self, or_dash, Table};

/// The pause before asking the cloud again: `first` (at least 200 ms), then doubling up
/// to 10 s, each jittered by ±50 % so that the hosts of one command do not all ask
/// again in the same instant.
pub(crate) struct Backoff(std::time::Duration);

impl Backoff {
    pub(crate) fn new(first: std::time::Duration) -> Self {
        Self(first.max(std::time::Duration::from_millis(200)))
    }

    /// The longest the next pause can be.
    pub(crate) fn next(&self) -> std::time::Duration {
        self.0.mul_f64(1.5)
    }

    pub(crate) async fn pause(&mut self) {
        tokio::time::sleep(self.0.mul_f64(0.5 + fastrand::f64())).await;
        self.0 = (self.0 * 2).min(std::time::Duration::from_secs(10));
    }
}

/// What every command gets.
pub struct Ctx {
    /// Resolved configuration.
    pub config: Config,
    /// Output format.
    pub output: Output,
    /// No progress output.
    pub quiet: bool,
}

/// The AWS backends.
pub struct Backends {
    /// EC2 in every region.
    pub ec2: Ec2,
    /// The registry table.
    pub registry: DynamoRegistry,
    sdk: aws_config::SdkConfig,
}

/// Every problem of a profiles directory at once.
#[derive(Debug)]
pub struct ProfilesInvalid(pub Vec<ProfileError>);

impl fmt::Display for ProfilesInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 50;
        writeln!(f, "the profiles have {} problem(s):", self.0.len())?;
        for e in self.0.iter().take(SHOWN) {
            writeln!(f, "  {e}")?;
        }
        if self.0.len() > SHOWN {
            writeln!(f, "  … and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl std::error::Error for ProfilesInvalid {}

impl Ctx {
    /// Builds the context from the global options.
    pub fn new(args: &GlobalArgs) -> Result<Self> {
        Ok(Self {
            config: Config::load(args).map_err(exit::InvalidConfig)?,
            output: args.output,
            quiet: args.quiet,
        })
    }

    /// The release buckets: `[release] bucket`, or `<prefix>-<product>-<account>-<region>`
    /// (`CERVEZA_RELEASE_PREFIX`, default `cerveza`).
    pub fn releases(&self, backends: &Backends) -> cerveza_aws::Releases {
        if let Some(name) = &self.config.release_bucket {
            return cerveza_aws::Releases::named(backends.sdk.clone(), name.clone());
        }
        let prefix = std::env::var("CERVEZA_RELEASE_PREFIX").unwrap_or_else(|_| "cerveza".into());
        cerveza_aws::Releases::new(backends.sdk.clone(), prefix)
    }

    /// Connects the AWS backends (no network call yet).
    pub async fn backends(&self) -> Backends {
        let opts = AwsOptions {
            home_region: self.config.registry_region.to_string(),
            endpoint_url: self.config.endpoint_url.clone(),
            max_request_rate: self.config.max_request_rate,
            max_attempts: self.config.max_attempts,
            // One page of a region's listing may take as long as the region may; the
            // region's own limit is the one that fires (and says so).
            attempt_timeout: self
                .config
                .region_timeout
                .max(AwsOptions::default().attempt_timeout),
            operation_timeout: (self.config.region_timeout * 3)
                .max(AwsOptions::default().operation_timeout),
            ..AwsOptions::default()
        };
        let sdk = cerveza_aws::sdk_config(&opts).await;
        Backends {
            ec2: Ec2::new(sdk.clone()),
            registry: DynamoRegistry::new(
                &sdk,
                self.config.registry_table.clone(),
                self.config.registry_timeout,
            ),
            sdk,
        }
    }

    /// One host as `show` sees it: registry record and instance (by tags when the
    /// registry has no record).
    pub async fn view(
        &self,
        backends: &Backends,
        host: &Hostname,
    ) -> Result<fleet::HostView, Error> {
        let product = self.config.product().map_err(|e| Error::Usage {
            host: host.to_string(),
            message: e.to_string(),
        })?;
        fleet::show(
            &backends.ec2,
            &backends.registry,
            product,
            &self.config.regions,
            host,
        )
        .await
    }

    /// The product's live instances in every configured region, each region bounded by
    /// the region timeout; a region that does not answer is a warning (and is in the
    /// listing's `failed_regions`).
    pub async fn live_fleet(&self, backends: &Backends) -> Result<fleet::Listing> {
        let listing = fleet::list(
            &backends.ec2,
            self.config.product()?,
            &self.config.regions,
            &Selection::all(),
            false,
            self.config.region_timeout,
        )
        .await;
        for (region, e) in &listing.failed_regions {
            eprintln!(
                "{} region {region} left out: {e}",
                crate::colour::warning_label()
            );
        }
        Ok(listing)
    }

    /// Connects to the configured directory.
    pub async fn directory(&self) -> Result<cerveza_directory::Directory> {
        let settings = self.config.directory.clone().ok_or_else(|| exit::Coded::new(
            exit::USAGE,
            "no directory configured: set [directory] uris and base in the config file (or CERVEZA_LDAP_URIS and CERVEZA_LDAP_BASE)",
        ))?;
        Ok(cerveza_directory::Directory::connect(settings).await?)
    }

    /// The configured DNS backend (LDAP or Route53), `None` when there is none.
    pub async fn dns_backend(&self, backends: &Backends) -> Result<Option<Box<dyn Dns>>> {
        Ok(match self.config.dns {
            DnsBackend::None => None,
            DnsBackend::Ldap => Some(Box::new(self.directory().await?)),
            DnsBackend::Route53 => Some(Box::new(
                cerveza_aws::Route53Dns::new(&backends.sdk, self.config.dns_vpc.clone())
                    .with_public_zone(self.config.dns_public_zone.clone())
                    .with_regions(
                        self.config
                            .regions
                            .iter()
                            .map(|r| (r.clone(), self.config.vpcs.get(r).cloned()))
                            .collect(),
                    ),
            )),
        })
    }

    /// The DNS backend of lifecycle commands. An unreachable directory does not stop
    /// hosts from starting (no single point of failure): it is a warning, and
    /// `cerveza dns sync` catches up later.
    pub async fn dns(&self, backends: &Backends) -> Option<Box<dyn Dns>> {
        match self.dns_backend(backends).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{} DNS names will not be updated ({e:#}); run `cerveza dns sync` once the directory is back", crate::colour::warning_label());
                None
            }
        }
    }

    /// Loads and validates the profiles directory.
    pub fn profiles(&self) -> Result<ProfileSet> {
        ProfileSet::load_dir(&self.config.profiles_dir)
            .map_err(|errs| anyhow::Error::new(ProfilesInvalid(errs)))
            .with_context(|| {
                format!(
                    "loading profiles from {}",
                    self.config.profiles_dir.display()
                )
            })
    }

    /// Lifecycle settings for a command that may wait.
    pub fn settings(&self, wait: &WaitArgs) -> Result<Settings> {
        self.settings_for(self.config.product()?, wait)
    }

    /// [`Self::settings`] for `product` (a fleet file's, when no product is configured).
    pub fn settings_for(
        &self,
        product: &cerveza_core::Product,
        wait: &WaitArgs,
    ) -> Result<Settings> {
        let mut s = Settings::new(product.clone());
        s.wait = !wait.no_wait;
        s.wait_timeout = wait.wait_timeout.unwrap_or(self.config.wait_timeout);
        s.poll_initial = self.config.poll_interval;
        s.poll_max = (self.config.poll_interval * 8).max(s.poll_initial);
        s.concurrency = self.config.concurrency;
        s.operator = operator();
        s.regions.clone_from(&self.config.regions);
        s.region_timeout = self.config.region_timeout;
        s.vpcs.clone_from(&self.config.vpcs);
        #[cfg(feature = "test-hooks")]
        {
            s.failpoint = match std::env::var("CERVEZA_FAILPOINT").as_deref() {
                Ok("after-launch") => Some(lifecycle::Failpoint::AfterLaunch),
                Ok("after-restore-volumes") => Some(lifecycle::Failpoint::AfterRestoreVolumes),
                Ok("after-replace") => Some(lifecycle::Failpoint::AfterReplace),
                Ok("after-restore") => Some(lifecycle::Failpoint::AfterRestore),
                _ => None,
            };
        }
        Ok(s)
    }

    /// The live instances matching `selection` in every configured region, or an error
    /// (exit code 5) when a region cannot be listed: commands that act on "all of them"
    /// must not act on a part, `why` says what would go wrong.
    pub async fn whole_fleet(
        &self,
        backends: &Backends,
        selection: &Selection,
        why: &str,
    ) -> Result<Vec<cerveza_core::model::Instance>> {
        let listing = fleet::list(
            &backends.ec2,
            self.config.product()?,
            &self.config.regions,
            selection,
            false,
            self.config.region_timeout,
        )
        .await;
        if listing.failed_regions.is_empty() {
            return Ok(listing.instances);
        }
        for (region, e) in &listing.failed_regions {
            eprintln!("{} region {region}: {e}", crate::colour::error_label());
        }
        let names: Vec<&str> = listing
            .failed_regions
            .iter()
            .map(|(r, _)| r.as_str())
            .collect();
        anyhow::bail!(exit::Coded::new(
            exit::PARTIAL,
            format!("{why}: region(s) {} could not be listed", names.join(", "))
        ))
    }

    /// Hostnames named by `args`: names and ranges directly, or a selection (globs,
    /// `zone:`, `!`) resolved against the live fleet.
    pub async fn existing_hosts(
        &self,
        backends: &Backends,
        args: &[String],
    ) -> Result<Vec<Hostname>> {
        let is_selection = args.iter().any(|a| a.contains(['*', '?', ':', '!', '@']));
        if !is_selection {
            return Ok(selection::expand_hostnames(args)?);
        }
        let sel = Selection::parse_all(args)?;
        let instances = self
            .whole_fleet(backends, &sel, &format!("cannot resolve selection {sel}"))
            .await?;
        let mut hosts: Vec<Hostname> = instances
            .iter()
            .filter_map(|i| i.host().and_then(|h| Hostname::parse(h).ok()))
            .collect();
        hosts.dedup();
        if hosts.is_empty() {
            anyhow::bail!(exit::Coded::new(
                exit::NOT_FOUND,
                format!("selection {sel} matches no live host")
            ));
        }
        Ok(hosts)
    }
}

/// What a lifecycle command wires its [`lifecycle::Lifecycle`] to: the backends, its
/// settings, progress, and DNS (and user-data, for commands that start hosts).
pub struct Wiring {
    /// The AWS backends.
    pub backends: Backends,
    settings: Settings,
    progress: Box<dyn cerveza_core::ports::Progress>,
    dns: Option<Box<dyn Dns>>,
    cloud_init: Option<cerveza_userdata::CloudInit>,
    /// How long to wait for the DNS changes to be served (`[dns] wait`).
    dns_wait: Option<std::time::Duration>,
}

impl Wiring {
    /// The lifecycle over this wiring.
    pub fn lifecycle(&self) -> lifecycle::Lifecycle<'_> {
        let mut lc = lifecycle::Lifecycle::new(
            &self.backends.ec2,
            &self.backends.registry,
            &self.settings,
            self.progress.as_ref(),
        );
        if let Some(d) = &self.dns {
            lc = lc.with_dns(d.as_ref());
        }
        if let Some(c) = &self.cloud_init {
            lc = lc.with_user_data(c);
        }
        lc
    }

    /// Ends the progress display (before the results are printed); with `[dns] wait`,
    /// first waits (at most that long) until the DNS changes made are served (Route53:
    /// `INSYNC`). A wait that runs out is a warning: the hosts are done, and the names
    /// follow once Route53 has applied them.
    pub async fn done(self) {
        drop(self.progress);
        let (Some(limit), Some(dns)) = (self.dns_wait, &self.dns) else {
            return;
        };
        match dns.wait_synced(limit).await {
            Ok(0) => {}
            Ok(n) => eprintln!("DNS: {n} change(s) served by the name servers"),
            Err(e) => eprintln!("{} {e}", crate::colour::warning_label()),
        }
    }
}

impl Ctx {
    /// Wires a lifecycle over `backends` for `settings`; `user_data` for commands that
    /// may launch.
    pub async fn wiring(
        &self,
        backends: Backends,
        settings: Settings,
        user_data: bool,
    ) -> Result<Wiring> {
        let cloud_init = if user_data {
            Some(cerveza_userdata::CloudInit::new(
                self.config.userdata.clone(),
            )?)
        } else {
            None
        };
        let dns = self.dns(&backends).await;
        Ok(Wiring {
            progress: crate::progress::reporter(self.quiet),
            backends,
            settings,
            dns,
            cloud_init,
            dns_wait: self.config.dns_wait,
        })
    }
}

/// `user@machine`, written into registry records.
fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

#[derive(Serialize)]
struct JsonResult<'a> {
    host: &'a Hostname,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<lifecycle::Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a cerveza_core::model::Instance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a cerveza_core::model::HostRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Prints per-host results and returns the exit code: 0 all done, the error's code when
/// every host failed alike, [`exit::PARTIAL`] when some failed.
pub fn report(ctx: &Ctx, results: &Results) -> Result<u8> {
    if ctx.output == Output::Json {
        let rows: Vec<JsonResult<'_>> = results
            .iter()
            .map(|(host, r)| match r {
                Ok(o) => JsonResult {
                    host,
                    ok: true,
                    action: Some(o.action),
                    instance: o.instance.as_ref(),
                    record: o.record.as_ref(),
                    error: None,
                },
                Err(e) => JsonResult {
                    host,
                    ok: false,
                    action: None,
                    instance: None,
                    record: None,
                    error: Some(exit::chain(e)),
                },
            })
            .collect();
        output::print_json(&rows)?;
    } else {
        let mut t = Table::new(&[
            "HOST",
            "ACTION",
            "INSTANCE",
            "ZONE",
            "STATE",
            "PRIVATE-IP",
            "PUBLIC-IP",
        ]);
        for (host, r) in results {
            if let Ok(o) = r {
                let i = o.instance.as_ref();
                t.row(vec![
                    host.to_string(),
                    o.action.describe().into(),
                    or_dash(i.map(|i| i.id.as_str())),
                    or_dash(i.and_then(|i| i.zone.as_ref()).map(|z| z.as_str())),
                    or_dash(i.map(|i| i.state.name())),
                    or_dash(i.and_then(|i| i.private_ip.as_deref())),
                    or_dash(i.and_then(|i| i.public_ip.as_deref())),
                ]);
            }
        }
        if results.iter().any(|(_, r)| r.is_ok()) {
            output::emit(&t.render());
        }
    }
    let failures: Vec<&Error> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    for e in &failures {
        eprintln!("{} {}", crate::colour::error_label(), exit::chain(*e));
    }
    if !ctx.quiet {
        if let Some(line) = request_summary(results.len(), cerveza_aws::stats().counts()) {
            eprintln!("{line}");
        }
    }
    Ok(if failures.is_empty() {
        exit::OK
    } else if failures.len() < results.len() {
        eprintln!("{} of {} hosts failed", failures.len(), results.len());
        exit::PARTIAL
    } else {
        let kinds: Vec<ErrorKind> = failures.iter().map(|e| e.kind()).collect();
        if kinds.windows(2).all(|w| w[0] == w[1]) {
            exit::for_kind(kinds[0])
        } else {
            exit::FAILURE
        }
    })
}

/// `20 host(s): 143 AWS requests (7.2 per host), 12 retried, 9 throttled or failed`:
/// what a command cost in API calls, retries included.
fn request_summary(hosts: usize, c: cerveza_aws::RequestCounts) -> Option<String> {
    if c.requests == 0 || hosts == 0 {
        return None;
    }
    let mut line = format!(
        "{hosts} host(s): {} AWS requests ({:.1} per host)",
        c.requests,
        c.requests as f64 / hosts as f64
    );
    if c.retries > 0 {
        line += &format!(", {} retried", c.retries);
    }
    if c.failed > 0 {
        line += &format!(", {} throttled or failed", c.failed);
    }
    Some(line)
}

/// Prints planning errors (nothing was changed) and returns the exit code.
pub fn report_plan_errors(errors: &[(Hostname, Error)]) -> u8 {
    for (_, e) in errors {
        eprintln!("{} {}", crate::colour::error_label(), exit::chain(e));
    }
    eprintln!("nothing was changed: fix the problem(s) above and run again");
    exit::for_kind(errors[0].1.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_summary_names_retries_only_when_there_were_some() {
        let c = |requests, retries, failed| cerveza_aws::RequestCounts {
            requests,
            retries,
            failed,
        };
        assert_eq!(request_summary(3, c(0, 0, 0)), None);
        assert_eq!(
            request_summary(4, c(30, 0, 0)).as_deref(),
            Some("4 host(s): 30 AWS requests (7.5 per host)")
        );
        assert_eq!(
            request_summary(20, c(143, 12, 9)).as_deref(),
            Some("20 host(s): 143 AWS requests (7.2 per host), 12 retried, 9 throttled or failed")
        );
    }
}
