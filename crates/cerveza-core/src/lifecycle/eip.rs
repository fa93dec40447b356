//! Elastic IPs: allocated once per host (tagged), kept across restarts, associated
//! with each new instance.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{Action, Lifecycle, Outcome, Results};
use crate::error::{Context, Error};
use crate::model::{Address, HostRecord, Instance};
use crate::names::Hostname;
use crate::wait::{self, Backoff};

/// Tries of AllocateAddress before giving up (each after a look for a lost success).
const ALLOCATE_TRIES: u32 = 4;

impl Lifecycle<'_> {
    /// Allocates the host's Elastic IP. AllocateAddress has no idempotency token, so it
    /// is sent once per try; after a failed try the address is looked up by its tags
    /// (a lost answer may hide an allocation that landed) before trying again.
    async fn allocate_eip(&self, rec: &HostRecord) -> Result<Address, Error> {
        let (host, region) = (&rec.hostname, rec.region());
        self.progress.step(host, "allocating an Elastic IP");
        let tries = AtomicU32::new(0);
        let backoff = Backoff {
            // Bounded by the tries, not by time.
            timeout: std::time::Duration::MAX,
            ..self.settings.backoff()
        };
        let allocated = wait::poll(self.clock, &backoff, || async {
            let attempt = tries.fetch_add(1, Ordering::Relaxed) + 1;
            if attempt > 1 {
                let found = self
                    .compute
                    .address(&region, self.product(), host)
                    .await
                    .context(|| format!("{host}: looking for its Elastic IP"))?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            match self
                .compute
                .allocate_address(&region, self.product(), host)
                .await
            {
                Ok(a) => Ok(Some(a)),
                Err(e) if attempt < ALLOCATE_TRIES && e.kind.is_transient() => {
                    tracing::warn!(%host, error = %e, "allocating an Elastic IP failed; looking for it before trying again");
                    Ok(None)
                }
                Err(source) => {
                    Err(source).context(|| format!("{host}: allocating an Elastic IP"))
                }
            }
        })
        .await;
        self.waited(host, "an Elastic IP", "allocated", allocated, String::new())
    }

    /// Associates the host's Elastic IP with `inst`, allocating it the first time.
    pub(super) async fn associate_eip(
        &self,
        rec: &HostRecord,
        inst: &Instance,
    ) -> Result<String, Error> {
        let (host, region) = (&rec.hostname, rec.region());
        let found = self
            .compute
            .address(&region, self.product(), host)
            .await
            .context(|| format!("{host}: looking for its Elastic IP"))?;
        let Address {
            allocation,
            ip,
            instance: current,
        } = match found {
            Some(a) => a,
            None => self.allocate_eip(rec).await?,
        };
        // Re-associate unless the instance already answers on it (after a start, an
        // emulator or a race may leave the association stale).
        if current.as_ref() != Some(&inst.id) || inst.public_ip.as_deref() != Some(ip.as_str()) {
            self.progress
                .step(host, &format!("associating Elastic IP {ip}"));
            self.compute
                .associate_address(&region, &allocation, &inst.id)
                .await
                .context(|| format!("{host}: associating Elastic IP {ip}"))?;
        }
        Ok(ip)
    }

    /// The host's instance as it is now, with its names published.
    async fn refreshed(
        &self,
        rec: &HostRecord,
        inst: Option<&Instance>,
    ) -> Result<Option<Instance>, Error> {
        let h = &rec.hostname;
        let Some(inst) = inst else {
            return Ok(None);
        };
        let now = self
            .compute
            .instance(&rec.region(), &inst.id)
            .await
            .context(|| format!("{h}: describing {}", inst.id))?;
        if let Some(i) = &now {
            self.publish(h, i).await?;
        }
        Ok(now)
    }

    /// Gives running hosts an Elastic IP (allocated once, kept across restarts).
    pub async fn eip_attach(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each_known(hosts, |h| async move {
            let rec = self.record(&h).await?;
            let inst = self.live(&rec).await?;
            self.associate_eip(&rec, &inst).await?;
            Ok(Outcome {
                action: Action::EipAssociated,
                instance: self.refreshed(&rec, Some(&inst)).await?,
                host: h,
                record: Some(rec),
            })
        })
        .await
    }

    /// Releases hosts' Elastic IPs.
    pub async fn eip_detach(&self, hosts: Vec<Hostname>) -> Results {
        self.for_each_known(hosts, |h| async move {
            let rec = self.record(&h).await?;
            let region = rec.region();
            let found = self
                .compute
                .address(&region, self.product(), &h)
                .await
                .context(|| format!("{h}: looking for its Elastic IP"))?;
            let Some(Address { allocation, ip, .. }) = found else {
                return Err(Error::NotFound {
                    host: h.to_string(),
                    message: "it has no Elastic IP".into(),
                });
            };
            self.progress
                .step(&h, &format!("releasing Elastic IP {ip}"));
            self.compute
                .release_address(&region, &allocation)
                .await
                .context(|| format!("{h}: releasing {ip}"))?;
            let live = self.find(&rec).await?.live;
            Ok(Outcome {
                action: Action::EipReleased,
                instance: self.refreshed(&rec, live.as_ref()).await?,
                host: h,
                record: Some(rec),
            })
        })
        .await
    }
}
