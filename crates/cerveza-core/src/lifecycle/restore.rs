//! Restoring a host's data from a complete backup set, in any zone of the set's region.
//!
//! In an order a crash can stop anywhere, and a rerun finishes:
//! 1. *make* one volume per member from its snapshot in the target zone (a
//!    `ClientToken` per set, zone and device: a rerun or a second operator gets the same
//!    volume), tagged as the host's data with [`tags::RESTORED_FROM`] and
//!    [`tags::RESTORE_DEVICE`] but no [`tags::DEVICE`]: no start attaches a half set, and
//!    while such a volume exists, starts of the host refuse and say how to finish;
//! 2. *free* the old set: a stopped instance in the target zone gets its data volumes
//!    detached; one in another zone is terminated (its root only: data volumes are never
//!    deleted on termination);
//! 3. *replace* the old data volumes: their device tag becomes [`tags::REPLACED_DEVICE`]
//!    and [`tags::REPLACED_BY`] names the set (deleted only when asked);
//! 4. *promote* the new ones: [`tags::RESTORE_DEVICE`] becomes [`tags::DEVICE`];
//! 5. *record* the target zone in the registry (conditional write).
//!
//! The caller then starts the host as any start does: the new set is attached where
//! the profile wants it, and the boot script finds the RAID's signatures and assembles
//! it (it never formats a device that has one).

use std::collections::BTreeMap;

use serde::Serialize;

use super::registry::Lookup;
use super::Lifecycle;
use crate::backup::{BackupSet, SetState};
use crate::error::{Context, Error};
use crate::model::{InstanceState, Volume, VolumeId, VolumeState};
use crate::names::{Hostname, ProfileName, Region, Zone};
use crate::profile::ProfileSet;
use crate::{tags, token, wait};

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The host.
    pub host: Hostname,
    /// The set restored.
    pub set: String,
    /// Where its data now lives.
    pub zone: Zone,
    /// The profile it starts with.
    pub profile: ProfileName,
    /// The volumes made from the set, by device.
    pub volumes: BTreeMap<String, VolumeId>,
    /// Its earlier data volumes, now marked replaced (or deleted, when asked).
    pub replaced: Vec<VolumeId>,
    /// Whether the replaced volumes were deleted.
    pub deleted: bool,
    /// The stopped instance in another zone that was terminated (its root volume only).
    pub terminated: Option<crate::model::InstanceId>,
    /// The set had been restored there already: nothing was changed.
    pub already: bool,
}

impl Lifecycle<'_> {
    /// Makes `set`'s data the host's data in `zone` (see the module). The host must not
    /// be running; the caller starts it afterwards with the returned profile and zone.
    pub async fn restore(
        &self,
        profiles: &ProfileSet,
        set: &BackupSet,
        zone: &Zone,
        delete_replaced: bool,
    ) -> Result<Restored, Error> {
        let host = Hostname::parse(&set.host).map_err(Error::Name)?;
        let refused = |message: String| Error::Refused {
            host: host.to_string(),
            message,
        };
        match set.state() {
            SetState::Complete => {}
            state => {
                return Err(refused(format!(
                    "set {} in {} is {} ({} of {} member(s) there{}): only a complete set can be restored; `cerveza backup list {host}` shows its sets",
                    set.id,
                    set.region,
                    match state {
                        SetState::Pending => "still being taken",
                        _ => "incomplete",
                    },
                    set.members.len(),
                    set.expected,
                    if state == SetState::Pending { ", not all completed" } else { "" }
                )))
            }
        }
        let region = zone.region();
        if region != set.region {
            return Err(Error::Usage {
                host: host.to_string(),
                message: format!(
                    "set {} is in {}, not in {region}: a volume is made from a snapshot in the snapshot's region",
                    set.id, set.region
                ),
            });
        }
        if !self.settings.regions.contains(&region) {
            return Err(Error::Usage {
                host: host.to_string(),
                message: format!("region {region} is not among the configured regions"),
            });
        }
        self.check_zone_exists(&host, zone).await?;
        // The record, if any: without one (a host forgotten, or lost with everything
        // else) the set's own tags say which profile it ran.
        let record = match self.lookup(&host).await? {
            Lookup::Record(rec) => Some(*rec),
            Lookup::Unknown => None,
            Lookup::Down => {
                return Err(self.needs_registry(&host, "a restore records the host's zone"))
            }
        };
        let profile_name = match &record {
            Some(rec) => rec.profile.clone(),
            None => set
                .members
                .first()
                .and_then(|m| m.tags.get(tags::PROFILE))
                .ok_or_else(|| {
                    refused(format!(
                        "set {} does not name the host's profile ({})",
                        set.id,
                        tags::PROFILE
                    ))
                })
                .and_then(|p| ProfileName::parse(p).map_err(Error::Name))?,
        };
        let profile = profiles.instance(profile_name.as_str())?;
        profile.ami_for(&region)?;
        let resolved = self
            .resolve(profiles, &host, zone, profile)
            .map_err(|message| Error::Usage {
                host: host.to_string(),
                message,
            })?;
        // The set must be the profile's volumes: one member per wanted device.
        let wanted = resolved.wanted_volumes();
        let by_device: BTreeMap<&str, &crate::backup::Snapshot> = set
            .members
            .iter()
            .filter_map(|m| m.tags.get(tags::DEVICE).map(|d| (d.as_str(), m)))
            .collect();
        let wanted_devices: Vec<&str> = wanted.iter().map(|w| w.2).collect();
        let set_devices: Vec<&str> = by_device.keys().copied().collect();
        let mut sorted_wanted = wanted_devices.clone();
        sorted_wanted.sort_unstable();
        if sorted_wanted != set_devices {
            return Err(refused(format!(
                "set {} holds {} but profile {profile_name} wants {}: its volume profiles changed since the backup",
                set.id,
                set_devices.join(" "),
                if wanted_devices.is_empty() { "no data volumes".to_owned() } else { wanted_devices.join(" ") }
            )));
        }

        // Its instance, if any, must not run while its data is replaced.
        // Bounded: a region that does not answer fails the restore at once (nothing was
        // made yet); restoring elsewhere without knowing the instance there is stopped
        // could leave the host running twice.
        let live = match &record {
            Some(rec) => match tokio::time::timeout(self.settings.region_timeout, self.find(rec))
                .await
            {
                Ok(found) => found?.live,
                Err(_) => {
                    return Err(Error::Provider {
                        context: format!(
                            "{host}: making sure its instance in {} is stopped before its data is replaced; nothing was done (run the restore again once it answers)",
                            rec.region()
                        ),
                        source: self.no_answer(&rec.region()),
                    })
                }
            },
            None => self.search_tags(&host, false).await.live,
        };
        if let Some(i) = &live {
            if i.state != InstanceState::Stopped {
                return Err(refused(format!(
                    "its instance {} is {}: a restore replaces the data under it; `cerveza stop {host}` first (or `cerveza move {host} --zone {zone}`, which stops, backs up and restores)",
                    i.id, i.state
                )));
            }
        }
        let home = record
            .as_ref()
            .map_or_else(|| region.clone(), |r| r.region());
        let everywhere = self.volume_index(std::slice::from_ref(&host), &home).await;
        let mut all = everywhere.of(&host, &home)?;
        if home != region {
            all.extend(everywhere.of(&host, &region)?);
            all.sort_by(|a, b| a.id.cmp(&b.id));
            all.dedup_by(|a, b| a.id == b.id);
        }
        let all: Vec<Volume> = all
            .into_iter()
            .filter(|v| !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted))
            .collect();
        if let Some(v) = all.iter().find(|v| {
            v.tags.contains_key(tags::RESTORE_DEVICE)
                && v.tags.get(tags::RESTORED_FROM) != Some(&set.id)
        }) {
            return Err(Error::Conflict {
                host: host.to_string(),
                message: format!(
                    "a restore from another set ({}) has not ended (volume {}); finish it first with `cerveza restore {host} --from {}`",
                    v.tags.get(tags::RESTORED_FROM).map_or("?", String::as_str),
                    v.id,
                    v.tags.get(tags::RESTORED_FROM).map_or("?", String::as_str)
                ),
            });
        }
        let ours = |v: &&Volume| {
            v.tags.get(tags::RESTORED_FROM) == Some(&set.id) && v.zone.as_ref() == Some(zone)
        };
        let old: Vec<&Volume> = all
            .iter()
            .filter(|v| v.device().is_some() && !ours(v))
            .collect();
        let done = all
            .iter()
            .filter(ours)
            .filter(|v| v.device().is_some() && !v.tags.contains_key(tags::RESTORE_DEVICE))
            .count();
        let same_zone = record.as_ref().is_none_or(|r| &r.zone == zone);
        if done == wanted.len() && old.is_empty() && same_zone {
            self.progress.step(
                &host,
                &format!("its data is set {} in {zone} already", set.id),
            );
            return Ok(Restored {
                host: host.clone(),
                set: set.id.clone(),
                zone: zone.clone(),
                profile: profile_name,
                volumes: all
                    .iter()
                    .filter(ours)
                    .filter_map(|v| Some((v.device()?.to_owned(), v.id.clone())))
                    .collect(),
                replaced: Vec::new(),
                deleted: false,
                terminated: None,
                already: true,
            });
        }

        // 1. One volume per member, from its snapshot, not yet the host's set.
        self.progress.step(
            &host,
            &format!(
                "making {} volume(s) in {zone} from set {}",
                wanted.len(),
                set.id
            ),
        );
        let made = futures::future::join_all(wanted.iter().map(|&(vp, member, device)| {
            let (all, host, resolved, by_device, region) =
                (&all, &host, &resolved, &by_device, &region);
            async move {
                if let Some(v) = all.iter().filter(ours).find(|v| {
                    v.tags.get(tags::RESTORE_DEVICE).map(String::as_str) == Some(device)
                        || v.device() == Some(device)
                }) {
                    self.wait_restored(host, region, &v.id).await?;
                    return Ok::<_, Error>((device.to_owned(), v.id.clone()));
                }
                let snap = by_device[device];
                let mut t = self.volume_tags(host, zone, resolved, vp, member);
                t.insert(tags::RESTORED_FROM.to_owned(), set.id.clone());
                t.insert(tags::RESTORE_DEVICE.to_owned(), device.to_owned());
                let mut request = super::storage::volume_request(zone, vp, t);
                request.size_gb = u32::try_from(snap.size_gb).unwrap_or(vp.volumes.size_gb);
                request.snapshot_id = Some(snap.id.clone());
                // A token whose volume a restore that stepped back deleted gives way.
                let v = self
                    .create_with_tokens(request, |attempt| {
                        token::restore_token(
                            self.product(),
                            host,
                            &set.id,
                            zone.as_str(),
                            device,
                            attempt,
                        )
                    })
                    .await
                    .context(|| {
                        format!(
                            "{host}: making its {device} volume from {} in {zone}",
                            snap.id
                        )
                    })?;
                self.wait_restored(host, region, &v.id).await?;
                Ok((device.to_owned(), v.id))
            }
        }))
        .await
        .into_iter()
        .collect::<Result<BTreeMap<String, VolumeId>, Error>>()?;

        // Two operators restoring the host at once: the older set goes on, the newer
        // steps back (see `Self::settle`).
        let old_ids: Vec<VolumeId> = old.iter().map(|v| v.id.clone()).collect();
        if let Err(e) = self.settle(&host, &region, &set.id, &old_ids).await {
            for id in made.values() {
                // A volume left behind is marked as a restore not ended: starts refuse
                // and say how to finish, so nothing is attached from it by mistake.
                if let Err(e) = self.compute.delete_volume(&region, id).await {
                    tracing::warn!(%host, error = %e, "deleting {id}, made by a restore that stepped back");
                }
            }
            return Err(e);
        }

        #[cfg(feature = "test-hooks")]
        self.settings.failpoint(
            super::Failpoint::AfterRestoreVolumes,
            "after making the new set",
        );

        // 2. The old set freed from a stopped instance.
        let mut terminated = None;
        if let Some(i) = &live {
            if i.zone.as_ref() == Some(zone) {
                let attached: Vec<&&Volume> = old
                    .iter()
                    .filter(|v| v.attached_to.as_ref() == Some(&i.id))
                    .collect();
                for v in &attached {
                    self.progress
                        .step(&host, &format!("detaching {} from {}", v.id, i.id));
                    self.compute
                        .detach_volume(&v.region, &v.id, &i.id)
                        .await
                        .context(|| format!("{host}: detaching {} from {}", v.id, i.id))?;
                }
                for v in attached {
                    self.wait_restored(&host, &v.region, &v.id).await?;
                }
            } else {
                self.progress.step(
                    &host,
                    &format!(
                        "terminating {} in {} (its root volume only; its data volumes stay)",
                        i.id,
                        i.zone.as_ref().map_or("?", Zone::as_str)
                    ),
                );
                self.compute
                    .terminate(&i.region, &i.id)
                    .await
                    .context(|| format!("{host}: terminating {}", i.id))?;
                self.wait_for(&host, &i.region, &i.id, InstanceState::Terminated)
                    .await?;
                terminated = Some(i.id.clone());
            }
        }

        // 3. The old set replaced (kept unless asked), 4. the new one promoted.
        for v in &old {
            let device = v.device().unwrap_or_default();
            if delete_replaced {
                if v.attached_to.is_some() && terminated.is_some() {
                    self.wait_restored(&host, &v.region, &v.id).await?;
                }
                self.progress.step(
                    &host,
                    &format!("deleting replaced volume {} ({device})", v.id),
                );
                self.compute
                    .delete_volume(&v.region, &v.id)
                    .await
                    .context(|| format!("{host}: deleting replaced volume {}", v.id))?;
            } else {
                let add = BTreeMap::from([
                    (tags::REPLACED_DEVICE.to_owned(), device.to_owned()),
                    (tags::REPLACED_BY.to_owned(), set.id.clone()),
                ]);
                self.compute
                    .retag(&v.region, v.id.as_str(), &add, &[tags::DEVICE])
                    .await
                    .context(|| format!("{host}: marking {} replaced", v.id))?;
            }
        }
        #[cfg(feature = "test-hooks")]
        self.settings.failpoint(
            super::Failpoint::AfterReplace,
            "after marking the old set replaced",
        );
        for (device, id) in &made {
            let add = BTreeMap::from([(tags::DEVICE.to_owned(), device.clone())]);
            self.compute
                .retag(&region, id.as_str(), &add, &[tags::RESTORE_DEVICE])
                .await
                .context(|| format!("{host}: making {id} its {device}"))?;
        }

        // 5. The zone recorded: the next start launches there.
        if let Some(mut rec) = record {
            if rec.zone != *zone {
                let g = rec.generation;
                rec.zone = zone.clone();
                rec.instance_id = None;
                rec.state = InstanceState::Terminated;
                self.save(&mut rec, g).await?;
            }
        }
        #[cfg(feature = "test-hooks")]
        self.settings.failpoint(
            super::Failpoint::AfterRestore,
            "after the restore, before the start",
        );
        Ok(Restored {
            host,
            set: set.id.clone(),
            zone: zone.clone(),
            profile: profile_name,
            volumes: made,
            replaced: old.iter().map(|v| v.id.clone()).collect(),
            deleted: delete_replaced,
            terminated,
            already: false,
        })
    }

    /// After making its new volumes: whether this restore (of set `ours`) may go on.
    /// Another operator's restore of the host at the same time shows as volumes marked
    /// [`tags::RESTORE_DEVICE`] from another set. The older set (the smaller id) goes
    /// on once the newer one's volumes are gone; the newer steps back at once. So two
    /// restores never both step back and meet again, forever, as equals would. Data
    /// volumes that were not the host's set when this one began (another restore
    /// promoted its set meanwhile) make this one step back too: a host has one set.
    /// `Err(Conflict)` means: step back (delete what was made).
    async fn settle(
        &self,
        host: &Hostname,
        region: &Region,
        ours: &str,
        old: &[VolumeId],
    ) -> Result<(), Error> {
        let conflict = |message: String| Error::Conflict {
            host: host.to_string(),
            message,
        };
        let last = std::sync::Mutex::new(String::new());
        let waited = wait::poll(self.clock, &self.settings.backoff(), || async {
            let now = self
                .host_volumes_in(host, region)
                .await
                .context(|| format!("{host}: looking for its volumes in {region}"))?;
            let now: Vec<Volume> = now
                .into_iter()
                .filter(|v| !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted))
                .collect();
            if let Some(v) = now.iter().find(|v| {
                v.device().is_some()
                    && !v.tags.contains_key(tags::RESTORE_DEVICE)
                    && v.tags.get(tags::RESTORED_FROM).map(String::as_str) != Some(ours)
                    && !old.contains(&v.id)
            }) {
                return Err(conflict(format!(
                    "another restore of it (set {}) ended while this one ran (volume {} is its data now); this one stepped back and deleted what it made",
                    v.tags.get(tags::RESTORED_FROM).map_or("?", String::as_str),
                    v.id
                )));
            }
            let others: Vec<&Volume> = now
                .iter()
                .filter(|v| {
                    v.tags.contains_key(tags::RESTORE_DEVICE)
                        && v.tags.get(tags::RESTORED_FROM).map(String::as_str) != Some(ours)
                })
                .collect();
            let Some(first) = others.first() else {
                return Ok(Some(()));
            };
            let theirs = first.tags.get(tags::RESTORED_FROM).map_or("?", String::as_str);
            if let Some(older) = others
                .iter()
                .filter_map(|v| v.tags.get(tags::RESTORED_FROM))
                .filter(|id| id.as_str() < ours)
                .min()
            {
                return Err(conflict(format!(
                    "another restore of it, from the older set {older}, is under way at the same time; this one stepped back and deleted what it made"
                )));
            }
            let waiting = format!(
                "another restore of it, from the newer set {theirs} (volume {}), to step back",
                first.id
            );
            if *last.lock().unwrap_or_else(|p| p.into_inner()) != waiting {
                self.progress.step(host, &format!("waiting for {waiting}"));
                waiting.clone_into(&mut last.lock().unwrap_or_else(|p| p.into_inner()));
            }
            Ok(None)
        })
        .await;
        match waited {
            Ok(()) => Ok(()),
            Err(wait::Gave::Up(e)) => Err(e),
            Err(wait::Gave::TimedOut) => Err(conflict(format!(
                "waited {} s for {}, which did not happen (killed?); this one stepped back and deleted what it made: finish the other with `cerveza restore {host} --from SET`, or delete its volumes, then run this again",
                self.settings.wait_timeout.as_secs(),
                last.into_inner().unwrap_or_else(|p| p.into_inner())
            ))),
        }
    }

    /// Waits until volume `id` of `host` in `region` is `available` (made, or detached).
    async fn wait_restored(
        &self,
        host: &Hostname,
        region: &Region,
        id: &VolumeId,
    ) -> Result<(), Error> {
        let last = std::sync::Mutex::new(String::from("not yet visible"));
        let waited = wait::poll(self.clock, &self.settings.backoff(), || async {
            // Read with the other members' waits (and other hosts') in one request.
            match self.host_volumes_in(host, region).await {
                Ok(vols) => match vols.into_iter().find(|v| &v.id == id).map(|v| v.state) {
                    Some(VolumeState::Available) => Ok(Some(())),
                    Some(VolumeState::Error) => Err(Error::Refused {
                        host: host.to_string(),
                        message: format!("{id}: EBS put the volume in state error; delete it and run the restore again"),
                    }),
                    Some(VolumeState::Deleting | VolumeState::Deleted) => Err(Error::Conflict {
                        host: host.to_string(),
                        message: format!("{id} is being deleted (by another operator's restore that stepped back?); run the restore again"),
                    }),
                    Some(s) => {
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
                        Ok(None)
                    }
                    None if *last.lock().unwrap_or_else(|p| p.into_inner()) != "not yet visible" => {
                        Err(Error::Conflict {
                            host: host.to_string(),
                            message: format!("{id} was deleted while cerveza waited for it; run the restore again"),
                        })
                    }
                    None => Ok(None),
                },
                Err(e) => super::describe_failed(host, id.as_str(), e),
            }
        })
        .await;
        let last = last.into_inner().unwrap_or_else(|p| p.into_inner());
        self.waited(host, id.as_str(), "available", waited, last)
    }
}
