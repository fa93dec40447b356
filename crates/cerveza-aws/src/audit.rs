//! Read-only facts: what `cerveza doctor` judges (security group rules, Elastic IPs, the
//! registry table's backups and replicas) and the console output host keys come from.

use aws_sdk_ec2::types::IpPermission;
use cerveza_core::model::{Address, InstanceId, SecurityRule};
use cerveza_core::names::{Product, Region};
use cerveza_core::ports::{ProviderErrorKind, ProviderResult};

use crate::errors::provider_error;
use crate::{DynamoRegistry, Ec2};

/// `tcp 22`, `udp 53-54`, `all`, `icmp`.
fn traffic(p: &IpPermission) -> String {
    let proto = match p.ip_protocol().unwrap_or("-1") {
        "-1" => return "all".into(),
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        other => other,
    };
    match (p.from_port(), p.to_port()) {
        (Some(a), Some(b)) if a == b && a >= 0 => format!("{proto} {a}"),
        (Some(a), Some(b)) if a >= 0 => format!("{proto} {a}-{b}"),
        _ => proto.to_owned(),
    }
}

impl Ec2 {
    /// Every IPv4 range rule of every security group of a region, all pages. Security
    /// groups are not cerveza's (the profiles name them), so none is filtered out.
    pub async fn security_rules(&self, region: &Region) -> ProviderResult<Vec<SecurityRule>> {
        self.pace(region, "DescribeSecurityGroups", true, 1).await;
        let mut pages = self
            .client(region)
            .describe_security_groups()
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for g in page.map_err(provider_error)?.security_groups() {
                let rules = g
                    .ip_permissions()
                    .iter()
                    .map(|p| ("ingress", p))
                    .chain(g.ip_permissions_egress().iter().map(|p| ("egress", p)));
                for (direction, p) in rules {
                    for r in p.ip_ranges() {
                        out.push(SecurityRule {
                            group_id: g.group_id().unwrap_or("?").to_owned(),
                            group_name: g.group_name().unwrap_or("?").to_owned(),
                            region: region.to_string(),
                            direction,
                            traffic: traffic(p),
                            cidr: r.cidr_ip().unwrap_or_default().to_owned(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// An instance's console output (the latest EC2 keeps, 64 KB); `None` while EC2 has
    /// none yet (it is posted a while after boot).
    pub async fn console_output(
        &self,
        region: &Region,
        instance: &InstanceId,
    ) -> ProviderResult<Option<String>> {
        self.pace(region, "GetConsoleOutput", false, 1).await;
        let out = self
            .client(region)
            .get_console_output()
            .instance_id(instance.as_str())
            .send()
            .await
            .map_err(provider_error)?;
        Ok(out
            .output()
            .filter(|o| !o.is_empty())
            .and_then(|o| aws_smithy_types::base64::decode(o.trim()).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The product's Elastic IPs in a region, with the host each was allocated for.
    pub async fn addresses(
        &self,
        region: &Region,
        product: &Product,
    ) -> ProviderResult<Vec<(Option<String>, Address)>> {
        self.tagged_addresses(region, product, None).await
    }
}

/// What the registry table has to survive its region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableResilience {
    /// Point-in-time recovery is on.
    pub point_in_time_recovery: bool,
    /// Regions of its replicas (global table).
    pub replicas: Vec<String>,
    /// The replicas are strongly consistent (MRSC).
    pub strong: bool,
}

impl DynamoRegistry {
    /// The table's backups and replicas; `None` when the table does not exist yet.
    pub async fn resilience(&self) -> ProviderResult<Option<TableResilience>> {
        let table = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => out.table,
            Err(e) => {
                let e = provider_error(e);
                if e.kind == ProviderErrorKind::NotFound {
                    return Ok(None);
                }
                return Err(e);
            }
        };
        let Some(table) = table else {
            return Ok(None);
        };
        let backups = self
            .client
            .describe_continuous_backups()
            .table_name(&self.table)
            .send()
            .await
            .map_err(provider_error)?;
        let pitr = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .is_some_and(|s| s.as_str() == "ENABLED");
        Ok(Some(TableResilience {
            point_in_time_recovery: pitr,
            replicas: table
                .replicas()
                .iter()
                .filter_map(|r| r.region_name().map(str::to_owned))
                .collect(),
            strong: table
                .multi_region_consistency()
                .is_some_and(|c| c.as_str() == "STRONG"),
        }))
    }
}
