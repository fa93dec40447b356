//! Route53 as the DNS backend: a public hosted zone `<product>.public` and a private
//! one `<product>.private` associated with a VPC, A records with a short TTL. The
//! public names may go into a delegated zone of the user's instead (`[dns]
//! public-zone`), where cerveza marks what it owns (see [`owned`]).

mod owned;

use std::net::IpAddr;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HostedZoneConfig, ResourceRecord, ResourceRecordSet, RrType,
    Vpc, VpcRegion,
};
use aws_sdk_route53::Client;
use cerveza_core::names::{Product, Region};
use cerveza_core::ports::{
    Dns, DnsRead, DnsRecord, ProviderError, ProviderErrorKind, ProviderResult,
};
use tokio::sync::Mutex;

use crate::errors::provider_error;

/// TTL of the records cerveza writes: short, addresses change at every start.
const TTL: i64 = 60;

/// Route53 hosted zones of a product.
pub struct Route53Dns {
    client: Client,
    vpc: Option<(String, String)>,
    zones: Mutex<std::collections::HashMap<String, String>>,
    /// The changes this process submitted that were not yet seen `INSYNC`.
    pending: Mutex<Vec<String>>,
    /// Every region whose hosts resolve the private zone, with its configured VPC
    /// (`None`: the region's default VPC).
    regions: Vec<(Region, Option<String>)>,
    /// EC2, to find those VPCs.
    ec2: crate::Ec2,
    /// Whether the private zone's VPC associations were checked in this process.
    associated: tokio::sync::OnceCell<()>,
    /// The user's public zone (a name or a `Z…` id) for the public names, if any.
    public_zone: Option<String>,
    /// That zone's (id, name), once found.
    public: tokio::sync::OnceCell<(String, String)>,
}

/// Route53 allows five requests a second per account (all actions together).
async fn pace() {
    crate::transport::pacer()
        .wait("global", "route53", crate::transport::ROUTE53, None, 1)
        .await;
}

impl Route53Dns {
    /// Route53 with the private zones associated to `vpc` (id, region).
    pub fn new(config: &SdkConfig, vpc: Option<(String, String)>) -> Self {
        Self {
            client: Client::new(config),
            vpc,
            zones: Mutex::new(Default::default()),
            pending: Mutex::new(Vec::new()),
            regions: Vec::new(),
            ec2: crate::Ec2::new(config.clone()),
            associated: tokio::sync::OnceCell::new(),
            public_zone: None,
            public: tokio::sync::OnceCell::new(),
        }
    }

    /// Publishes the public names in the user's hosted zone `zone` (a domain name, or a
    /// zone id `Z…`) as `<host>.<zone>`, instead of a zone `<product>.public` of
    /// cerveza's own. The zone is never created, and only names cerveza owns there
    /// are changed.
    pub fn with_public_zone(mut self, zone: Option<String>) -> Self {
        self.public_zone = zone;
        self
    }

    /// Associates the private zone with the VPC of each of `regions` too (its
    /// configured VPC, or the region's default VPC), so hosts in every region resolve
    /// each other; the first region's VPC makes the zone when `[dns] vpc-id` is unset.
    pub fn with_regions(mut self, regions: Vec<(Region, Option<String>)>) -> Self {
        self.regions = regions;
        self
    }

    /// The VPC (id, region) a new private zone is made with: `[dns] vpc-id`, else the
    /// first region's.
    async fn creation_vpc(&self) -> ProviderResult<Option<(String, String)>> {
        if self.vpc.is_some() {
            return Ok(self.vpc.clone());
        }
        for (region, vpc) in &self.regions {
            if let Some((id, _)) = self.ec2.find_vpc(region, vpc.as_deref()).await? {
                return Ok(Some((id, region.to_string())));
            }
        }
        Ok(None)
    }

    /// Associates the private zone `zone_id` with every region's VPC it lacks (once
    /// per process). A region without a VPC, or an association refused, is a warning:
    /// the names are published all the same, and that region's hosts do not resolve
    /// them.
    async fn associate_regions(&self, zone_id: &str) {
        self.associated
            .get_or_init(|| async {
                pace().await;
                let have: Vec<String> =
                    match self.client.get_hosted_zone().id(zone_id).send().await {
                        Ok(z) => z
                            .vpcs()
                            .iter()
                            .filter_map(|v| v.vpc_id().map(str::to_owned))
                            .collect(),
                        Err(e) => {
                            tracing::warn!("reading hosted zone {zone_id}: {}", provider_error(e));
                            return;
                        }
                    };
                for (region, vpc) in &self.regions {
                    let id = match self.ec2.find_vpc(region, vpc.as_deref()).await {
                        Ok(Some((id, _))) => id,
                        Ok(None) => {
                            tracing::warn!("{region} has no VPC to associate the private zone with: its hosts will not resolve the fleet's names ([regions.{region}] vpc)");
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!("finding the VPC of {region}: {e}");
                            continue;
                        }
                    };
                    if have.contains(&id) {
                        continue;
                    }
                    pace().await;
                    let done = self
                        .client
                        .associate_vpc_with_hosted_zone()
                        .hosted_zone_id(zone_id)
                        .vpc(
                            Vpc::builder()
                                .vpc_id(&id)
                                .vpc_region(VpcRegion::from(region.as_str()))
                                .build(),
                        )
                        .send()
                        .await;
                    match done {
                        Ok(out) => {
                            if let Some(c) = out.change_info() {
                                self.pending.lock().await.push(c.id().to_owned());
                            }
                        }
                        Err(e) => tracing::warn!(
                            "associating the private zone with {id} ({region}): {}",
                            provider_error(e)
                        ),
                    }
                }
            })
            .await;
    }

    /// The hosted zone id of `name` (`noc.private`), created when missing.
    async fn zone(&self, name: &str, create: bool) -> ProviderResult<Option<String>> {
        pace().await;
        if let Some(id) = self.zones.lock().await.get(name) {
            return Ok(Some(id.clone()));
        }
        let fqdn = format!("{name}.");
        let private = name.ends_with(".private");
        let existing = self.find_zone(&fqdn, private).await?;
        let id = match existing {
            Some(id) => id,
            None if !create => return Ok(None),
            None => {
                let mut req = self
                    .client
                    .create_hosted_zone()
                    .name(&fqdn)
                    // Unique per creation (Route53 refuses a reference used before,
                    // even for a zone since deleted); the SDK's retries of this one
                    // request keep it, so a retry cannot make a second zone.
                    .caller_reference(caller_reference(name))
                    .hosted_zone_config(
                        HostedZoneConfig::builder()
                            .comment("managed by cerveza")
                            .private_zone(private)
                            .build(),
                    );
                if private {
                    let (vpc, region) = self.creation_vpc().await?.ok_or_else(|| {
                        ProviderError::new(
                            ProviderErrorKind::Invalid,
                            format!("Route53 private zone {name} needs a VPC: set [dns] vpc-id and vpc-region, or a region's VPC"),
                        )
                    })?;
                    req = req.vpc(
                        Vpc::builder()
                            .vpc_id(vpc)
                            .vpc_region(VpcRegion::from(region.as_str()))
                            .build(),
                    );
                }
                let out = req.send().await.map_err(provider_error)?;
                tracing::info!(zone = name, "created Route53 hosted zone");
                let made = out
                    .hosted_zone()
                    .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
                    .ok_or_else(|| {
                        ProviderError::new(
                            ProviderErrorKind::Other,
                            "CreateHostedZone answered without a zone",
                        )
                    })?;
                // Another operator may have made one at the same time: everyone uses
                // the same one (the lowest id), and the other is named for deletion.
                pace().await;
                match self.find_zone(&fqdn, private).await? {
                    Some(first) if first != made => {
                        tracing::warn!(
                            "another hosted zone {name} ({first}) was made at the same time as {made}; using {first}: delete {made}"
                        );
                        first
                    }
                    _ => made,
                }
            }
        };
        self.zones.lock().await.insert(name.to_owned(), id.clone());
        if private && create {
            self.associate_regions(&id).await;
        }
        Ok(Some(id))
    }

    /// The hosted zone of `fqdn` (private or public), the lowest id when there are
    /// several (two operators made one at once).
    async fn find_zone(&self, fqdn: &str, private: bool) -> ProviderResult<Option<String>> {
        let found = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(fqdn)
            .max_items(100)
            .send()
            .await
            .map_err(provider_error)?;
        Ok(found
            .hosted_zones()
            .iter()
            .filter(|z| {
                z.name() == fqdn && z.config().map(|c| c.private_zone()).unwrap_or(false) == private
            })
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
            .min())
    }

    fn zone_of(product: &Product, name: &str) -> String {
        if name.ends_with(".public") {
            format!("{product}.public")
        } else {
            format!("{product}.private")
        }
    }

    async fn zone_records(&self, zone_id: &str) -> ProviderResult<Vec<DnsRecord>> {
        Ok(a_records(&self.record_sets(zone_id, None).await?))
    }

    /// The record sets of `zone_id`, every page; from `name` on when given (Route53
    /// lists in name order), one page of them.
    async fn record_sets(
        &self,
        zone_id: &str,
        name: Option<&str>,
    ) -> ProviderResult<Vec<ResourceRecordSet>> {
        let mut out = Vec::new();
        let mut start: Option<(String, Option<RrType>)> = name.map(|n| (format!("{n}."), None));
        loop {
            pace().await;
            let mut req = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id);
            if let Some((name, kind)) = start.take() {
                req = req.start_record_name(name).set_start_record_type(kind);
            }
            let page = req.send().await.map_err(provider_error)?;
            out.extend(page.resource_record_sets().iter().cloned());
            match (
                name,
                page.is_truncated(),
                page.next_record_name(),
                page.next_record_type(),
            ) {
                (None, true, Some(n), Some(t)) => start = Some((n.to_owned(), Some(t.clone()))),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn change(
        &self,
        zone_id: &str,
        action: ChangeAction,
        name: &str,
        address: &str,
    ) -> ProviderResult<()> {
        let set = record_set(name, RrType::A, address)?;
        self.change_batch(zone_id, vec![(action, set)]).await
    }

    /// Sends `changes` to `zone_id` as one batch (Route53 applies it whole or not at
    /// all) and keeps the change id for [`Dns::wait_synced`].
    async fn change_batch(
        &self,
        zone_id: &str,
        changes: Vec<(ChangeAction, ResourceRecordSet)>,
    ) -> ProviderResult<()> {
        pace().await;
        let invalid = |e: aws_sdk_route53::error::BuildError| {
            ProviderError::new(ProviderErrorKind::Invalid, e.to_string())
        };
        let mut batch = ChangeBatch::builder();
        for (action, set) in changes {
            batch = batch.changes(
                Change::builder()
                    .action(action)
                    .resource_record_set(set)
                    .build()
                    .map_err(invalid)?,
            );
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch.build().map_err(invalid)?)
            .send()
            .await
            .map_err(provider_error)?;
        if let Some(id) = out.change_info().map(|c| c.id().to_owned()) {
            self.pending.lock().await.push(id);
        }
        Ok(())
    }
}

/// The A records among `sets`, names without the trailing dot.
fn a_records(sets: &[ResourceRecordSet]) -> Vec<DnsRecord> {
    sets.iter()
        .filter(|set| set.r#type() == &RrType::A)
        .flat_map(|set| {
            let name = set.name().trim_end_matches('.').to_owned();
            set.resource_records().iter().filter_map(move |r| {
                Some(DnsRecord {
                    name: name.clone(),
                    address: r.value().parse::<IpAddr>().ok()?,
                })
            })
        })
        .collect()
}

/// A record set of one value, with cerveza's TTL.
fn record_set(name: &str, kind: RrType, value: &str) -> ProviderResult<ResourceRecordSet> {
    let invalid = |e: aws_sdk_route53::error::BuildError| {
        ProviderError::new(ProviderErrorKind::Invalid, e.to_string())
    };
    ResourceRecordSet::builder()
        .name(format!("{name}."))
        .r#type(kind)
        .ttl(TTL)
        .resource_records(
            ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)
}

/// A CallerReference of its own for each zone creation.
fn caller_reference(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("cerveza-{name}-{nanos:x}-{:x}", std::process::id())
}

#[async_trait]
impl DnsRead for Route53Dns {
    async fn records(&self, product: &Product) -> ProviderResult<Vec<DnsRecord>> {
        let mut out = Vec::new();
        let mut zones = vec![format!("{product}.private")];
        if self.public_zone.is_some() {
            out.extend(self.owned_records(product).await?);
        } else {
            zones.push(format!("{product}.public"));
        }
        for zone in zones {
            if let Some(id) = self.zone(&zone, false).await? {
                out.extend(
                    self.zone_records(&id)
                        .await?
                        .into_iter()
                        .filter(|r| r.name != zone),
                );
            }
        }
        out.sort();
        Ok(out)
    }

    async fn domains(&self, product: &Product) -> ProviderResult<[String; 2]> {
        let [private, public] = cerveza_core::ports::default_domains(product);
        Ok(match self.public().await? {
            Some((_, name)) => [private, name.clone()],
            None => [private, public],
        })
    }
}

#[async_trait]
impl Dns for Route53Dns {
    async fn upsert(&self, product: &Product, record: &DnsRecord) -> ProviderResult<()> {
        if self.public_zone.is_some() && !record.name.ends_with(".private") {
            return self.owned_upsert(product, record).await;
        }
        let zone = Self::zone_of(product, &record.name);
        let id = self.zone(&zone, true).await?.unwrap_or_default();
        self.change(
            &id,
            ChangeAction::Upsert,
            &record.name,
            &record.address.to_string(),
        )
        .await
    }

    async fn remove(&self, product: &Product, name: &str) -> ProviderResult<()> {
        if self.public_zone.is_some() && !name.ends_with(".private") {
            return self.owned_remove(product, name).await;
        }
        let zone = Self::zone_of(product, name);
        let Some(id) = self.zone(&zone, false).await? else {
            return Ok(());
        };
        // Route53 deletes a record set only when given its exact current value.
        let current = self.zone_records(&id).await?;
        for r in current.iter().filter(|r| r.name == name) {
            self.change(&id, ChangeAction::Delete, name, &r.address.to_string())
                .await?;
        }
        Ok(())
    }
    async fn wait_synced(&self, limit: std::time::Duration) -> ProviderResult<usize> {
        let ids: Vec<String> = std::mem::take(&mut *self.pending.lock().await);
        let total = ids.len();
        let deadline = tokio::time::Instant::now() + limit;
        let mut waiting = ids;
        let mut pause = std::time::Duration::from_millis(500);
        while !waiting.is_empty() {
            let mut still = Vec::new();
            for id in waiting {
                pace().await;
                let out = self
                    .client
                    .get_change()
                    .id(id.trim_start_matches("/change/"))
                    .send()
                    .await
                    .map_err(provider_error)?;
                let synced = out
                    .change_info()
                    .is_some_and(|c| c.status() == &aws_sdk_route53::types::ChangeStatus::Insync);
                if !synced {
                    still.push(id);
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(ProviderError::new(
                    ProviderErrorKind::Unavailable,
                    format!(
                        "{} of {total} Route53 change(s) still PENDING after {}s: the records are written, and the name servers serve them once Route53 has applied them",
                        waiting.len(),
                        limit.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
        Ok(total)
    }
}
