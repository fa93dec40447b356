//! A region's VPC as launches need it: its subnets and security groups, read in three
//! requests (the VPC, then its subnets and its groups at once).

use cerveza_core::names::{Region, Zone};
use cerveza_core::network::{Network, SecurityGroup, Subnet};
use cerveza_core::ports::{ProviderErrorKind, ProviderResult};

use crate::ec2::{filter, tag_map, Ec2};
use crate::errors::provider_error;

impl Ec2 {
    /// VPC `vpc` of `region` (or its default VPC) with its subnets and groups; `None`
    /// when there is no such VPC.
    pub(crate) async fn read_network(
        &self,
        region: &Region,
        vpc: Option<&str>,
    ) -> ProviderResult<Option<Network>> {
        let Some((vpc_id, is_default)) = self.find_vpc(region, vpc).await? else {
            return Ok(None);
        };
        let (subnets, groups) =
            futures::try_join!(self.subnets(region, &vpc_id), self.groups(region, &vpc_id))?;
        Ok(Some(Network {
            vpc_id,
            is_default,
            subnets,
            groups,
        }))
    }

    /// VPC `vpc` of `region`, or its default VPC: (id, whether default); `None` when
    /// there is no such VPC.
    pub(crate) async fn find_vpc(
        &self,
        region: &Region,
        vpc: Option<&str>,
    ) -> ProviderResult<Option<(String, bool)>> {
        self.pace(region, "DescribeVpcs", false, 1).await;
        let req = self.client(region).describe_vpcs();
        let req = match vpc {
            Some(id) => req.vpc_ids(id),
            None => req.filters(filter("is-default", ["true".to_owned()])),
        };
        let vpcs = match req.send().await.map_err(provider_error) {
            Ok(out) => out.vpcs().to_vec(),
            // A VPC id EC2 does not know: `InvalidVpcID.NotFound`.
            Err(e) if e.kind == ProviderErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(vpcs
            .first()
            .and_then(|v| Some((v.vpc_id()?.to_owned(), v.is_default().unwrap_or(false)))))
    }

    async fn subnets(&self, region: &Region, vpc: &str) -> ProviderResult<Vec<Subnet>> {
        self.pace(region, "DescribeSubnets", true, 1).await;
        let mut pages = self
            .client(region)
            .describe_subnets()
            .filters(filter("vpc-id", [vpc.to_owned()]))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(provider_error)?;
            out.extend(page.subnets().iter().filter_map(|s| {
                Some(Subnet {
                    id: s.subnet_id()?.to_owned(),
                    zone: Zone::parse(s.availability_zone()?).ok()?,
                    tags: tag_map(s.tags()),
                    public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
                    default_for_az: s.default_for_az().unwrap_or(false),
                    available_ips: s
                        .available_ip_address_count()
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                })
            }));
        }
        Ok(out)
    }

    async fn groups(&self, region: &Region, vpc: &str) -> ProviderResult<Vec<SecurityGroup>> {
        self.pace(region, "DescribeSecurityGroups", true, 1).await;
        let mut pages = self
            .client(region)
            .describe_security_groups()
            .filters(filter("vpc-id", [vpc.to_owned()]))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(provider_error)?;
            out.extend(page.security_groups().iter().filter_map(|g| {
                Some(SecurityGroup {
                    id: g.group_id()?.to_owned(),
                    name: g.group_name()?.to_owned(),
                })
            }));
        }
        Ok(out)
    }
}
