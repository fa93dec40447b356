//! Planning a start: every host is checked, and what it needs resolved, before anything
//! is created.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};

use super::registry::Lookup;
use super::{Lifecycle, Results, Storage};
use crate::error::{Context, Error};
use crate::model::{HostRecord, InstanceFilter};
use crate::names::{Hostname, ProfileName, Region, Zone};
use crate::ports::HostContext;
use crate::profile::{InstanceProfile, ProfileSet, VolumeProfile};

/// What a start resolved once, while planning: the instance profile, the volume
/// profiles it names, and the host's user-data bytes.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The instance profile.
    pub profile: InstanceProfile,
    /// Its volume profiles, in the order it names them.
    pub volumes: Vec<VolumeProfile>,
    /// The user-data to launch with.
    pub user_data: Option<Vec<u8>>,
}

impl Resolved {
    /// The volumes the profile asks for: (volume profile, member index, device).
    pub fn wanted_volumes(&self) -> Vec<(&VolumeProfile, u32, &str)> {
        self.volumes
            .iter()
            .flat_map(|vp| {
                vp.devices
                    .iter()
                    .enumerate()
                    .map(move |(i, d)| (vp, i as u32, d.as_str()))
            })
            .collect()
    }
}

/// What the hosts of one start share while planning.
struct Shared {
    /// Every host of the command.
    hosts: Vec<Hostname>,
    /// The zones of each region hosts start in, looked up once per region.
    zones: tokio::sync::Mutex<BTreeMap<Region, Vec<Zone>>>,
    /// The volumes of the hosts, in every region.
    volumes: tokio::sync::OnceCell<super::storage::VolumeIndex>,
}

/// Refuses `zone` when its region's zones (`zones`) do not include it.
fn zone_in(host: &Hostname, zone: &Zone, zones: &[Zone]) -> Result<(), Error> {
    if zones.contains(zone) {
        return Ok(());
    }
    let names: Vec<&str> = zones.iter().map(Zone::as_str).collect();
    Err(Error::Usage {
        host: host.to_string(),
        message: format!(
            "zone {zone} does not exist in region {} (it has: {})",
            zone.region(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        ),
    })
}

/// One host's start, planned.
pub(super) struct StartPlan {
    pub host: Hostname,
    /// Its record, when the host is known.
    pub record: Option<HostRecord>,
    pub zone: Zone,
    pub profile: ProfileName,
    /// The profile resolved; for a known host whose remembered profile no longer
    /// resolves, why (a launch then fails with it; a start of its instance does not).
    pub resolved: Result<Resolved, String>,
}

impl StartPlan {
    /// What to do with storage once the instance runs.
    pub fn storage(&self) -> Storage<'_> {
        match &self.resolved {
            Ok(r) => Storage::Ensure(r),
            Err(_) => Storage::Keep,
        }
    }
}

impl Lifecycle<'_> {
    /// Starts hosts: launches new ones (`profile` and `zone` required the first time),
    /// starts stopped ones, relaunches ones whose instance is gone with the remembered
    /// profile and zone. Plans every host first: any planning error (bad zone, unknown
    /// profile, missing AMI, mismatching arguments) returns `Err` with nothing created.
    pub async fn start(
        &self,
        profiles: &ProfileSet,
        hosts: Vec<Hostname>,
        zone: Option<&Zone>,
        profile: Option<&ProfileName>,
    ) -> Result<Results, Vec<(Hostname, Error)>> {
        let wants = hosts
            .into_iter()
            .map(|h| (h, zone.cloned(), profile.cloned()))
            .collect();
        self.start_each(profiles, wants).await
    }

    /// [`Self::start`] with a zone and a profile per host (a fleet file's hosts): each
    /// must match what the registry remembers of a known host.
    pub async fn start_each(
        &self,
        profiles: &ProfileSet,
        wants: Vec<(Hostname, Option<Zone>, Option<ProfileName>)>,
    ) -> Result<Results, Vec<(Hostname, Error)>> {
        let hosts: Vec<Hostname> = wants.iter().map(|(h, _, _)| h.clone()).collect();
        // Hosts are planned concurrently (a registry read each); the zones of each
        // region, and the volumes of these hosts in every region, are looked
        // up once, by whoever needs them first.
        let known = self.prefetch(&hosts).await;
        let shared = Shared {
            hosts: hosts.clone(),
            zones: tokio::sync::Mutex::new(BTreeMap::new()),
            volumes: tokio::sync::OnceCell::new(),
        };
        let planned: Vec<(Hostname, Result<StartPlan, Error>)> = stream::iter(wants)
            .map(|(host, zone, profile)| {
                let shared = &shared;
                async move {
                    let plan = self
                        .plan_start(profiles, &host, zone.as_ref(), profile.as_ref(), shared)
                        .await;
                    (host, plan)
                }
            })
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        drop(known);
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
                match by_host.get(&h) {
                    Some(plan) => self.start_one(plan).await,
                    None => unreachable!("every host given was planned"),
                }
            })
            .await)
    }

    async fn plan_start(
        &self,
        profiles: &ProfileSet,
        host: &Hostname,
        zone: Option<&Zone>,
        profile: Option<&ProfileName>,
        shared: &Shared,
    ) -> Result<StartPlan, Error> {
        let usage = |message: String| Error::Usage {
            host: host.to_string(),
            message,
        };
        let record = match self.lookup(host).await? {
            Lookup::Record(rec) => Some(*rec),
            Lookup::Unknown => None,
            // An existing host goes on from its instance's tags; a new hostname must
            // be claimed in the registry, and one whose instance is gone needs the
            // profile and zone it remembers.
            Lookup::Down => {
                let found = self.search_tags(host, true).await;
                if let Some(live) = found.live.clone() {
                    Some(self.record_of(host, live)?)
                } else if let Some(gone) = self.relaunch_record(host, &found) {
                    Some(gone)
                } else {
                    return Err(self.needs_registry(
                        host,
                        "no instance or volume carries its tags, and a new hostname is claimed in the registry",
                    ));
                }
            }
        };
        if let Some(rec) = record {
            if let Some(p) = profile.filter(|p| **p != rec.profile) {
                return Err(usage(format!(
                    "it was started with profile {} (registry), not {p}; to change it, `cerveza terminate {host} --forget` first",
                    rec.profile
                )));
            }
            let target = match zone.filter(|z| **z != rec.zone) {
                None => rec.zone.clone(),
                Some(z) => {
                    self.may_move_claim(&rec, z).await?;
                    let p = profiles.instance(rec.profile.as_str())?;
                    p.ami_for(&z.region())?;
                    self.check_zone(host, z, shared).await?;
                    self.placement(host, z, p).await?;
                    z.clone()
                }
            };
            let resolved = profiles
                .instance(rec.profile.as_str())
                .map_err(|e| e.to_string())
                .and_then(|p| self.resolve(profiles, host, &target, p));
            // Its data volumes where they must be, and no restore of them half done,
            // before its instance is started or launched.
            if resolved.as_ref().is_ok_and(|r| !r.volumes.is_empty()) {
                let home = rec.region();
                let index = shared
                    .volumes
                    .get_or_init(|| self.volume_index(&shared.hosts, &home))
                    .await;
                super::storage::check_volume_zones(host, &target, &index.of(host, &home)?)?;
            }
            return Ok(StartPlan {
                host: host.clone(),
                zone: target,
                profile: rec.profile.clone(),
                record: Some(rec),
                resolved,
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
        let instance_profile = profiles.instance(profile.as_str())?;
        instance_profile.ami_for(&region)?;
        let resolved = self
            .resolve(profiles, host, zone, instance_profile)
            .map_err(usage)?;
        self.check_zone(host, zone, shared).await?;
        self.placement(host, zone, instance_profile).await?;
        if !resolved.volumes.is_empty() {
            let index = shared
                .volumes
                .get_or_init(|| self.volume_index(&shared.hosts, &region))
                .await;
            super::storage::check_volume_zones(host, zone, &index.of(host, &region)?)?;
        }
        Ok(StartPlan {
            host: host.clone(),
            record: None,
            zone: zone.clone(),
            profile: profile.clone(),
            resolved: Ok(resolved),
        })
    }

    /// Refuses a zone its region does not have (the region's zones are listed once).
    async fn check_zone(&self, host: &Hostname, zone: &Zone, shared: &Shared) -> Result<(), Error> {
        let region = zone.region();
        let mut known_zones = shared.zones.lock().await;
        if !known_zones.contains_key(&region) {
            let listed = self
                .compute
                .zones(&region)
                .await
                .context(|| format!("listing the zones of {region}"))?;
            known_zones.insert(region.clone(), listed);
        }
        let zones = known_zones.get(&region).cloned().unwrap_or_default();
        drop(known_zones);
        zone_in(host, zone, &zones)
    }

    /// Refuses a zone its region does not have, or whose region does not answer within
    /// the region timeout, before a restore or a move makes or stops anything (one read
    /// of the region's zones).
    pub async fn check_zone_exists(&self, host: &Hostname, zone: &Zone) -> Result<(), Error> {
        let region = zone.region();
        let zones = self
            .bounded(&region, self.compute.zones(&region))
            .await
            .context(|| format!("{host}: listing the zones of {region}"))?;
        zone_in(host, zone, &zones)
    }

    /// Whether a known host may be started in `zone` instead of the zone its record
    /// keeps: only a claim that never got an instance (a launch refused for capacity, a
    /// quota or what the zone offers, or an instance EC2 gave up on while it was
    /// pending) may move. Its record names no instance, no live instance carries its
    /// tags in any region, and no data volume of it lives outside `zone`. A claim
    /// another operator wrote within the wait timeout may still be launching, and stays.
    async fn may_move_claim(&self, rec: &HostRecord, zone: &Zone) -> Result<(), Error> {
        let host = &rec.hostname;
        let stays = |why: String| {
            Error::Usage {
            host: host.to_string(),
            message: format!(
                "it lives in {} (registry), not {zone}: {why}; to move it, `cerveza terminate {host} --forget` first",
                rec.zone
            ),
        }
        };
        if rec.instance_id.is_some() {
            return Err(stays("its claim got an instance".into()));
        }
        if rec.generation == 0 || self.is_registry_down() {
            return Err(self.needs_registry(
                host,
                &format!(
                    "moving its claim from {} to {zone} is written in the registry",
                    rec.zone
                ),
            ));
        }
        let age = super::now().saturating_sub(rec.updated_at);
        if rec.updated_by != self.settings.operator
            && age < self.settings.wait_timeout.as_secs() as i64
        {
            return Err(Error::Conflict {
                host: host.to_string(),
                message: format!(
                    "{} claimed it in {} {age}s ago and may still be launching it there; try again once their start has ended",
                    rec.updated_by, rec.zone
                ),
            });
        }
        // Every configured region at once, then the record's and the target's regions
        // when they are not among them (each read once).
        let found = self.search_tags(host, true).await;
        if !found.silent.is_empty() {
            return Err(stays(format!(
                "whether an instance of it exists cannot be told, regions did not answer: {}",
                found.silent.join(", ")
            )));
        }
        let (mut live, mut volumes) = (found.live, found.volumes);
        let mut others = vec![rec.region(), zone.region()];
        others.dedup();
        for region in others
            .into_iter()
            .filter(|r| !self.settings.regions.contains(r))
        {
            let filter = InstanceFilter::host(self.product(), host);
            let (instances, more) = futures::join!(
                self.compute.instances(&region, &filter),
                self.compute
                    .volumes(&region, self.product(), std::slice::from_ref(host))
            );
            let what = || format!("{host}: looking for its instances and volumes in {region}");
            live = live.or(instances
                .context(what)?
                .into_iter()
                .find(|i| !i.state.is_gone()));
            volumes.extend(more.context(what)?);
        }
        if let Some(i) = live {
            return Err(stays(format!(
                "instance {} ({}) carries its tags",
                i.id,
                i.state.name()
            )));
        }
        super::storage::check_volume_zones(host, zone, &volumes)
    }

    /// Resolves a profile for one host: its volume profiles and its user-data.
    pub(super) fn resolve(
        &self,
        profiles: &ProfileSet,
        host: &Hostname,
        zone: &Zone,
        profile: &InstanceProfile,
    ) -> Result<Resolved, String> {
        let volumes: Vec<VolumeProfile> = profile
            .volume_profiles
            .iter()
            .filter_map(|n| profiles.volume(n).cloned())
            .collect();
        let user_data = match self.user_data {
            None => None,
            Some(source) => source
                .user_data(&HostContext {
                    product: self.product(),
                    host,
                    zone,
                    profile,
                    volumes: &volumes,
                })
                .map_err(|message| format!("user-data: {message}"))?,
        };
        Ok(Resolved {
            profile: profile.clone(),
            volumes,
            user_data,
        })
    }
}
