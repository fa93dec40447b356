//! The registry's part, and going on without it.
//!
//! The registry lives in one home region. The paper's rule is that no region may stop
//! another, so only what truly needs the registry waits on it: claiming a new hostname
//! (a conditional write there). Existing hosts are found by their tags when the
//! registry does not answer; their records are brought up to date by the next command
//! that reaches it, or by [`Lifecycle::sync_registry`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use super::{now, Lifecycle};
use crate::error::{Context, Error};
use crate::model::{HostRecord, Instance, InstanceFilter, InstanceState};
use crate::names::{Hostname, ProfileName, Region, Zone};
use crate::ports::{ProviderError, ProviderErrorKind};
use crate::tags;

/// How long a region may take to answer a search for one host by its tags (a small
/// answer): short, since a dead region would otherwise hold every such command.
const HOST_SEARCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the regions' tags say of one host (see [`Lifecycle::search_tags`]).
#[derive(Default)]
pub(super) struct TagSearch {
    /// Its live instance, if a region has one.
    pub live: Option<Instance>,
    /// Its terminated instances (EC2 lists them for about an hour).
    pub gone: Vec<Instance>,
    /// Its data volumes.
    pub volumes: Vec<crate::model::Volume>,
    /// Regions that did not answer, with why.
    pub silent: Vec<String>,
}

/// The most launches of one host whose tokens a relaunch from tags recognises.
const MAX_GENERATION: u64 = 10_000;

/// What the registry said about a host.
pub(super) enum Lookup {
    /// Its record.
    Record(Box<HostRecord>),
    /// It has none: the host is not known.
    Unknown,
    /// The registry did not answer (throttled, unreachable, too slow).
    Down,
}

/// What `registry sync` did for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum SyncChange {
    /// The record already matched the instance.
    Unchanged,
    /// The record was brought up to date.
    Updated {
        /// What the record said (`running i-0abc`).
        from: String,
        /// What it says now.
        to: String,
    },
    /// A live instance had no record: one was made from its tags.
    Created,
    /// The record's region did not answer: left as it is.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// One host of `registry sync`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRow {
    /// The host.
    pub host: Hostname,
    /// Its region.
    pub region: Region,
    /// What was done.
    #[serde(flatten)]
    pub change: SyncChange,
}

/// `running i-0abc`, `terminated -`: what a record says of its instance.
fn summary(state: &InstanceState, id: Option<&crate::model::InstanceId>) -> String {
    format!(
        "{state} {}",
        id.map(|i| i.as_str().to_owned())
            .unwrap_or_else(|| "-".into())
    )
}

/// A command on this many hosts or more reads the product's records in one query.
const PREFETCH_AT: usize = 8;

/// Records read in one query for a pass over many hosts.
pub(super) type Known = std::sync::Mutex<Option<std::sync::Arc<HashMap<Hostname, HostRecord>>>>;

/// Forgets the prefetched records when dropped.
pub(super) struct Prefetched<'a>(&'a Known);

impl Drop for Prefetched<'_> {
    fn drop(&mut self) {
        lock(self.0).take();
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lifecycle<'_> {
    /// Whether the registry failed to answer earlier in this command.
    pub(super) fn is_registry_down(&self) -> bool {
        self.registry_down.load(Ordering::Relaxed)
    }

    /// Notes that the registry did not answer (`e`): said once, in one line.
    pub(super) fn registry_is_down(&self, e: &ProviderError) {
        if !self.registry_down.swap(true, Ordering::Relaxed) {
            self.progress.warn(&format!(
                "{} did not answer: {e}. Going on from the instances' tags; records are brought up to date by the next command that reaches it, or by `cerveza registry sync`",
                self.registry.describe()
            ));
        }
    }

    /// For a command on many hosts, reads every record of the product in one query
    /// (a strongly consistent, paginated `Query`) instead of one read per host; later
    /// [`Self::lookup`]s answer from it. Writes stay conditional, so a record changed
    /// meanwhile by another operator is still caught.
    /// The records are forgotten when the returned guard is dropped, at the end of
    /// the pass over the hosts: a later pass (restart's start after its stop, or the
    /// next command on this lifecycle) reads them again.
    pub(super) async fn prefetch(&self, hosts: &[Hostname]) -> Prefetched<'_> {
        let guard = Prefetched(&self.prefetched);
        if hosts.len() < PREFETCH_AT || self.is_registry_down() {
            return guard;
        }
        match self.registry.list(self.product()).await {
            Ok(recs) => {
                let known = recs.into_iter().map(|r| (r.hostname.clone(), r)).collect();
                *lock(&self.prefetched) = Some(std::sync::Arc::new(known));
            }
            Err(e) if e.kind.is_transient() => self.registry_is_down(&e),
            // Anything else: each host reads its own record and reports what it gets.
            Err(_) => {}
        }
        guard
    }

    /// The registry's word on `host`; a registry that does not answer is `Down` (and
    /// is not asked again in this command).
    pub(super) async fn lookup(&self, host: &Hostname) -> Result<Lookup, Error> {
        if self.is_registry_down() {
            return Ok(Lookup::Down);
        }
        let known = lock(&self.prefetched).clone();
        if let Some(known) = known {
            return Ok(known
                .get(host)
                .cloned()
                .map_or(Lookup::Unknown, |r| Lookup::Record(Box::new(r))));
        }
        match self.registry.get(self.product(), host).await {
            Ok(Some(rec)) => Ok(Lookup::Record(Box::new(rec))),
            Ok(None) => Ok(Lookup::Unknown),
            Err(e) if e.kind.is_transient() => {
                self.registry_is_down(&e);
                Ok(Lookup::Down)
            }
            Err(source) => Err(source).context(|| format!("{host}: reading the registry")),
        }
    }

    /// An error for what cannot be done without the registry.
    pub(super) fn needs_registry(&self, host: &Hostname, what: &str) -> Error {
        Error::Provider {
            context: format!("{host}: {what}"),
            source: ProviderError::new(
                ProviderErrorKind::Unavailable,
                format!(
                    "{} did not answer; nothing was done for this host",
                    self.registry.describe()
                ),
            ),
        }
    }

    /// What every configured region's tags say of `host`, asked at once, each region
    /// bounded by [`HOST_SEARCH_LIMIT`] (at most the region timeout): the first live
    /// instance ends the search; otherwise its terminated instances and (with
    /// `volumes`) its data volumes, and the regions that did not answer.
    pub(super) async fn search_tags(&self, host: &Hostname, volumes: bool) -> TagSearch {
        let product = self.product();
        let filter = InstanceFilter::host(product, host);
        let limit = self.settings.region_timeout.min(HOST_SEARCH_LIMIT);
        let mut asks: FuturesUnordered<_> = self
            .settings
            .regions
            .iter()
            .map(|region| {
                let filter = &filter;
                async move {
                    let ask = async {
                        let instances = self.compute.instances(region, filter);
                        if !volumes {
                            return instances.await.map(|i| (i, Vec::new()));
                        }
                        let vols =
                            self.compute
                                .volumes(region, product, std::slice::from_ref(host));
                        let (i, v) = futures::join!(instances, vols);
                        Ok((i?, v?))
                    };
                    (region, tokio::time::timeout(limit, ask).await)
                }
            })
            .collect();
        let mut found = TagSearch::default();
        while let Some((region, answer)) = asks.next().await {
            match answer {
                Ok(Ok((instances, vols))) => {
                    let (gone, live): (Vec<Instance>, Vec<Instance>) =
                        instances.into_iter().partition(|i| i.state.is_gone());
                    if let Some(i) = live.into_iter().next() {
                        found.live = Some(i);
                        return found;
                    }
                    found.gone.extend(gone);
                    found
                        .volumes
                        .extend(vols.into_iter().filter(|v| v.device().is_some()));
                }
                Ok(Err(e)) => found.silent.push(format!("{region} ({e})")),
                Err(_) => found
                    .silent
                    .push(format!("{region} (no answer within {limit:?})")),
            }
        }
        found
    }

    /// A record made from the host's live instance's tags, for acting on an existing
    /// host while the registry does not answer.
    pub(super) async fn record_from_tags(&self, host: &Hostname) -> Result<HostRecord, Error> {
        match self.search_tags(host, false).await {
            TagSearch { live: Some(i), .. } => self.record_of(host, i),
            TagSearch { silent, .. } if silent.is_empty() => Err(Error::NotFound {
                host: host.to_string(),
                message: format!(
                    "{} did not answer, and no live instance carries its tags in {} region(s)",
                    self.registry.describe(),
                    self.settings.regions.len()
                ),
            }),
            TagSearch { silent, .. } => Err(self.needs_registry(
                host,
                &format!(
                    "no live instance carries its tags in the regions that answered (not: {})",
                    silent.join(", ")
                ),
            )),
        }
    }

    /// A record to relaunch `host` from while the registry does not answer: profile
    /// and zone from its most recent terminated instance (EC2 lists them for about an
    /// hour) or else from its data volumes, and the highest generation its launch
    /// tokens show. Two operators doing this at once compute the same next token, and
    /// EC2's `ClientToken` gives them one instance.
    pub(super) fn relaunch_record(&self, host: &Hostname, found: &TagSearch) -> Option<HostRecord> {
        let product = self.product();
        let (gone, volumes) = (&found.gone, &found.volumes);
        let last = gone.iter().max_by_key(|i| i.launch_time);
        // The claim of its last life and the generations its launches under that claim
        // reached. Volumes carry no claim (they outlive it, and a later claim of the name
        // adopts them): a relaunch from volumes alone takes the tokens of a record
        // without one.
        let claim = last.map(|i| i.claim().to_owned()).unwrap_or_default();
        let generation = gone
            .iter()
            .filter(|i| i.claim() == claim)
            .filter_map(|i| i.token())
            .filter_map(|t| crate::token::generation_of(product, host, &claim, t, MAX_GENERATION))
            .max()
            .unwrap_or(0);
        let from_instance =
            last.and_then(|i| Some((ProfileName::parse(i.profile()?).ok()?, i.zone.clone()?)));
        let from_volumes = || {
            volumes.iter().find_map(|v| {
                Some((
                    ProfileName::parse(v.tags.get(tags::PROFILE)?).ok()?,
                    v.zone.clone()?,
                ))
            })
        };
        let (profile, zone) = from_instance.or_else(from_volumes)?;
        Some(HostRecord {
            product: product.clone(),
            hostname: host.clone(),
            profile,
            zone,
            instance_id: None,
            state: InstanceState::Terminated,
            generation,
            updated_at: now(),
            updated_by: self.settings.operator.clone(),
            claim,
        })
    }

    /// A provisional record for `host` from its instance's tags. Generation 0 marks it:
    /// the registry does not hold it, and it is never written as it is.
    pub(super) fn record_of(&self, host: &Hostname, i: Instance) -> Result<HostRecord, Error> {
        let refused = |what: &str| Error::Refused {
            host: host.to_string(),
            message: format!(
                "{} did not answer, and its instance {} has no valid {what} tag to go on from",
                self.registry.describe(),
                i.id
            ),
        };
        let profile = i
            .profile()
            .and_then(|p| ProfileName::parse(p).ok())
            .ok_or_else(|| refused(tags::PROFILE))?;
        let zone = i
            .zone
            .clone()
            .or_else(|| i.tags.get(tags::ZONE).and_then(|z| Zone::parse(z).ok()))
            .ok_or_else(|| refused(tags::ZONE))?;
        let claim = i.claim().to_owned();
        Ok(HostRecord {
            product: self.product().clone(),
            hostname: host.clone(),
            profile,
            zone,
            instance_id: Some(i.id),
            state: i.state,
            generation: 0,
            updated_at: now(),
            updated_by: self.settings.operator.clone(),
            claim,
        })
    }

    /// Reconciles the registry with the instances' tags in every region: records are
    /// brought up to date with their host's live instance (or marked terminated when it
    /// is gone), and live instances without a record get one made from their tags.
    /// Every write is conditional, as always. Hosts of a region that does not answer
    /// are left as they are and reported.
    pub async fn sync_registry(&self) -> Result<Vec<SyncRow>, Error> {
        let product = self.product();
        let records = self
            .registry
            .list(product)
            .await
            .context(|| "reading the registry".to_owned())?;
        let limit = self.settings.region_timeout;
        let filter = InstanceFilter::product(product);
        let mut regions: BTreeSet<Region> = self.settings.regions.iter().cloned().collect();
        regions.extend(records.iter().map(HostRecord::region));
        let listed = futures::future::join_all(regions.iter().map(|region| {
            let filter = &filter;
            async move {
                let r = tokio::time::timeout(limit, self.compute.instances(region, filter)).await;
                let r = match r {
                    Ok(Ok(found)) => Ok(found),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {limit:?}")),
                };
                (region.clone(), r)
            }
        }))
        .await;
        let listed: BTreeMap<Region, Result<Vec<Instance>, String>> = listed.into_iter().collect();
        let live = |host: &Hostname, region: &Region| -> Result<Option<Instance>, String> {
            match listed.get(region) {
                Some(Ok(found)) => Ok(found
                    .iter()
                    .find(|i| i.host() == Some(host.as_str()))
                    .cloned()),
                Some(Err(e)) => Err(e.clone()),
                None => Ok(None),
            }
        };
        let mut rows = Vec::new();
        let known: BTreeSet<&Hostname> = records.iter().map(|r| &r.hostname).collect();
        for rec in &records {
            let region = rec.region();
            let change = match live(&rec.hostname, &region) {
                Err(reason) => SyncChange::Skipped {
                    reason: format!("{region}: {reason}"),
                },
                Ok(instance) => self.sync_one(rec, instance).await?,
            };
            rows.push(SyncRow {
                host: rec.hostname.clone(),
                region,
                change,
            });
        }
        // Live instances the registry does not know: made from their tags.
        for found in listed.values().filter_map(|r| r.as_ref().ok()) {
            for i in found {
                let Some(host) = i.host().and_then(|h| Hostname::parse(h).ok()) else {
                    continue;
                };
                if known.contains(&host) || rows.iter().any(|r| r.host == host) {
                    continue;
                }
                let mut rec = self.record_of(&host, i.clone())?;
                rec.generation = 1;
                self.registry
                    .create(&rec)
                    .await
                    .context(|| format!("{host}: creating its record from its tags"))?;
                rows.push(SyncRow {
                    host,
                    region: i.region.clone(),
                    change: SyncChange::Created,
                });
            }
        }
        rows.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(rows)
    }

    /// Brings one record in line with its host's live instance (or its absence).
    async fn sync_one(
        &self,
        rec: &HostRecord,
        instance: Option<Instance>,
    ) -> Result<SyncChange, Error> {
        let (state, id) = match &instance {
            Some(i) => (i.state.clone(), Some(i.id.clone())),
            // Gone: the record keeps the last instance id, as terminate does.
            None if rec.state == InstanceState::Terminated || rec.instance_id.is_none() => {
                return Ok(SyncChange::Unchanged)
            }
            None => (InstanceState::Terminated, rec.instance_id.clone()),
        };
        if rec.state == state && rec.instance_id == id {
            return Ok(SyncChange::Unchanged);
        }
        let from = summary(&rec.state, rec.instance_id.as_ref());
        let mut updated = rec.clone();
        updated.state = state;
        updated.instance_id = id;
        updated.updated_at = now();
        updated.updated_by.clone_from(&self.settings.operator);
        let to = summary(&updated.state, updated.instance_id.as_ref());
        match self.registry.update(&updated, rec.generation).await {
            Ok(()) => Ok(SyncChange::Updated { from, to }),
            Err(e) if e.kind == ProviderErrorKind::Conflict => Err(Error::Conflict {
                host: rec.hostname.to_string(),
                message: "its record was changed by another operator meanwhile; run `cerveza registry sync` again".into(),
            }),
            Err(source) => Err(source).context(|| format!("{}: writing the registry", rec.hostname)),
        }
    }
}
