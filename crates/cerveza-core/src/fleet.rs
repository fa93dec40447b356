//! Reading the fleet: one host (`show`) or every host of every region at once
//! (`list`). Read-only: read ports only, and no registry needed.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::error::{Context, Error};
use crate::model::{HostRecord, Instance, InstanceFilter};
use crate::names::{Hostname, Product, Region, Zone};
use crate::ports::{ComputeRead, RegistryRead};
use crate::selection::{Candidate, Selection};

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
    /// Those of them that refused the credentials (not an outage: `list` says so).
    #[serde(skip)]
    pub denied_regions: Vec<Region>,
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
            Ok(Err(e)) => {
                if e.kind == crate::ports::ProviderErrorKind::Denied {
                    listing.denied_regions.push(region.clone());
                }
                listing.failed_regions.push((region, e.to_string()));
            }
            Err(_) => listing.failed_regions.push((
                region,
                format!(
                    "no answer within {}s (the region timeout: --region-timeout, CERVEZA_REGION_TIMEOUT)",
                    region_timeout.as_secs_f64()
                ),
            )),
        }
    }
    // A region that refuses credentials other regions take is, in all likelihood, an
    // opt-in region the account has not enabled: AWS answers there as if the key were
    // unknown (AuthFailure), which would otherwise read as bad credentials.
    let answered = regions.len() > listing.failed_regions.len();
    if answered {
        for (region, message) in &mut listing.failed_regions {
            let unknown_key = [
                "AuthFailure",
                "UnrecognizedClientException",
                "InvalidClientTokenId",
            ]
            .iter()
            .any(|c| message.starts_with(c));
            if unknown_key && listing.denied_regions.contains(region) {
                message.push_str(&format!(
                    "; the same credentials work in other regions, so {region} is most likely an opt-in region this account has not enabled: enable it (AWS console: Account, AWS Regions) or take it out of `regions`"
                ));
            }
        }
    }
    listing.failed_regions.sort();
    listing
        .instances
        .sort_by(|a, b| (a.host(), a.launch_time, &a.id).cmp(&(b.host(), b.launch_time, &b.id)));
    listing
}
