//! Where a launch goes inside its region: the region's VPC, subnets and groups read
//! once per command (by the first host that needs them), then each host's placement;
//! and whether the region offers the launch its image and instance type (read once per
//! region, image and type; see [`crate::offering`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Lifecycle;
use crate::error::{Context, Error};
use crate::names::{Hostname, Region, Zone};
use crate::network::{place, Network, Placement};
use crate::offering::{self, Offering};
use crate::profile::InstanceProfile;

/// Each region's network, read at most once per command (a failed read is not kept,
/// so the next host asks again).
pub(super) type Networks =
    tokio::sync::Mutex<BTreeMap<Region, Arc<tokio::sync::OnceCell<Option<Arc<Network>>>>>>;

/// What each region offers each (image, instance type), read at most once per command.
pub(super) type Offerings = tokio::sync::Mutex<
    BTreeMap<(Region, String, String), Arc<tokio::sync::OnceCell<Arc<Offering>>>>,
>;

impl Lifecycle<'_> {
    /// Where `host` of `profile` launches in `zone`: the configured VPC of the zone's
    /// region (or its default VPC), a subnet of that VPC in the zone, the profile's
    /// security groups by id. A missing VPC, subnet or group is a usage error that
    /// names what exists, before anything is made for the host.
    pub(super) async fn placement(
        &self,
        host: &Hostname,
        zone: &Zone,
        profile: &InstanceProfile,
    ) -> Result<Placement, Error> {
        let region = zone.region();
        let vpc = self.settings.vpcs.get(&region).map(String::as_str);
        let cell = self
            .networks
            .lock()
            .await
            .entry(region.clone())
            .or_default()
            .clone();
        let network = cell
            .get_or_try_init(|| async {
                self.compute
                    .network(&region, vpc)
                    .await
                    .map(|n| n.map(Arc::new))
            })
            .await
            .context(|| {
                format!(
                    "{host}: reading the subnets and security groups of {} in {region}",
                    vpc.unwrap_or("the default VPC")
                )
            })?;
        let usage = |message: String| Error::Usage {
            host: host.to_string(),
            message,
        };
        let Some(network) = network else {
            return Err(usage(crate::network::no_such_vpc(&region, vpc)));
        };
        let placement = place(profile, zone, network).map_err(usage)?;
        self.check_offering(host, zone, profile).await?;
        Ok(placement)
    }

    /// Whether `zone` offers `profile`'s instance type, and its image exists in the
    /// region, is not deprecated and fits the type: a usage error naming the nearest
    /// alternative otherwise.
    async fn check_offering(
        &self,
        host: &Hostname,
        zone: &Zone,
        profile: &InstanceProfile,
    ) -> Result<(), Error> {
        let region = zone.region();
        let usage = |message: String| Error::Usage {
            host: host.to_string(),
            message,
        };
        let ami = profile.ami_for(&region).map_err(|e| usage(e.to_string()))?;
        let itype = &profile.instance_type;
        let cell = self
            .offerings
            .lock()
            .await
            .entry((region.clone(), ami.to_owned(), itype.clone()))
            .or_default()
            .clone();
        let offer = cell
            .get_or_try_init(|| async {
                self.compute
                    .offering(&region, offering::image_to_read(ami), itype)
                    .await
                    .map(Arc::new)
            })
            .await
            .context(|| {
                format!("{host}: reading image {ami} and instance type {itype} in {region}")
            })?;
        match offering::problem(offer, zone, ami, itype, super::now()) {
            Some(why) => Err(usage(format!("profile {}: {why}", profile.name))),
            None => Ok(()),
        }
    }
}
