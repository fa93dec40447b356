//! Host lifecycle workflows: start, stop, restart, reboot, terminate, show, list.
//!
//! They speak only to the [`crate::ports`] traits, so the same code runs against AWS,
//! against moto, and against the in-memory fakes of [`crate::fake`].
//!
//! Start of a host, in order:
//! 1. *plan* every host (registry read, profile and zone checks); any problem stops
//!    the whole command before anything is created;
//! 2. *claim* new hostnames with a conditional write (two operators: one wins);
//! 3. find the host's instance by its recorded id, else by its tags; a live one is
//!    adopted, started or left running;
//! 4. otherwise launch with the host's current token (`ClientToken` + tag); a token
//!    already spent on a terminated instance bumps the generation first;
//! 5. record the instance id, wait for `running`, record the state.
//!
//! A crash anywhere leaves a state that step 3 or 4 of a re-run picks up: an instance
//! launched but not recorded carries the token tag and is adopted, never duplicated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::error::{Context, Error};
use crate::model::{
    Address, HostRecord, Instance, InstanceFilter, InstanceState, LaunchSpec, Volume, VolumeRequest,
};
use crate::names::{Hostname, Product, Region, Zone};
use crate::ports::{
    dns_names, Compute, ComputeRead, Dns, DnsRecord, ProviderErrorKind, Registry, RegistryRead,
};
use crate::profile::{InstanceProfile, ProfileSet, VolumeProfile};
use crate::selection::{Candidate, Selection};
use crate::{tags, token};

/// Where a test may make cerveza die on purpose, to prove re-runs converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// Abort the process right after `RunInstances` returned, before recording.
    AfterLaunch,
}

/// Knobs of the workflows.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The fleet namespace.
    pub product: Product,
    /// Wait for the target state (`running`, `stopped`, `terminated`).
    pub wait: bool,
    /// Longest wait for one host.
    pub wait_timeout: Duration,
    /// First poll interval while waiting (doubles, jittered, up to `poll_max`).
    pub poll_initial: Duration,
    /// Longest poll interval.
    pub poll_max: Duration,
    /// Hosts handled at once.
    pub concurrency: usize,
    /// Written into registry records as `updated_by`.
    pub operator: String,
    /// Test-only crash point.
    pub failpoint: Option<Failpoint>,
    /// Every region the fleet may use: a host's data volumes are looked for in all of
    /// them, so a first start elsewhere cannot leave its data behind.
    pub regions: Vec<Region>,
}

impl Settings {
    /// Defaults for `product`.
    pub fn new(product: Product) -> Self {
        Self {
            product,
            wait: true,
            wait_timeout: Duration::from_secs(600),
            poll_initial: Duration::from_secs(2),
            poll_max: Duration::from_secs(15),
            concurrency: 16,
            operator: "cerveza".into(),
            failpoint: None,
            regions: Vec::new(),
        }
    }
}

/// Where workflows report progress (a spinner on a terminal, lines otherwise).
pub trait Progress: Send + Sync {
    /// `host` moved on to `what` ("launching", "waiting for running", …).
    fn step(&self, host: &Hostname, what: &str);
}

/// What a host's user-data is built from.
#[derive(Debug, Clone, Copy)]
pub struct HostContext<'a> {
    /// The fleet namespace.
    pub product: &'a Product,
    /// The host.
    pub host: &'a Hostname,
    /// Its zone.
    pub zone: &'a Zone,
    /// Its instance profile.
    pub profile: &'a InstanceProfile,
    /// The volume profiles the instance profile names.
    pub volumes: &'a [VolumeProfile],
}

/// Builds the user-data passed at launch (see the `cerveza-userdata` crate).
pub trait UserDataSource: Send + Sync {
    /// The exact bytes to pass as user-data, or a message saying what is wrong (which
    /// file, which variable, which size). Called while planning, so problems surface
    /// before anything is created, and again at launch.
    fn user_data(&self, host: &HostContext<'_>) -> Result<Option<Vec<u8>>, String>;
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &Hostname, _: &str) {}
}

/// What a command did to one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new instance was launched.
    Launched,
    /// An existing instance carrying the host's tags was found and recorded.
    Adopted,
    /// A stopped instance was started.
    Started,
    /// It was running already.
    AlreadyRunning,
    /// It was stopped.
    Stopped,
    /// It was stopped already.
    AlreadyStopped,
    /// It was rebooted.
    Rebooted,
    /// Its instance was terminated.
    Terminated,
    /// It had no instance left to terminate.
    AlreadyTerminated,
    /// Its Elastic IP was associated.
    EipAssociated,
    /// Its Elastic IP was released.
    EipReleased,
}

impl Action {
    /// Past-tense words for humans.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Launched => "launched",
            Action::Adopted => "adopted",
            Action::Started => "started",
            Action::AlreadyRunning => "already running",
            Action::Stopped => "stopped",
            Action::AlreadyStopped => "already stopped",
            Action::Rebooted => "rebooted",
            Action::Terminated => "terminated",
            Action::AlreadyTerminated => "already terminated",
            Action::EipAssociated => "Elastic IP associated",
            Action::EipReleased => "Elastic IP released",
        }
    }
}

/// The result of a command for one host.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The host.
    pub host: Hostname,
    /// What was done.
    pub action: Action,
    /// Its instance as last seen.
    pub instance: Option<Instance>,
    /// Its registry record after the command (`None` once forgotten).
    pub record: Option<HostRecord>,
}

/// Per-host results of a multi-host command, in the order the hosts were given.
pub type Results = Vec<(Hostname, Result<Outcome, Error>)>;

/// A host as `show` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    /// The host.
    pub host: Hostname,
    /// Its registry record, if any.
    pub record: Option<HostRecord>,
    /// Its live instance, if any.
    pub instance: Option<Instance>,
}

/// The instances of one host in its region.
struct Found {
    live: Option<Instance>,
    spent_tokens: BTreeSet<String>,
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A delay between `d/2` and `d` (full jitter keeps many waiters apart).
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

/// The host lifecycle, wired to its backends.
pub struct Lifecycle<'a> {
    compute: &'a dyn Compute,
    registry: &'a dyn Registry,
    profiles: &'a ProfileSet,
    settings: &'a Settings,
    progress: &'a dyn Progress,
    user_data: Option<&'a dyn UserDataSource>,
    dns: Option<&'a dyn Dns>,
}

struct StartPlan {
    host: Hostname,
    record: Option<HostRecord>,
    zone: Zone,
    profile: String,
}

impl<'a> Lifecycle<'a> {
    /// Wires the workflows to their backends.
    pub fn new(
        compute: &'a dyn Compute,
        registry: &'a dyn Registry,
        profiles: &'a ProfileSet,
        settings: &'a Settings,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            compute,
            registry,
            profiles,
            settings,
            progress,
            user_data: None,
            dns: None,
        }
    }

    /// Publishes hosts' names in `dns`: after start, stop and terminate.
    pub fn with_dns(mut self, dns: &'a dyn Dns) -> Self {
        self.dns = Some(dns);
        self
    }

    /// Points the host's names at the instance's addresses; a missing address removes
    /// its name (a stopped host has no public address).
    async fn publish(&self, host: &Hostname, inst: &Instance) -> Result<(), Error> {
        let Some(dns) = self.dns else {
            return Ok(());
        };
        self.progress.step(host, "publishing its DNS names");
        let ip = |a: &Option<String>| {
            a.as_deref()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        };
        let [private, public] = dns_names(self.product(), host);
        for (name, addr) in [
            (private, ip(&inst.private_ip)),
            (public, ip(&inst.public_ip)),
        ] {
            let done = match addr {
                Some(address) => {
                    dns.upsert(
                        self.product(),
                        &DnsRecord {
                            name: name.clone(),
                            address,
                        },
                    )
                    .await
                }
                None => dns.remove(self.product(), &name).await,
            };
            done.context(|| {
                format!(
                    "{host}: publishing {name} (the instance is fine; `cerveza dns sync` retries)"
                )
            })?;
        }
        Ok(())
    }

    /// Removes the host's names.
    async fn unpublish(&self, host: &Hostname) -> Result<(), Error> {
        let Some(dns) = self.dns else {
            return Ok(());
        };
        for name in dns_names(self.product(), host) {
            dns.remove(self.product(), &name)
                .await
                .context(|| format!("{host}: removing {name} (`cerveza dns sync` retries)"))?;
        }
        Ok(())
    }

    /// Passes user-data built by `source` to every launch.
    pub fn with_user_data(mut self, source: &'a dyn UserDataSource) -> Self {
        self.user_data = Some(source);
        self
    }

    fn build_user_data(
        &self,
        host: &Hostname,
        zone: &Zone,
        profile: &InstanceProfile,
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some(source) = self.user_data else {
            return Ok(None);
        };
        let volumes: Vec<VolumeProfile> = profile
            .volume_profiles
            .iter()
            .filter_map(|n| self.profiles.volume(n).cloned())
            .collect();
        let ctx = HostContext {
            product: self.product(),
            host,
            zone,
            profile,
            volumes: &volumes,
        };
        source.user_data(&ctx).map_err(|message| Error::Usage {
            host: host.to_string(),
            message: format!("user-data: {message}"),
        })
    }

    fn product(&self) -> &Product {
        &self.settings.product
    }

    /// Runs `f` for every host with bounded concurrency, results in input order.
    async fn for_each<'s, F, Fut>(&'s self, hosts: Vec<Hostname>, f: F) -> Results
    where
        F: Fn(Hostname) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, Error>> + 's,
    {
        let order: BTreeMap<Hostname, usize> = hosts
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, h)| (h, i))
            .collect();
        let mut results: Results = stream::iter(hosts)
            .map(|h| {
                let fut = f(h.clone());
                async move { (h, fut.await) }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        results.sort_by_key(|(h, _)| order.get(h).copied().unwrap_or(usize::MAX));
        results
    }

    // ----- start -------------------------------------------------------------

    /// Starts hosts: launches new ones (`profile` and `zone` required the first time),
    /// starts stopped ones, relaunches ones whose instance is gone with the remembered
    /// profile and zone. Plans every host first: any planning error (bad zone, unknown
    /// profile, missing AMI, mismatching arguments) returns `Err` with nothing created.
    pub async fn start(
        &self,
        hosts: Vec<Hostname>,
        zone: Option<&Zone>,
        profile: Option<&str>,
    ) -> Result<Results, Vec<(Hostname, Error)>> {
        // Hosts are planned concurrently (a registry read and a volume lookup each);
        // the zones of the one `--zone` region are listed once, by whoever needs them first.
        let zones_of_region = tokio::sync::OnceCell::new();
        let planned: Vec<(Hostname, Result<StartPlan, Error>)> = stream::iter(hosts)
            .map(|host| {
                let zones_of_region = &zones_of_region;
                async move {
                    let plan = self.plan_start(&host, zone, profile, zones_of_region).await;
                    (host, plan)
                }
            })
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut plans = Vec::new();
        let mut errors = Vec::new();
        for (host, plan) in planned {
            match plan {
                Ok(p) => plans.push(p),
                Err(e) => errors.push((host, e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Results keep the order the hosts were given in.
        let hosts: Vec<Hostname> = plans.iter().map(|p| p.host.clone()).collect();
        let by_host: BTreeMap<Hostname, StartPlan> =
            plans.into_iter().map(|p| (p.host.clone(), p)).collect();
        let by_host = &by_host;
        Ok(self
            .for_each(hosts, |h| async move {
                let plan = by_host.get(&h).expect("planned");
                self.start_one(plan).await
            })
            .await)
    }

    async fn plan_start(
        &self,
        host: &Hostname,
        zone: Option<&Zone>,
        profile: Option<&str>,
        zones_of_region: &tokio::sync::OnceCell<Vec<Zone>>,
    ) -> Result<StartPlan, Error> {
        let usage = |message: String| Error::Usage {
            host: host.to_string(),
            message,
        };
        let record = self
            .registry
            .get(self.product(), host)
            .await
            .context(|| format!("{host}: reading the registry"))?;
        if let Some(rec) = record {
            if let Some(z) = zone.filter(|z| **z != rec.zone) {
                return Err(usage(format!(
                    "it lives in {} (registry), not {z}; to move it, `cerveza terminate {host} --forget` first",
                    rec.zone
                )));
            }
            if let Some(p) = profile.filter(|p| *p != rec.profile) {
                return Err(usage(format!(
                    "it was started with profile {} (registry), not {p}; to change it, `cerveza terminate {host} --forget` first",
                    rec.profile
                )));
            }
            return Ok(StartPlan {
                host: host.clone(),
                zone: rec.zone.clone(),
                profile: rec.profile.clone(),
                record: Some(rec),
            });
        }
        let (Some(zone), Some(profile)) = (zone, profile) else {
            let missing = match (zone, profile) {
                (None, None) => "--zone and --profile",
                (None, _) => "--zone",
                _ => "--profile",
            };
            return Err(usage(format!(
                "not in the registry of product {}: its first start needs {missing}",
                self.product()
            )));
        };
        let region = zone.region();
        let resolved = self.profiles.instance(profile)?;
        resolved.ami_for(&region)?;
        self.build_user_data(host, zone, resolved)?;
        let zones = zones_of_region
            .get_or_try_init(|| async {
                self.compute
                    .zones(&region)
                    .await
                    .context(|| format!("listing the zones of {region}"))
            })
            .await?;
        if !zones.contains(zone) {
            let names: Vec<&str> = zones.iter().map(Zone::as_str).collect();
            return Err(usage(format!(
                "zone {zone} does not exist in region {region} (it has: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )));
        }
        if !resolved.volume_profiles.is_empty() {
            let existing = self.volumes_everywhere(host, &region).await?;
            check_volume_zones(host, zone, &existing)?;
        }
        Ok(StartPlan {
            host: host.clone(),
            record: None,
            zone: zone.clone(),
            profile: profile.to_owned(),
        })
    }

    async fn start_one(&self, plan: &StartPlan) -> Result<Outcome, Error> {
        let host = &plan.host;
        let mut rec = match &plan.record {
            Some(r) => r.clone(),
            None => self.claim(plan).await?,
        };
        // Each pass either finishes or bumps the generation; two bumps in one run
        // would mean tokens keep being spent under us.
        for _ in 0..3 {
            let found = self.find(&rec).await?;
            if let Some(inst) = found.live {
                return self.resume(&mut rec, inst).await;
            }
            let needs_bump = rec.instance_id.is_some()
                || found.spent_tokens.contains(&token::client_token(
                    self.product(),
                    host,
                    rec.generation,
                ));
            if needs_bump {
                let expected = rec.generation;
                rec.generation += 1;
                rec.instance_id = None;
                rec.state = "pending".into();
                self.save(&mut rec, expected).await?;
                continue;
            }
            return self.launch(&mut rec).await;
        }
        Err(Error::Conflict {
            host: host.to_string(),
            message: "its launch tokens keep being used by instances that end up terminated; is another tool terminating it?".into(),
        })
    }

    async fn claim(&self, plan: &StartPlan) -> Result<HostRecord, Error> {
        let rec = HostRecord {
            product: self.product().clone(),
            hostname: plan.host.clone(),
            profile: plan.profile.clone(),
            zone: plan.zone.clone(),
            instance_id: None,
            state: "pending".into(),
            generation: 1,
            updated_at: now(),
            updated_by: self.settings.operator.clone(),
        };
        self.progress.step(&plan.host, "claiming the hostname");
        match self.registry.create(&rec).await {
            Ok(()) => Ok(rec),
            Err(e) if e.kind == ProviderErrorKind::Conflict => {
                let who = self
                    .registry
                    .get(self.product(), &plan.host)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| {
                        format!(
                            " by {} (profile {}, zone {})",
                            r.updated_by, r.profile, r.zone
                        )
                    })
                    .unwrap_or_default();
                Err(Error::Conflict {
                    host: plan.host.to_string(),
                    message: format!(
                        "the hostname was just claimed{who}; another operator is starting it"
                    ),
                })
            }
            Err(source) => Err(Error::Provider {
                context: format!("{}: claiming the hostname in the registry", plan.host),
                source,
            }),
        }
    }

    /// Writes `rec` if the stored generation is still `expected`.
    async fn save(&self, rec: &mut HostRecord, expected: u64) -> Result<(), Error> {
        rec.updated_at = now();
        rec.updated_by.clone_from(&self.settings.operator);
        match self.registry.update(rec, expected).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ProviderErrorKind::Conflict => Err(Error::Conflict {
                host: rec.hostname.to_string(),
                message: "its registry record was changed by another operator meanwhile; run the command again".into(),
            }),
            Err(source) => Err(Error::Provider {
                context: format!("{}: writing the registry", rec.hostname),
                source,
            }),
        }
    }

    /// The host's live instance (recorded id first, else by tags) and the launch
    /// tokens already spent on instances that are gone.
    async fn find(&self, rec: &HostRecord) -> Result<Found, Error> {
        let (product, host, region) = (self.product(), &rec.hostname, rec.region());
        if let Some(id) = &rec.instance_id {
            let inst = self
                .compute
                .instance(&region, id)
                .await
                .context(|| format!("{host}: describing {id}"))?;
            if let Some(i) = inst {
                if !i.belongs_to(product, host) {
                    return Err(Error::Refused {
                        host: host.to_string(),
                        message: format!(
                            "instance {id} is recorded for it but is tagged {}={:?} {}={:?}; it is not ours, cerveza will not touch it",
                            tags::PRODUCT,
                            i.product().unwrap_or(""),
                            tags::HOST,
                            i.host().unwrap_or("")
                        ),
                    });
                }
                if !i.state.is_gone() {
                    return Ok(Found {
                        live: Some(i),
                        spent_tokens: BTreeSet::new(),
                    });
                }
            }
        }
        let all = self
            .compute
            .instances(&region, &InstanceFilter::host(product, host))
            .await
            .context(|| format!("{host}: looking for its instances in {region}"))?;
        let (gone, live): (Vec<Instance>, Vec<Instance>) =
            all.into_iter().partition(|i| i.state.is_gone());
        if live.len() > 1 {
            let ids: Vec<&str> = live.iter().map(|i| i.id.as_str()).collect();
            return Err(Error::Conflict {
                host: host.to_string(),
                message: format!(
                    "several live instances carry its tags ({}); cerveza will not pick one, terminate the extra ones in the console",
                    ids.join(", ")
                ),
            });
        }
        Ok(Found {
            live: live.into_iter().next(),
            spent_tokens: gone
                .iter()
                .filter_map(|i| i.token().map(str::to_owned))
                .collect(),
        })
    }

    /// Brings a live instance to `running` and records it.
    async fn resume(&self, rec: &mut HostRecord, inst: Instance) -> Result<Outcome, Error> {
        let host = rec.hostname.clone();
        let region = rec.region();
        let adopted = rec.instance_id.as_deref() != Some(inst.id.as_str());
        if adopted {
            self.progress
                .step(&host, &format!("adopting {} (found by its tags)", inst.id));
        }
        let mut action = if adopted {
            Action::Adopted
        } else {
            Action::AlreadyRunning
        };
        let mut inst = inst;
        match inst.state {
            InstanceState::Running | InstanceState::Pending => {}
            InstanceState::Stopping | InstanceState::Stopped => {
                if inst.state == InstanceState::Stopping {
                    inst = self
                        .wait_for(&host, &region, &inst.id, &InstanceState::Stopped)
                        .await?;
                }
                self.progress.step(&host, &format!("starting {}", inst.id));
                self.compute
                    .start(&region, &inst.id)
                    .await
                    .context(|| format!("{host}: starting {}", inst.id))?;
                inst.state = InstanceState::Pending;
                if !adopted {
                    action = Action::Started;
                }
            }
            ref other => {
                return Err(Error::Refused {
                    host: host.to_string(),
                    message: format!("instance {} is in state {other}", inst.id),
                })
            }
        }
        if adopted || rec.state != inst.state.name() {
            rec.instance_id = Some(inst.id.clone());
            rec.state = inst.state.name().into();
            let g = rec.generation;
            self.save(rec, g).await?;
        }
        self.finish_running(rec, inst, action).await
    }

    async fn launch(&self, rec: &mut HostRecord) -> Result<Outcome, Error> {
        let host = rec.hostname.clone();
        let profile = self
            .profiles
            .instance(&rec.profile)
            .map_err(|e| Error::Usage {
                host: host.to_string(),
                message: format!("its remembered profile cannot be used: {e}"),
            })?;
        let token = token::client_token(self.product(), &host, rec.generation);
        let spec = self.launch_spec(rec, profile, &token)?;
        self.progress.step(
            &host,
            &format!("launching {} in {}", profile.name, rec.zone),
        );
        let inst = self
            .compute
            .launch(&spec)
            .await
            .context(|| format!("{host}: launching an instance in {}", rec.zone))?;
        if self.settings.failpoint == Some(Failpoint::AfterLaunch) {
            eprintln!(
                "cerveza: failpoint after-launch: aborting after launching {}",
                inst.id
            );
            std::process::abort();
        }
        rec.instance_id = Some(inst.id.clone());
        rec.state = inst.state.name().into();
        let g = rec.generation;
        self.save(rec, g).await?;
        self.finish_running(rec, inst, Action::Launched).await
    }

    /// The launch request for a host: the profile, the zone, the token, the tags.
    pub fn launch_spec(
        &self,
        rec: &HostRecord,
        profile: &InstanceProfile,
        token: &str,
    ) -> Result<LaunchSpec, Error> {
        let region = rec.region();
        let image_id = profile.ami_for(&region)?.to_owned();
        let mut t = profile.tags.clone();
        t.insert(tags::NAME.into(), rec.hostname.to_string());
        t.insert(tags::PRODUCT.into(), self.product().to_string());
        t.insert(tags::HOST.into(), rec.hostname.to_string());
        t.insert(tags::PROFILE.into(), profile.name.clone());
        t.insert(tags::ZONE.into(), rec.zone.to_string());
        t.insert(tags::TOKEN.into(), token.to_owned());
        Ok(LaunchSpec {
            region,
            zone: rec.zone.clone(),
            image_id,
            instance_type: profile.instance_type.clone(),
            key_pair: profile.key_pair.clone(),
            security_groups: profile.security_groups.clone(),
            client_token: token.to_owned(),
            tags: t,
            user_data: self.build_user_data(&rec.hostname, &rec.zone, profile)?,
        })
    }

    /// Waits for `running` (when waiting is on) and records the final state.
    async fn finish_running(
        &self,
        rec: &mut HostRecord,
        inst: Instance,
        action: Action,
    ) -> Result<Outcome, Error> {
        let host = rec.hostname.clone();
        let inst = if self.settings.wait && inst.state != InstanceState::Running {
            self.wait_for(&host, &rec.region(), &inst.id, &InstanceState::Running)
                .await?
        } else {
            inst
        };
        if rec.state != inst.state.name() {
            rec.state = inst.state.name().into();
            let g = rec.generation;
            self.save(rec, g).await?;
        }
        let inst = if inst.state == InstanceState::Running {
            self.attach_storage(rec, inst).await?
        } else {
            inst
        };
        self.publish(&host, &inst).await?;
        Ok(Outcome {
            host,
            action,
            instance: Some(inst),
            record: Some(rec.clone()),
        })
    }

    /// Polls until the instance reaches `target`, tolerating `NotFound` right after a
    /// launch (eventual consistency) and throttling, with jittered exponential backoff.
    async fn wait_for(
        &self,
        host: &Hostname,
        region: &Region,
        id: &str,
        target: &InstanceState,
    ) -> Result<Instance, Error> {
        self.progress
            .step(host, &format!("waiting for {id} to be {target}"));
        let started = Instant::now();
        let mut delay = self.settings.poll_initial;
        let mut last = "unknown".to_owned();
        loop {
            match self.compute.instance(region, id).await {
                Ok(Some(i)) if &i.state == target => return Ok(i),
                Ok(Some(i)) if i.state.is_gone() && !target.is_gone() => {
                    return Err(Error::Refused {
                        host: host.to_string(),
                        message: format!(
                            "{id} went to {} while cerveza waited for {target} (capacity, a bad AMI, or someone terminated it); `cerveza start {host}` launches a new one",
                            i.state
                        ),
                    })
                }
                Ok(Some(i)) => last = i.state.name().to_owned(),
                Ok(None) => last = "not yet visible".into(),
                Err(e) if e.kind.is_transient() =>
                {
                    tracing::warn!(%host, error = %e, "describing {id} failed; still waiting");
                }
                Err(source) => {
                    return Err(Error::Provider {
                        context: format!("{host}: describing {id}"),
                        source,
                    })
                }
            }
            let pause = jitter(delay);
            if started.elapsed() + pause > self.settings.wait_timeout {
                return Err(Error::Timeout {
                    host: host.to_string(),
                    id: id.to_owned(),
                    target: target.to_string(),
                    last,
                    seconds: self.settings.wait_timeout.as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(self.settings.poll_max);
        }
    }

    // ----- volumes and Elastic IPs -------------------------------------------

    /// Attaches the host's volumes and Elastic IP (per its profile) to a running
    /// instance, creating what is missing; returns the instance as it is afterwards.
    async fn attach_storage(&self, rec: &HostRecord, inst: Instance) -> Result<Instance, Error> {
        // Without the profile (restart of a stopped host) everything is still attached.
        let Ok(profile) = self.profiles.instance(&rec.profile) else {
            return Ok(inst);
        };
        self.ensure_volumes(rec, &inst, profile).await?;
        if !profile.eip {
            return Ok(inst);
        }
        self.associate_eip(rec, &inst).await?;
        let region = rec.region();
        Ok(self
            .compute
            .instance(&region, &inst.id)
            .await
            .context(|| format!("{}: describing {}", rec.hostname, inst.id))?
            .unwrap_or(inst))
    }

    /// The volumes a profile asks for: (volume profile, member index, device).
    fn wanted_volumes<'p>(
        &'p self,
        profile: &'p InstanceProfile,
    ) -> Vec<(&'p VolumeProfile, u32, &'p str)> {
        profile
            .volume_profiles
            .iter()
            .filter_map(|n| self.profiles.volume(n))
            .flat_map(|vp| {
                vp.devices
                    .iter()
                    .enumerate()
                    .map(move |(i, d)| (vp, i as u32, d.as_str()))
            })
            .collect()
    }

    async fn ensure_volumes(
        &self,
        rec: &HostRecord,
        inst: &Instance,
        profile: &InstanceProfile,
    ) -> Result<(), Error> {
        let wanted = self.wanted_volumes(profile);
        if wanted.is_empty() {
            return Ok(());
        }
        let (host, region) = (&rec.hostname, rec.region());
        let have = self
            .compute
            .volumes(&region, self.product(), std::slice::from_ref(host))
            .await
            .context(|| format!("{host}: looking for its volumes"))?;
        check_volume_zones(host, &rec.zone, &have)?;
        let missing = wanted
            .iter()
            .filter(|(_, _, d)| {
                !have.iter().any(|v| {
                    v.device() == Some(d) && v.attached_to.as_deref() == Some(inst.id.as_str())
                })
            })
            .count();
        if missing == 0 {
            return Ok(());
        }
        self.progress.step(
            host,
            &format!("attaching {missing} of {} volume(s)", wanted.len()),
        );
        // Every volume is handled even when one fails, so a failure leaves the others
        // tagged and attached, and a re-run completes the set.
        let region = &region;
        let results = futures::future::join_all(wanted.iter().map(|&(vp, member, device)| {
            let have = &have;
            async move {
                let existing = have.iter().find(|v| {
                    v.device() == Some(device)
                        && v.tags.get(tags::VOLUME_PROFILE).map(String::as_str)
                            == Some(vp.name.as_str())
                });
                let id = match existing {
                    Some(v) if v.attached_to.as_deref() == Some(inst.id.as_str()) => return Ok(()),
                    Some(v) if v.attached_to.is_some() => {
                        return Err(Error::Conflict {
                            host: host.to_string(),
                            message: format!(
                                "its volume {} ({device}) is attached to {}, not to {}",
                                v.id,
                                v.attached_to.as_deref().unwrap_or("?"),
                                inst.id
                            ),
                        })
                    }
                    Some(v) => v.id.clone(),
                    None => self.create_volume(rec, vp, member, device).await?,
                };
                match self
                    .compute
                    .attach_volume(region, &id, &inst.id, device)
                    .await
                {
                    Ok(()) => Ok(()),
                    // The answer to an attach that landed may be lost; its retry then
                    // fails with VolumeInUse. Attached where wanted is success.
                    Err(e) if self.attached(rec, &id, &inst.id, device).await => {
                        tracing::debug!(%host, error = %e, "{id} is attached at {device} already");
                        Ok(())
                    }
                    Err(e) => Err(e).context(|| format!("{host}: attaching {id} at {device}")),
                }
            }
        }))
        .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(drop)
    }

    /// The volumes tagged with the host, in its region.
    async fn host_volumes(&self, rec: &HostRecord) -> crate::ports::ProviderResult<Vec<Volume>> {
        self.compute
            .volumes(
                &rec.region(),
                self.product(),
                std::slice::from_ref(&rec.hostname),
            )
            .await
    }

    /// The volumes tagged with `host` in every configured region and in `home` (its
    /// own), looked up at once. A region that cannot be asked is an error: cerveza
    /// cannot tell whether the host's data lives there.
    async fn volumes_everywhere(
        &self,
        host: &Hostname,
        home: &Region,
    ) -> Result<Vec<Volume>, Error> {
        let mut regions: BTreeSet<&Region> = self.settings.regions.iter().collect();
        regions.insert(home);
        let found = futures::future::join_all(regions.into_iter().map(|region| async move {
            self.compute
                .volumes(region, self.product(), std::slice::from_ref(host))
                .await
                .context(|| format!("{host}: looking for its volumes in {region}"))
        }))
        .await;
        let mut all = Vec::new();
        for f in found {
            all.extend(f?);
        }
        Ok(all)
    }

    /// Whether volume `id` is attached to `instance` at `device` now.
    async fn attached(&self, rec: &HostRecord, id: &str, instance: &str, device: &str) -> bool {
        let vols = self.host_volumes(rec).await.unwrap_or_default();
        vols.iter().any(|v| {
            v.id == id
                && v.attached_to.as_deref() == Some(instance)
                && v.attached_as.as_deref() == Some(device)
        })
    }

    async fn create_volume(
        &self,
        rec: &HostRecord,
        vp: &VolumeProfile,
        member: u32,
        device: &str,
    ) -> Result<String, Error> {
        let host = &rec.hostname;
        let mut t = BTreeMap::from([
            (tags::NAME.to_owned(), host.to_string()),
            (tags::PRODUCT.to_owned(), self.product().to_string()),
            (tags::HOST.to_owned(), host.to_string()),
            (tags::ZONE.to_owned(), rec.zone.to_string()),
            (tags::DEVICE.to_owned(), device.to_owned()),
            (tags::VOLUME_PROFILE.to_owned(), vp.name.clone()),
            (tags::MEMBER.to_owned(), member.to_string()),
        ]);
        if let Ok(p) = self.profiles.instance(&rec.profile) {
            for (k, v) in &p.tags {
                t.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let request = VolumeRequest {
            region: rec.region(),
            zone: rec.zone.clone(),
            size_gb: vp.volumes.size_gb,
            volume_type: vp.volumes.volume_type.clone(),
            iops: vp.volumes.iops,
            throughput: vp.volumes.throughput,
            encrypted: vp.volumes.encrypted,
            tags: t,
            client_token: token::volume_token(self.product(), host, device, rec.generation),
        };
        let v = self.compute.create_volume(&request).await.context(|| {
            format!(
                "{host}: creating its {device} volume ({} GiB {})",
                vp.volumes.size_gb, vp.volumes.volume_type
            )
        })?;
        self.wait_volume(rec, &v.id).await?;
        Ok(v.id)
    }

    /// Waits until a new volume is `available`.
    async fn wait_volume(&self, rec: &HostRecord, id: &str) -> Result<(), Error> {
        let started = Instant::now();
        let mut delay = self.settings.poll_initial;
        let mut state = None;
        loop {
            match self.host_volumes(rec).await {
                Ok(vols) => state = vols.iter().find(|v| v.id == id).map(|v| v.state.clone()),
                Err(e) if e.kind.is_transient() => {
                    tracing::warn!(host = %rec.hostname, error = %e, "describing {id} failed; still waiting");
                }
                Err(source) => {
                    return Err(Error::Provider {
                        context: format!("{}: describing {id}", rec.hostname),
                        source,
                    })
                }
            }
            if state.as_deref() == Some("available") {
                return Ok(());
            }
            if started.elapsed() > self.settings.wait_timeout {
                return Err(Error::Timeout {
                    host: rec.hostname.to_string(),
                    id: id.to_owned(),
                    target: "available".into(),
                    last: state.unwrap_or_else(|| "not yet visible".into()),
                    seconds: self.settings.wait_timeout.as_secs(),
                });
            }
            tokio::time::sleep(jitter(delay)).await;
            delay = (delay * 2).min(self.settings.poll_max);
        }
    }

    /// Allocates the host's Elastic IP. AllocateAddress has no idempotency token, so it
    /// is sent once per try; after a failed try the address is looked up by its tags
    /// (a lost answer may hide an allocation that landed) before trying again.
    async fn allocate_eip(&self, rec: &HostRecord) -> Result<Address, Error> {
        let (host, region) = (&rec.hostname, rec.region());
        self.progress.step(host, "allocating an Elastic IP");
        let mut delay = self.settings.poll_initial;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .compute
                .allocate_address(&region, self.product(), host)
                .await
            {
                Ok(a) => return Ok(a),
                Err(e) if attempt < 4 && e.kind.is_transient() => {
                    tracing::warn!(%host, error = %e, "allocating an Elastic IP failed; looking for it before trying again");
                    tokio::time::sleep(jitter(delay)).await;
                    delay *= 2;
                    let found = self
                        .compute
                        .address(&region, self.product(), host)
                        .await
                        .context(|| format!("{host}: looking for its Elastic IP"))?;
                    if let Some(a) = found {
                        return Ok(a);
                    }
                }
                Err(source) => {
                    return Err(Error::Provider {
                        context: format!("{host}: allocating an Elastic IP"),
                        source,
                    })
                }
            }
        }
    }

    /// Associates the host's Elastic IP with `inst`, allocating it the first time.
    async fn associate_eip(&self, rec: &HostRecord, inst: &Instance) -> Result<String, Error> {
        let (host, region) = (&rec.hostname, rec.region());
        let found = self
            .compute
            .address(&region, self.product(), host)
            .await
            .context(|| format!("{host}: looking for its Elastic IP"))?;
        let Address {
            allocation: alloc,
            ip,
            instance: current,
        } = match found {
            Some(a) => a,
            None => self.allocate_eip(rec).await?,
        };
        // Re-associate unless the instance already answers on it (after a start, an
        // emulator or a race may leave the association stale).
        if current.as_deref() != Some(inst.id.as_str())
            || inst.public_ip.as_deref() != Some(ip.as_str())
        {
            self.progress
                .step(host, &format!("associating Elastic IP {ip}"));
            self.compute
                .associate_address(&region, &alloc, &inst.id)
                .await
                .context(|| format!("{host}: associating Elastic IP {ip}"))?;
        }
        Ok(ip)
    }

    /// Gives running hosts an Elastic IP (allocated once, kept across restarts).
    pub async fn eip_attach(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each(hosts, |h| async move {
            let rec = self.record(&h).await?;
            let Some(inst) = self.find(&rec).await?.live else {
                return Err(Self::no_instance(&rec));
            };
            self.associate_eip(&rec, &inst).await?;
            let inst = self
                .compute
                .instance(&rec.region(), &inst.id)
                .await
                .context(|| format!("{h}: describing {}", inst.id))?;
            if let Some(i) = &inst {
                self.publish(&h, i).await?;
            }
            Ok(Outcome {
                host: h.clone(),
                action: Action::EipAssociated,
                instance: inst,
                record: Some(rec),
            })
        })
        .await
    }

    /// Releases hosts' Elastic IPs.
    pub async fn eip_detach(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each(hosts, |h| async move {
            let rec = self.record(&h).await?;
            let region = rec.region();
            let found = self
                .compute
                .address(&region, self.product(), &h)
                .await
                .context(|| format!("{h}: looking for its Elastic IP"))?;
            let Some(Address {
                allocation: alloc,
                ip,
                ..
            }) = found
            else {
                return Err(Error::NotFound {
                    host: h.to_string(),
                    message: "it has no Elastic IP".into(),
                });
            };
            self.progress
                .step(&h, &format!("releasing Elastic IP {ip}"));
            self.compute
                .release_address(&region, &alloc)
                .await
                .context(|| format!("{h}: releasing {ip}"))?;
            let inst = match self.find(&rec).await?.live {
                Some(i) => self
                    .compute
                    .instance(&region, &i.id)
                    .await
                    .context(|| format!("{h}: describing {}", i.id))?,
                None => None,
            };
            if let Some(i) = &inst {
                self.publish(&h, i).await?;
            }
            Ok(Outcome {
                host: h.clone(),
                action: Action::EipReleased,
                instance: inst,
                record: Some(rec),
            })
        })
        .await
    }

    // ----- stop / reboot / terminate / restart -------------------------------

    async fn record(&self, host: &Hostname) -> Result<HostRecord, Error> {
        self.registry
            .get(self.product(), host)
            .await
            .context(|| format!("{host}: reading the registry"))?
            .ok_or_else(|| Error::NotFound {
                host: host.to_string(),
                message: format!(
                    "no such host in product {} (`cerveza list` shows the fleet)",
                    self.product()
                ),
            })
    }

    fn no_instance(rec: &HostRecord) -> Error {
        Error::Refused {
            host: rec.hostname.to_string(),
            message: format!(
                "it has no instance (last state {}); `cerveza start {}` launches one",
                rec.state, rec.hostname
            ),
        }
    }

    /// Stops hosts, waiting for `stopped` when waiting is on.
    pub async fn stop(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each(hosts, |h| async move { self.stop_one(&h).await })
            .await
    }

    async fn stop_one(&self, host: &Hostname) -> Result<Outcome, Error> {
        let mut rec = self.record(host).await?;
        let region = rec.region();
        let Some(mut inst) = self.find(&rec).await?.live else {
            return Err(Self::no_instance(&rec));
        };
        let action = match inst.state {
            InstanceState::Stopped => Action::AlreadyStopped,
            InstanceState::Stopping => Action::Stopped,
            _ => {
                if inst.state == InstanceState::Pending {
                    inst = self
                        .wait_for(host, &region, &inst.id, &InstanceState::Running)
                        .await?;
                }
                self.progress.step(host, &format!("stopping {}", inst.id));
                self.compute
                    .stop(&region, &inst.id)
                    .await
                    .context(|| format!("{host}: stopping {}", inst.id))?;
                inst.state = InstanceState::Stopping;
                Action::Stopped
            }
        };
        if self.settings.wait && inst.state != InstanceState::Stopped {
            inst = self
                .wait_for(host, &region, &inst.id, &InstanceState::Stopped)
                .await?;
        }
        rec.instance_id = Some(inst.id.clone());
        rec.state = inst.state.name().into();
        let g = rec.generation;
        self.save(&mut rec, g).await?;
        self.publish(host, &inst).await?;
        Ok(Outcome {
            host: host.clone(),
            action,
            instance: Some(inst),
            record: Some(rec),
        })
    }

    /// Stops then starts hosts (new IPs, same instance, same volumes).
    pub async fn restart(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each(hosts, |h| async move {
            let stopped = self.stop_one(&h).await?;
            let mut rec = stopped.record.ok_or_else(|| Error::NotFound {
                host: h.to_string(),
                message: "its record vanished while restarting".into(),
            })?;
            let inst = stopped.instance.ok_or_else(|| Self::no_instance(&rec))?;
            let mut out = self.resume(&mut rec, inst).await?;
            out.action = Action::Started;
            Ok(out)
        })
        .await
    }

    /// Reboots running hosts (same instance, same IPs).
    pub async fn reboot(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each(hosts, |h| async move {
            let rec = self.record(&h).await?;
            let Some(inst) = self.find(&rec).await?.live else {
                return Err(Self::no_instance(&rec));
            };
            if inst.state != InstanceState::Running {
                return Err(Error::Refused {
                    host: h.to_string(),
                    message: format!(
                        "{} is {}, only a running host can be rebooted (use start)",
                        inst.id, inst.state
                    ),
                });
            }
            self.progress.step(&h, &format!("rebooting {}", inst.id));
            self.compute
                .reboot(&rec.region(), &inst.id)
                .await
                .context(|| format!("{h}: rebooting {}", inst.id))?;
            Ok(Outcome {
                host: h.clone(),
                action: Action::Rebooted,
                instance: Some(inst),
                record: Some(rec),
            })
        })
        .await
    }

    /// Terminates hosts. The registry keeps their profile and zone, so a later start
    /// launches a new instance like the old one; with `forget`, the record is deleted
    /// and the hostname is free for another profile or zone.
    /// With `delete_volumes`, the host's EBS volumes are deleted too; by default they
    /// are kept, and the next start re-attaches them.
    pub async fn terminate(
        &self,
        hosts: Vec<Hostname>,
        forget: bool,
        delete_volumes: bool,
    ) -> Results {
        self.for_each(hosts, |h| async move {
            self.terminate_one(&h, forget, delete_volumes).await
        })
        .await
    }

    async fn terminate_one(
        &self,
        host: &Hostname,
        forget: bool,
        delete_volumes: bool,
    ) -> Result<Outcome, Error> {
        let mut rec = self.record(host).await?;
        let region = rec.region();
        let found = self.find(&rec).await?;
        let (action, inst) = match found.live {
            Some(inst) => {
                self.progress
                    .step(host, &format!("terminating {}", inst.id));
                self.compute
                    .terminate(&region, &inst.id)
                    .await
                    .context(|| format!("{host}: terminating {}", inst.id))?;
                let inst = if self.settings.wait {
                    self.wait_for(host, &region, &inst.id, &InstanceState::Terminated)
                        .await?
                } else {
                    inst
                };
                (Action::Terminated, Some(inst))
            }
            None => (Action::AlreadyTerminated, None),
        };
        self.unpublish(host).await?;
        if delete_volumes {
            let vols = self.volumes_everywhere(host, &region).await?;
            // Data volumes only: root volumes go with their instance.
            for v in vols
                .iter()
                .filter(|v| v.device().is_some() && v.state != "deleting")
            {
                self.progress
                    .step(host, &format!("deleting volume {}", v.id));
                self.compute
                    .delete_volume(&v.region, &v.id)
                    .await
                    .context(|| format!("{host}: deleting volume {}", v.id))?;
            }
        }
        let g = rec.generation;
        if forget {
            self.registry
                .delete(self.product(), host, g)
                .await
                .context(|| format!("{host}: deleting its registry record"))?;
            return Ok(Outcome {
                host: host.clone(),
                action,
                instance: inst,
                record: None,
            });
        }
        if let Some(i) = &inst {
            rec.instance_id = Some(i.id.clone());
        }
        rec.state = "terminated".into();
        self.save(&mut rec, g).await?;
        Ok(Outcome {
            host: host.clone(),
            action,
            instance: inst,
            record: Some(rec),
        })
    }
}

/// Refuses volumes of `host` that live in another zone than `zone`.
fn check_volume_zones(host: &Hostname, zone: &Zone, volumes: &[Volume]) -> Result<(), Error> {
    // Data volumes only: root volumes carry the host's tags too, and go with their instance.
    if let Some(v) = volumes
        .iter()
        .find(|v| v.device().is_some() && v.zone.as_ref() != Some(zone) && v.state != "deleting")
    {
        let theirs = v.zone.as_ref().map(Zone::as_str).unwrap_or("?");
        return Err(Error::Refused {
            host: host.to_string(),
            message: format!(
                "its volume {} ({}) is in {theirs}, the host is in {zone}: EBS volumes attach only within their zone; start it in {theirs}, or move the data with a snapshot",
                v.id,
                v.device().unwrap_or("?")
            ),
        });
    }
    Ok(())
}

/// Shows one host: its registry record and its live instance. Read-only. When the
/// registry has no record, every region is searched by tags, so hosts stay visible
/// even without the registry.
pub async fn show(
    compute: &dyn ComputeRead,
    registry: &dyn RegistryRead,
    product: &Product,
    regions: &[Region],
    host: &Hostname,
) -> Result<HostView, Error> {
    let record = match registry.get(product, host).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the registry is unreachable; looking by tags only");
            None
        }
    };
    let search: Vec<Region> = match &record {
        Some(r) => vec![r.region()],
        None => regions.to_vec(),
    };
    let mut instance: Option<Instance> = None;
    for region in &search {
        let found = compute
            .instances(region, &InstanceFilter::host(product, host))
            .await
            .context(|| format!("{host}: describing instances in {region}"))?;
        let best = found
            .into_iter()
            .max_by_key(|i| (!i.state.is_gone(), i.launch_time));
        if best.as_ref().map(|i| (!i.state.is_gone(), i.launch_time))
            > instance
                .as_ref()
                .map(|i| (!i.state.is_gone(), i.launch_time))
        {
            instance = best;
        }
    }
    if record.is_none() && instance.is_none() {
        return Err(Error::NotFound {
            host: host.to_string(),
            message: format!(
                "no such host in product {product} (registry and tags in {} region(s))",
                search.len()
            ),
        });
    }
    Ok(HostView {
        host: host.clone(),
        record,
        instance,
    })
}

/// A fleet listing: the instances found and the regions that failed.
#[derive(Debug, Default, Serialize)]
pub struct Listing {
    /// Matching instances, sorted by hostname then launch time.
    pub instances: Vec<Instance>,
    /// Regions that could not be listed, with the reason.
    pub failed_regions: Vec<(Region, String)>,
}

/// Lists a product's instances in every region at once, each region bounded by
/// `region_timeout`; failed regions are reported, never fatal. Read-only.
pub async fn list(
    compute: &dyn ComputeRead,
    product: &Product,
    regions: &[Region],
    selection: &Selection,
    include_gone: bool,
    region_timeout: Duration,
) -> Listing {
    let filter = InstanceFilter {
        product: product.clone(),
        hosts: Vec::new(),
        include_gone,
    };
    let filter = &filter;
    let per_region = stream::iter(regions.iter().cloned())
        .map(|region| async move {
            let r = tokio::time::timeout(region_timeout, compute.instances(&region, filter)).await;
            (region, r)
        })
        .buffer_unordered(regions.len().clamp(1, 32))
        .collect::<Vec<_>>()
        .await;
    let mut listing = Listing::default();
    for (region, r) in per_region {
        match r {
            Ok(Ok(found)) => listing.instances.extend(found.into_iter().filter(|i| {
                selection.matches(&Candidate {
                    host: i.host().unwrap_or(""),
                    zone: i.zone.as_ref().map(Zone::as_str),
                    region: i.region.as_str(),
                    profile: i.profile(),
                })
            })),
            Ok(Err(e)) => listing.failed_regions.push((region, e.to_string())),
            Err(_) => listing.failed_regions.push((
                region,
                format!("no answer within {}s", region_timeout.as_secs_f64()),
            )),
        }
    }
    listing.failed_regions.sort();
    listing
        .instances
        .sort_by(|a, b| (a.host(), a.launch_time, &a.id).cmp(&(b.host(), b.launch_time, &b.id)));
    listing
}
