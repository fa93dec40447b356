//! Host lifecycle workflows: start, stop, restart, reboot, terminate, Elastic IPs.
//!
//! They speak only to the [`crate::ports`] traits, so the same code runs against AWS,
//! against moto, and against the in-memory fakes of `crate::fake`.
//!
//! Start of a host, in order ([`plan`], then [`launch`]):
//! 1. *plan* every host (registry read, profile and zone checks, its data volumes in
//!    every region, its user-data rendered); any problem stops the whole command
//!    before anything is created. The plan carries what it resolved;
//! 2. *claim* new hostnames with a conditional write (two operators: one wins);
//! 3. find the host's instance by its recorded id, else by its tags; a live one is
//!    adopted, started or left running;
//! 4. otherwise launch with the host's current token (`ClientToken` + tag); a token
//!    already spent on a terminated instance bumps the generation first;
//! 5. wait for `running`, attach its volumes and Elastic IP ([`storage`], [`eip`]),
//!    publish its names ([`dns`]), and record the instance and its state last: a record
//!    that says `running` says the host is complete (without waiting, the instance is
//!    recorded at once, as `pending`).
//!
//! A crash anywhere leaves a state that step 3 or 4 of a re-run picks up: an instance
//! launched but not recorded carries the token tag and is adopted, never duplicated.
//! Existing hosts are stopped, restarted, rebooted and terminated in [`power`].
//!
//! Hosts of one command that read or change instances of a region at about the same
//! time share requests ([`batch`]): one `DescribeInstances` per region per poll serves
//! every waiting host, and starts and stops go out many instances per request.

mod batch;
mod dns;
mod eip;
mod launch;
mod network;
mod plan;
mod power;
mod registry;
mod restore;
pub(crate) mod storage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::error::{Context, Error};
use crate::model::{HostRecord, Instance, InstanceFilter, InstanceId, InstanceState};
use crate::names::{Hostname, Product, Region};
use crate::ports::{
    Compute, Dns, Progress, ProviderError, ProviderErrorKind, ProviderResult, Registry,
    UserDataSource,
};
use crate::tags;
use crate::wait::{self, Backoff, Clock, Gave, SystemClock};

pub use plan::Resolved;
use registry::Lookup;
pub use registry::{SyncChange, SyncRow};
pub use restore::Restored;

/// Where a test may make cerveza die on purpose, to prove re-runs converge.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// Abort the process right after `RunInstances` returned, before recording.
    AfterLaunch,
    /// Abort a restore once its new volumes are made, before anything else changed.
    AfterRestoreVolumes,
    /// Abort a restore once the old volumes are marked replaced, before the new ones
    /// are promoted (the host then has no data volumes that a start would attach).
    AfterReplace,
    /// Abort a restore once it has ended, before the host is started.
    AfterRestore,
}

#[cfg(feature = "test-hooks")]
impl Settings {
    /// Aborts the process when the test asked to die at `at`.
    pub(crate) fn failpoint(&self, at: Failpoint, what: &str) {
        if self.failpoint == Some(at) {
            eprintln!("cerveza: failpoint {at:?}: aborting {what}");
            std::process::abort();
        }
    }
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
    /// Every region the fleet may use: a host's data volumes are looked for in all of
    /// them, so a first start elsewhere cannot leave its data behind.
    pub regions: Vec<Region>,
    /// How long another region may take to answer before it is left out (with a
    /// warning): no region is a single point of failure for the others.
    pub region_timeout: Duration,
    /// The VPC hosts launch into, per region (a region not listed: its default VPC).
    pub vpcs: BTreeMap<Region, String>,
    /// Test-only crash point.
    #[cfg(feature = "test-hooks")]
    pub failpoint: Option<Failpoint>,
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
            regions: Vec::new(),
            region_timeout: Duration::from_secs(20),
            vpcs: BTreeMap::new(),
            #[cfg(feature = "test-hooks")]
            failpoint: None,
        }
    }

    /// How the workflows poll.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.poll_initial,
            max: self.poll_max.max(self.poll_initial),
            timeout: self.wait_timeout,
        }
    }
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
    /// It was stopped and started again (same instance, new addresses).
    Restarted,
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
            Action::Restarted => "restarted",
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

/// What to do with a host's volumes and Elastic IP once its instance runs.
#[derive(Debug, Clone, Copy)]
pub enum Storage<'p> {
    /// Attach what the resolved profile asks for, creating what is missing.
    Ensure(&'p Resolved),
    /// Leave them as they are: the same instance keeps its volumes and address
    /// (restart), or the profile is not at hand.
    Keep,
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

/// How many times in all [`Lifecycle::steadily`] sends a call (and a command sends
/// one that is throttled or unreachable, as `backup` does its CreateSnapshots).
pub const STEADY_TRIES: u32 = 5;

/// A describe that failed while waiting: throttled or unreachable means "not yet"
/// (logged), anything else ends the wait.
fn describe_failed<T>(host: &Hostname, id: &str, e: ProviderError) -> Result<Option<T>, Error> {
    if e.kind.is_transient() {
        tracing::warn!(%host, error = %e, "describing {id} failed; still waiting");
        return Ok(None);
    }
    Err(e).context(|| format!("{host}: describing {id}"))
}

/// The host lifecycle, wired to its backends.
pub struct Lifecycle<'a> {
    compute: &'a dyn Compute,
    registry: &'a dyn Registry,
    settings: &'a Settings,
    progress: &'a dyn Progress,
    clock: &'a dyn Clock,
    user_data: Option<&'a dyn UserDataSource>,
    dns: Option<&'a dyn Dns>,
    /// Set once the registry failed to answer during this command: later hosts go
    /// straight to their tags, and record writes wait for a later command.
    registry_down: std::sync::atomic::AtomicBool,
    /// Polls of waiting hosts, per region (a window of one poll interval, at most 1 s).
    polls: batch::Batcher<Instance>,
    /// Look-ups of recorded instances, per region.
    lookups: batch::Batcher<Instance>,
    /// Searches for hosts' instances by their tags (live and gone), per region.
    searches: batch::Batcher<Vec<Instance>>,
    /// `StartInstances` and `StopInstances`, per region.
    starts: batch::Batcher<()>,
    stops: batch::Batcher<()>,
    /// Reads of hosts' volumes (while attaching, and while new ones are made), per
    /// region: 20 hosts with 4 volumes each once sent 369 `DescribeVolumes` in a start.
    volume_reads: batch::Batcher<Vec<crate::model::Volume>>,
    /// Every record of the product, read once for a command on many hosts (`None`: the
    /// read failed, and hosts are read one by one).
    prefetched: registry::Known,
    /// Each region's VPC, subnets and groups, read once by the first launch there.
    networks: network::Networks,
    offerings: network::Offerings,
}

/// Companions asked within this window share a look-up, start or stop request.
const GATHER: Duration = Duration::from_millis(200);

impl<'a> Lifecycle<'a> {
    /// Wires the workflows to their backends.
    pub fn new(
        compute: &'a dyn Compute,
        registry: &'a dyn Registry,
        settings: &'a Settings,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            compute,
            registry,
            settings,
            progress,
            clock: &SystemClock,
            user_data: None,
            dns: None,
            registry_down: std::sync::atomic::AtomicBool::new(false),
            polls: batch::Batcher::new(settings.poll_initial.min(Duration::from_secs(1))),
            lookups: batch::Batcher::new(GATHER),
            searches: batch::Batcher::new(GATHER),
            starts: batch::Batcher::new(GATHER),
            stops: batch::Batcher::new(GATHER),
            volume_reads: batch::Batcher::new(GATHER),
            prefetched: std::sync::Mutex::new(None),
            networks: network::Networks::default(),
            offerings: network::Offerings::default(),
        }
    }

    /// Publishes hosts' names in `dns`: after start, stop and terminate.
    pub fn with_dns(mut self, dns: &'a dyn Dns) -> Self {
        self.dns = Some(dns);
        self
    }

    /// Passes user-data built by `source` to every launch.
    pub fn with_user_data(mut self, source: &'a dyn UserDataSource) -> Self {
        self.user_data = Some(source);
        self
    }

    /// Waits and backs off on `clock` instead of the real one.
    pub fn with_clock(mut self, clock: &'a dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    fn product(&self) -> &Product {
        &self.settings.product
    }

    /// [`Self::for_each`] for hosts that each read their registry record first: a
    /// pass over many hosts reads them all in one query.
    async fn for_each_known<'s, F, Fut>(&'s self, hosts: Vec<Hostname>, f: F) -> Results
    where
        F: Fn(Hostname) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, Error>> + 's,
    {
        let _known = self.prefetch(&hosts).await;
        self.for_each(hosts, f).await
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

    /// The record of an existing host: the registry's, or one made from its live
    /// instance's tags when the registry does not answer (existing hosts never wait on
    /// the registry's region) or has no record of it (tags are the truth about what
    /// exists; `registry sync` rebuilds the record).
    async fn record(&self, host: &Hostname) -> Result<HostRecord, Error> {
        match self.lookup(host).await? {
            Lookup::Record(rec) => Ok(*rec),
            Lookup::Unknown => match self.search_tags(host, false).await.live {
                Some(live) => {
                    self.progress.warn(&format!(
                        "{host} has no registry record; acting on {}, the instance its tags name (`cerveza registry sync` rebuilds the record)",
                        live.id
                    ));
                    self.record_of(host, live)
                }
                None => Err(Error::NotFound {
                    host: host.to_string(),
                    message: format!(
                        "no such host in product {} (`cerveza list` shows the fleet)",
                        self.product()
                    ),
                }),
            },
            Lookup::Down => self.record_from_tags(host).await,
        }
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

    /// `call`, sent again after a pause (the poll interval, at least 200 ms, doubling,
    /// jittered) while it fails throttled or unreachable, [`STEADY_TRIES`] times in all.
    /// The SDK retries such failures itself until its retry quota is spent, as it is in
    /// a storm of failures; then the first reset reaches here (in full runs of the fault
    /// tests, hosts failed on one lost AttachVolume or RunInstances answer). Only for calls
    /// safe to repeat: reads, calls with a ClientToken, an attach checked not to have
    /// landed.
    pub(super) async fn steadily<T, F, Fut>(
        &self,
        what: impl Fn() -> String,
        call: F,
    ) -> crate::ports::ProviderResult<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = crate::ports::ProviderResult<T>>,
    {
        let mut pause = self
            .settings
            .poll_initial
            .max(std::time::Duration::from_millis(200));
        let mut tries = 1;
        loop {
            match call().await {
                Err(e) if e.kind.is_transient() && tries < STEADY_TRIES => {
                    tracing::debug!(error = %e, "{}: sent again", what());
                    self.clock.sleep(pause.mul_f64(0.5 + fastrand::f64())).await;
                    pause *= 2;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// `call` to `region`, given up after the region timeout: a region that does not
    /// answer fails the step at once, not after the SDK's own timeouts (a minute).
    pub(super) async fn bounded<T>(
        &self,
        region: &Region,
        call: impl std::future::Future<Output = ProviderResult<T>>,
    ) -> ProviderResult<T> {
        tokio::time::timeout(self.settings.region_timeout, call)
            .await
            .unwrap_or_else(|_| Err(self.no_answer(region)))
    }

    /// What a step given up after the region timeout fails with.
    pub(super) fn no_answer(&self, region: &Region) -> ProviderError {
        ProviderError::new(
            ProviderErrorKind::Unavailable,
            format!(
                "{region} did not answer within {}s (region-timeout)",
                self.settings.region_timeout.as_secs_f64()
            ),
        )
    }

    /// Writes `rec` if the stored generation is still `expected`. While the registry
    /// does not answer, the write is left for a later command (or `registry sync`):
    /// the instance's tags hold the truth meanwhile.
    async fn save(&self, rec: &mut HostRecord, expected: u64) -> Result<(), Error> {
        // Generation 0: a record made from tags, which the registry does not hold.
        if self.is_registry_down() || rec.generation == 0 {
            return Ok(());
        }
        rec.updated_at = now();
        rec.updated_by.clone_from(&self.settings.operator);
        match self.registry.update(rec, expected).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind.is_transient() => {
                self.registry_is_down(&e);
                Ok(())
            }
            Err(e) if e.kind == ProviderErrorKind::Conflict => Err(Error::Conflict {
                host: rec.hostname.to_string(),
                message: "its registry record was changed by another operator meanwhile; run the command again".into(),
            }),
            Err(source) => Err(source).context(|| format!("{}: writing the registry", rec.hostname)),
        }
    }

    /// Records `state` (and the instance) when it differs from what is recorded.
    async fn record_state(&self, rec: &mut HostRecord, inst: &Instance) -> Result<(), Error> {
        if rec.instance_id.as_ref() == Some(&inst.id) && rec.state == inst.state {
            return Ok(());
        }
        rec.instance_id = Some(inst.id.clone());
        rec.state = inst.state.clone();
        let g = rec.generation;
        self.save(rec, g).await
    }

    /// The host's live instance (recorded id first, else by tags) and the launch
    /// tokens already spent on instances that are gone.
    async fn find(&self, rec: &HostRecord) -> Result<Found, Error> {
        let (product, host, region) = (self.product(), &rec.hostname, rec.region());
        if let Some(id) = &rec.instance_id {
            let inst = self
                .described(&self.lookups, &region, id)
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
        let region_ref = &region;
        let all = self
            .searches
            .get(self.clock, &region, host.as_str(), |keys| async move {
                let mut filter = InstanceFilter::host(product, host);
                filter.hosts = keys
                    .iter()
                    .filter_map(|k| Hostname::parse(k).ok())
                    .collect();
                let mut by_host: HashMap<String, Vec<Instance>> =
                    keys.into_iter().map(|k| (k, Vec::new())).collect();
                for i in self.compute.instances(region_ref, &filter).await? {
                    if let Some(v) = i.host().and_then(|h| by_host.get_mut(h)) {
                        v.push(i);
                    }
                }
                Ok(by_host)
            })
            .await
            .context(|| format!("{host}: looking for its instances in {region}"))?
            .unwrap_or_default();
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

    /// The host's live instance, or an error saying it has none.
    async fn live(&self, rec: &HostRecord) -> Result<Instance, Error> {
        self.find(rec)
            .await?
            .live
            .ok_or_else(|| Self::no_instance(rec))
    }

    /// Polls until the instance reaches `target`, tolerating `NotFound` right after a
    /// launch (eventual consistency) and throttling.
    async fn wait_for(
        &self,
        host: &Hostname,
        region: &Region,
        id: &crate::model::InstanceId,
        target: InstanceState,
    ) -> Result<Instance, Error> {
        self.progress
            .step(host, &format!("waiting for {id} to be {target}"));
        let last = std::sync::Mutex::new(String::from("unknown"));
        let seen = |what: &str| {
            *last.lock().unwrap_or_else(|p| p.into_inner()) = what.to_owned();
        };
        let target = &target;
        // A start EC2 gives up on shows as the instance going back to stopped. A read
        // just after StartInstances may still show the old stopped state, so a stop
        // counts once the instance was seen moving, or once EC2's own reason for it
        // (`Server.…`: no capacity, an internal error) has lasted past a read's lag.
        let moved = std::sync::atomic::AtomicBool::new(false);
        let since = self.clock.now();
        let bounced = |i: &Instance| {
            moved.load(std::sync::atomic::Ordering::Relaxed)
                || (i
                    .state_reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("Server."))
                    && self.clock.now().saturating_sub(since) >= STALE_READ)
        };
        let waited = wait::poll(self.clock, &self.settings.backoff(), || async {
            match self.described(&self.polls, region, id).await {
                Ok(Some(i)) if &i.state == target => Ok(Some(i)),
                Ok(Some(i)) if i.state.is_gone() && !target.is_gone() => Err(Error::Refused {
                    host: host.to_string(),
                    message: format!(
                        "{id} went to {} while cerveza waited for {target}: {}; `cerveza start {host}` launches a new one",
                        i.state,
                        failed_because(&i)
                    ),
                }),
                Ok(Some(i))
                    if i.state == InstanceState::Stopped
                        && *target == InstanceState::Running
                        && bounced(&i) =>
                {
                    Err(Error::Refused {
                        host: host.to_string(),
                        message: format!(
                            "{id} went back to stopped while cerveza waited for running: {}; `cerveza start {host}` tries again",
                            failed_because(&i)
                        ),
                    })
                }
                Ok(Some(i)) => {
                    if i.state != InstanceState::Stopped {
                        moved.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    seen(i.state.name());
                    Ok(None)
                }
                Ok(None) => {
                    seen("not yet visible");
                    Ok(None)
                }
                Err(e) => describe_failed(host, id.as_str(), e),
            }
        })
        .await;
        let last = last.into_inner().unwrap_or_else(|p| p.into_inner());
        self.waited(host, id.as_str(), target.name(), waited, last)
    }

    /// Instance `id` as the region shows it now, asked in one request together with
    /// the other hosts of this command that ask `batcher` the same region meanwhile.
    async fn described(
        &self,
        batcher: &batch::Batcher<Instance>,
        region: &Region,
        id: &InstanceId,
    ) -> ProviderResult<Option<Instance>> {
        batcher
            .get(self.clock, region, id.as_str(), |keys| async move {
                let ids: Vec<InstanceId> = keys.into_iter().map(InstanceId::new).collect();
                let found = self.compute.instances_by_id(region, &ids).await?;
                Ok(found.into_iter().map(|i| (i.id.to_string(), i)).collect())
            })
            .await
    }

    /// Starts (`start`) or stops one instance, in one request with the other hosts of
    /// this command that start or stop in the region meanwhile. EC2 refuses such a
    /// request whole when one instance cannot go; each then goes alone, so one host's
    /// trouble stays its own.
    async fn power(&self, start: bool, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        // StartInstances and StopInstances are idempotent: sent again while throttled
        // or unreachable.
        let verb = if start { "starting" } else { "stopping" };
        self.steadily(
            || format!("{verb} {id}"),
            || self.power_once(start, region, id),
        )
        .await
    }

    async fn power_once(
        &self,
        start: bool,
        region: &Region,
        id: &InstanceId,
    ) -> ProviderResult<()> {
        let batcher = if start { &self.starts } else { &self.stops };
        let done = batcher
            .get(self.clock, region, id.as_str(), |keys| async move {
                let ids: Vec<InstanceId> = keys.iter().cloned().map(InstanceId::new).collect();
                let sent = if start {
                    self.compute.start_many(region, &ids).await
                } else {
                    self.compute.stop_many(region, &ids).await
                };
                match sent {
                    Ok(()) => Ok(keys.into_iter().map(|k| (k, ())).collect()),
                    Err(e) if ids.len() == 1 => Err(e),
                    Err(_) => Ok(HashMap::new()),
                }
            })
            .await?;
        match (done, start) {
            (Some(()), _) => Ok(()),
            (None, true) => self.compute.start(region, id).await,
            (None, false) => self.compute.stop(region, id).await,
        }
    }

    /// Turns the end of a [`wait::poll`] into the workflow's error.
    fn waited<T>(
        &self,
        host: &Hostname,
        id: &str,
        target: &str,
        waited: Result<T, Gave<Error>>,
        last: String,
    ) -> Result<T, Error> {
        waited.map_err(|g| match g {
            Gave::Up(e) => e,
            Gave::TimedOut => Error::Timeout {
                host: host.to_string(),
                id: id.to_owned(),
                target: target.to_owned(),
                last,
                seconds: self.settings.wait_timeout.as_secs(),
            },
        })
    }
}

/// How long a read may still show an instance's state from before a start.
const STALE_READ: std::time::Duration = std::time::Duration::from_secs(15);

/// EC2's reason for an instance's state, with what to do about the common ones.
fn failed_because(i: &Instance) -> String {
    let Some(reason) = i.state_reason.as_deref() else {
        return "EC2 gave no reason (capacity, a bad AMI, or someone terminated it)".into();
    };
    let hint = if reason.contains("KMS") {
        " (an EBS volume of the instance is encrypted with a KMS key this account cannot use: check the account's default key with `aws ec2 get-ebs-default-kms-key-id`, the key's state and its key policy)"
    } else if reason.contains("InsufficientInstanceCapacity") {
        " (EC2 has no capacity for this type in the zone now: try again later, or start it in another zone or with another type)"
    } else if reason.contains("VolumeLimitExceeded") {
        " (the account's EBS storage quota is used up: raise it in Service Quotas)"
    } else {
        ""
    };
    format!("EC2 says {reason}{hint}")
}
