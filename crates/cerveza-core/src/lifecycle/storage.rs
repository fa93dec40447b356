//! A host's EBS volumes: found by their tags (in every region), created once, tagged at
//! creation, attached at their device, re-attached to each new instance.

use std::collections::{BTreeMap, BTreeSet};

use super::{Lifecycle, Resolved};
use crate::error::{Context, Error};
use crate::model::{
    HostRecord, Instance, InstanceId, Volume, VolumeId, VolumeRequest, VolumeState,
};
use crate::names::{Hostname, Region, Zone};
use crate::ports::ProviderResult;
use crate::profile::VolumeProfile;
use crate::wait;
use crate::{tags, token};

impl Lifecycle<'_> {
    /// Attaches the host's volumes and Elastic IP (per its resolved profile) to a
    /// running instance, creating what is missing; returns the instance as it is
    /// afterwards.
    pub(super) async fn attach_storage(
        &self,
        rec: &HostRecord,
        inst: Instance,
        resolved: &Resolved,
    ) -> Result<Instance, Error> {
        self.ensure_volumes(rec, &inst, resolved).await?;
        if !resolved.profile.eip {
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

    async fn ensure_volumes(
        &self,
        rec: &HostRecord,
        inst: &Instance,
        resolved: &Resolved,
    ) -> Result<(), Error> {
        let wanted = resolved.wanted_volumes();
        if wanted.is_empty() {
            return Ok(());
        }
        let host = &rec.hostname;
        let have = self
            .host_volumes_steady(rec)
            .await
            .context(|| format!("{host}: looking for its volumes"))?;
        check_volume_zones(host, &rec.zone, &have)?;
        let missing = wanted
            .iter()
            .filter(|(_, _, d)| {
                !have
                    .iter()
                    .any(|v| v.device() == Some(d) && v.attached_to.as_ref() == Some(&inst.id))
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
        let region = &rec.region();
        let results = futures::future::join_all(wanted.iter().map(|&(vp, member, device)| {
            let have = &have;
            async move {
                let existing = have.iter().find(|v| {
                    v.device() == Some(device)
                        && v.tags.get(tags::VOLUME_PROFILE).map(String::as_str)
                            == Some(vp.name.as_str())
                });
                let id = match existing {
                    Some(v) if v.attached_to.as_ref() == Some(&inst.id) => return Ok(()),
                    Some(v) if v.attached_to.is_some() => {
                        return Err(Error::Conflict {
                            host: host.to_string(),
                            message: format!(
                                "its volume {} ({device}) is attached to {}, not to {}",
                                v.id,
                                v.attached_to
                                    .as_ref()
                                    .map(InstanceId::as_str)
                                    .unwrap_or("?"),
                                inst.id
                            ),
                        })
                    }
                    // Made by an earlier run that died right after CreateVolume: EC2
                    // refuses to attach it until it is `available`.
                    Some(v) if v.state != VolumeState::Available => {
                        self.wait_volume(rec, &v.id, vp).await?;
                        v.id.clone()
                    }
                    Some(v) => v.id.clone(),
                    None => {
                        self.create_volume(rec, resolved, vp, member, device)
                            .await?
                    }
                };
                // The answer to an attach that landed may be lost; its retry then
                // fails with VolumeInUse. Attached where wanted is success; one that
                // did not land is sent again while EC2 is throttled or unreachable.
                self.steadily(
                    || format!("{host}: attaching {id} at {device}"),
                    || async {
                        match self
                            .compute
                            .attach_volume(region, &id, &inst.id, device)
                            .await
                        {
                            Err(e) if self.attached(rec, &id, &inst.id, device).await => {
                                tracing::debug!(%host, error = %e, "{id} is attached at {device} already");
                                Ok(())
                            }
                            other => other,
                        }
                    },
                )
                .await
                .context(|| format!("{host}: attaching {id} at {device}"))
            }
        }))
        .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(drop)
    }

    /// The volumes tagged with the host, in its region: read in one request with the
    /// other hosts of this command that read theirs there meanwhile (a read asked for
    /// is always sent after it was asked, so it is never an older answer).
    async fn host_volumes(&self, rec: &HostRecord) -> ProviderResult<Vec<Volume>> {
        self.host_volumes_in(&rec.hostname, &rec.region()).await
    }

    /// [`Self::host_volumes`] of `host` in `region` (a restore reads the region it
    /// restores into, which need not be the record's).
    pub(super) async fn host_volumes_in(
        &self,
        host: &Hostname,
        region: &Region,
    ) -> ProviderResult<Vec<Volume>> {
        let theirs = self
            .volume_reads
            .get(self.clock, region, host.as_str(), |keys| async move {
                let hosts: Vec<Hostname> = keys
                    .iter()
                    .filter_map(|k| Hostname::parse(k).ok())
                    .collect();
                let vols = self.compute.volumes(region, self.product(), &hosts).await?;
                let mut by_host: std::collections::HashMap<String, Vec<Volume>> =
                    keys.into_iter().map(|k| (k, Vec::new())).collect();
                for v in vols {
                    if let Some(mine) = v.tags.get(tags::HOST).and_then(|h| by_host.get_mut(h)) {
                        mine.push(v);
                    }
                }
                Ok(by_host)
            })
            .await?;
        Ok(theirs.unwrap_or_default())
    }

    /// [`Self::host_volumes`], read again while EC2 answers throttled or unavailable
    /// ([`Self::steadily`]): when many hosts attach at once, one throttled read must
    /// not fail a host (or make an attach that landed look like one that did not).
    async fn host_volumes_steady(&self, rec: &HostRecord) -> ProviderResult<Vec<Volume>> {
        self.steadily(
            || format!("{}: reading its volumes", rec.hostname),
            || self.host_volumes(rec),
        )
        .await
    }

    /// The volumes tagged with `hosts` (all of the product's when empty) in every
    /// configured region and in `home`, one lookup per region, each bounded by the
    /// region timeout.
    pub(super) async fn volume_index(&self, hosts: &[Hostname], home: &Region) -> VolumeIndex {
        let mut regions: BTreeSet<&Region> = self.settings.regions.iter().collect();
        regions.insert(home);
        VolumeIndex::read(
            self.compute,
            self.product(),
            hosts,
            regions,
            Some(home),
            self.settings.region_timeout,
        )
        .await
    }

    /// The volumes tagged with `host`, in every region that answers. Its own region
    /// must answer; another region that does not is a warning (its volumes there, if
    /// any, stay where they are): no region stops work in the others.
    pub(super) async fn volumes_everywhere(
        &self,
        host: &Hostname,
        home: &Region,
    ) -> Result<Vec<Volume>, Error> {
        self.volume_index(std::slice::from_ref(host), home)
            .await
            .of(host, home)
    }

    /// Whether volume `id` is attached to `instance` at `device` now.
    async fn attached(
        &self,
        rec: &HostRecord,
        id: &VolumeId,
        instance: &InstanceId,
        device: &str,
    ) -> bool {
        let vols = self.host_volumes_steady(rec).await.unwrap_or_default();
        vols.iter().any(|v| {
            &v.id == id
                && v.attached_to.as_ref() == Some(instance)
                && v.attached_as.as_deref() == Some(device)
        })
    }

    async fn create_volume(
        &self,
        rec: &HostRecord,
        resolved: &Resolved,
        vp: &VolumeProfile,
        member: u32,
        device: &str,
    ) -> Result<VolumeId, Error> {
        let host = &rec.hostname;
        let mut t = self.volume_tags(host, &rec.zone, resolved, vp, member);
        t.insert(tags::DEVICE.to_owned(), device.to_owned());
        let request = volume_request(&rec.zone, vp, t);
        let v = self
            .create_with_tokens(request, |attempt| {
                token::volume_token_attempt(self.product(), host, device, rec.generation, attempt)
            })
            .await
            .context(|| {
                format!(
                    "{host}: creating its {device} volume ({} GiB {})",
                    vp.volumes.size_gb, vp.volumes.volume_type
                )
            })?;
        self.wait_volume(rec, &v.id, vp).await?;
        Ok(v.id)
    }

    /// CreateVolume with the token `token(0)`; a token whose volume is gone (its answer
    /// is IdempotentParameterMismatch: EBS dropped it, or it was deleted, and no live
    /// volume of it was found, or it would have been used) gives way to the next.
    pub(super) async fn create_with_tokens(
        &self,
        mut request: VolumeRequest,
        token: impl Fn(u32) -> String,
    ) -> ProviderResult<Volume> {
        let mut attempt = 0;
        loop {
            request.client_token = token(attempt);
            // Sent again with the same token while throttled or unreachable: a volume
            // the lost call made answers it.
            let made = self
                .steadily(
                    || format!("creating a volume in {}", request.zone),
                    || self.compute.create_volume(&request),
                )
                .await;
            match made {
                Err(e)
                    if e.has_code("IdempotentParameterMismatch")
                        && attempt < MAX_VOLUME_ATTEMPTS =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The tags of a data volume of `host` in `zone` (all but its device).
    pub(super) fn volume_tags(
        &self,
        host: &Hostname,
        zone: &Zone,
        resolved: &Resolved,
        vp: &VolumeProfile,
        member: u32,
    ) -> BTreeMap<String, String> {
        let mut t = BTreeMap::from([
            (tags::NAME.to_owned(), host.to_string()),
            (tags::PRODUCT.to_owned(), self.product().to_string()),
            (tags::HOST.to_owned(), host.to_string()),
            (tags::ZONE.to_owned(), zone.to_string()),
            (tags::VOLUME_PROFILE.to_owned(), vp.name.clone()),
            // Where the host lived and how it was made, for a relaunch from tags.
            (tags::PROFILE.to_owned(), resolved.profile.name.to_string()),
            (tags::MEMBER.to_owned(), member.to_string()),
        ]);
        for (k, v) in &resolved.profile.tags {
            t.entry(k.clone()).or_insert_with(|| v.clone());
        }
        t
    }

    /// Waits until a new volume is `available`. One that goes to `error`, or that
    /// vanishes (EBS drops a new volume whose KMS key cannot be used), or that never
    /// shows up, ends the wait at once with that reason.
    async fn wait_volume(
        &self,
        rec: &HostRecord,
        id: &VolumeId,
        vp: &VolumeProfile,
    ) -> Result<(), Error> {
        let host = &rec.hostname;
        let last = std::sync::Mutex::new(None::<VolumeState>);
        let seen = std::sync::atomic::AtomicBool::new(false);
        let since = self.clock.now();
        let key = match &vp.volumes.kms_key {
            Some(k) => format!("the KMS key {k} of volume profile {}", vp.name),
            None => "the account's default EBS KMS key (`aws ec2 get-ebs-default-kms-key-id`)"
                .to_owned(),
        };
        let refused = |what: String| Error::Refused {
            host: host.to_string(),
            message: format!("{id}: {what}"),
        };
        let waited = wait::poll(self.clock, &self.settings.backoff(), || async {
            match self.host_volumes(rec).await {
                Ok(vols) => {
                    let state = vols.into_iter().find(|v| &v.id == id).map(|v| v.state);
                    match &state {
                        Some(VolumeState::Available) => return Ok(Some(())),
                        Some(VolumeState::Error) => {
                            return Err(refused(format!(
                                "EBS put the new volume in state error (it holds no data); if encrypted, check {key}, its state and its key policy, then delete it (`aws ec2 delete-volume --volume-id {id}`) and start again"
                            )))
                        }
                        Some(VolumeState::Deleting | VolumeState::Deleted) => {
                            return Err(refused(format!(
                                "the new volume is being deleted (by someone else); `cerveza start {host}` makes it again"
                            )))
                        }
                        Some(_) => seen.store(true, std::sync::atomic::Ordering::Relaxed),
                        None if seen.load(std::sync::atomic::Ordering::Relaxed)
                            || self.clock.now().saturating_sub(since) >= NEW_VOLUME_VISIBLE =>
                        {
                            return Err(refused(format!(
                                "the new volume vanished while it was being created: EBS drops a volume whose KMS key cannot be used; check {key}, its state and its key policy, then `cerveza start {host}` makes it again"
                            )))
                        }
                        None => {}
                    }
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = state;
                    Ok(None)
                }
                Err(e) => super::describe_failed(host, id.as_str(), e),
            }
        })
        .await;
        let last = last
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .map(|s| s.to_string())
            .unwrap_or_else(|| "not yet visible".into());
        self.waited(host, id.as_str(), "available", waited, last)
    }
}

/// A data volume of volume profile `vp` in `zone`, tagged `tags` (its token is set by
/// [`Lifecycle::create_with_tokens`]).
pub(super) fn volume_request(
    zone: &Zone,
    vp: &VolumeProfile,
    tags: BTreeMap<String, String>,
) -> VolumeRequest {
    VolumeRequest {
        region: zone.region(),
        zone: zone.clone(),
        size_gb: vp.volumes.size_gb,
        volume_type: vp.volumes.volume_type.clone(),
        iops: vp.volumes.iops,
        throughput: vp.volumes.throughput,
        encrypted: vp.volumes.encrypted,
        kms_key: vp.volumes.kms_key.clone(),
        tags,
        client_token: String::new(),
        snapshot_id: None,
    }
}

/// Tokens tried for one volume before its creation is given up (each spent one is a
/// volume EBS dropped).
const MAX_VOLUME_ATTEMPTS: u32 = 4;

/// How long a new volume may stay out of DescribeVolumes before it is taken as gone.
const NEW_VOLUME_VISIBLE: std::time::Duration = std::time::Duration::from_secs(60);

/// What one volume lookup per region found (or why a region did not answer).
pub(crate) struct VolumeIndex {
    by_region: BTreeMap<Region, Result<Vec<Volume>, String>>,
}

impl VolumeIndex {
    /// Looks up the volumes tagged with `hosts` (all of the product's when empty) in
    /// `regions` at once, each bounded by `limit`; a region that does not answer is
    /// logged, except `home` (whose failure its caller reports).
    pub(crate) async fn read<'r>(
        compute: &dyn crate::ports::ComputeRead,
        product: &crate::names::Product,
        hosts: &[Hostname],
        regions: impl IntoIterator<Item = &'r Region>,
        home: Option<&Region>,
        limit: std::time::Duration,
    ) -> Self {
        let found = futures::future::join_all(regions.into_iter().map(|region| async move {
            let r = tokio::time::timeout(limit, compute.volumes(region, product, hosts)).await;
            let r = match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {}s", limit.as_secs_f64())),
            };
            if let (Err(e), false) = (&r, Some(region) == home) {
                tracing::warn!("region {region} left out of the search for data volumes: {e}");
            }
            (region.clone(), r)
        }))
        .await;
        VolumeIndex {
            by_region: found.into_iter().collect(),
        }
    }

    /// Every volume found, in the regions that answered.
    pub(crate) fn found(&self) -> impl Iterator<Item = &Volume> {
        self.by_region
            .values()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
    }

    /// The volumes of `host`: an error when `home` did not answer; other regions that
    /// did not are left out (a warning was logged when their lookup failed).
    pub fn of(&self, host: &Hostname, home: &Region) -> Result<Vec<Volume>, Error> {
        let mut all = Vec::new();
        for (region, found) in &self.by_region {
            match found {
                Ok(vols) => all.extend(
                    vols.iter()
                        .filter(|v| v.host() == Some(host.as_str()))
                        .cloned(),
                ),
                Err(e) if region == home => {
                    return Err(Error::Provider {
                        context: format!("{host}: looking for its volumes in {region}"),
                        source: crate::ports::ProviderError::new(
                            crate::ports::ProviderErrorKind::Unavailable,
                            e.clone(),
                        ),
                    })
                }
                // Warned about once, when the lookup failed.
                Err(_) => {}
            }
        }
        Ok(all)
    }
}

/// Refuses volumes of `host` that live in another zone than `zone`, and a restore of
/// its data that has not ended (its new volumes are not its set yet, nor its old ones).
pub(super) fn check_volume_zones(
    host: &Hostname,
    zone: &Zone,
    volumes: &[Volume],
) -> Result<(), Error> {
    // One being deleted is a restore that stepped back (or was cleaned up): not one under way.
    if let Some(v) = volumes.iter().find(|v| {
        v.tags.contains_key(tags::RESTORE_DEVICE)
            && !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted)
    }) {
        let set = v.tags.get(tags::RESTORED_FROM).map_or("?", String::as_str);
        return Err(Error::Conflict {
            host: host.to_string(),
            message: format!(
                "a restore of its data from set {set} has not ended (volume {} is still marked {}); `cerveza restore {host} --from {set}` finishes it",
                v.id,
                tags::RESTORE_DEVICE
            ),
        });
    }
    // Data volumes only: root volumes carry the host's tags too, and go with their instance.
    if let Some(v) = volumes.iter().find(|v| {
        v.device().is_some() && v.zone.as_ref() != Some(zone) && v.state != VolumeState::Deleting
    }) {
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
