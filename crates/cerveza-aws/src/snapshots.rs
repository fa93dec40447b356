//! EBS snapshots: a host's crash-consistent set (CreateSnapshots on the instance, the
//! root and every volume not asked for left out, each snapshot with its volume's tags),
//! and the product's snapshots of a region.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{InstanceSpecification, ResourceType, SnapshotState as Ec2State};
use cerveza_core::backup::{Snapshot, SnapshotState};
use cerveza_core::model::{InstanceId, VolumeId};
use cerveza_core::names::{Product, Region};
use cerveza_core::ports::ProviderResult;
use cerveza_core::tags;

use crate::ec2::{filter, sent_once, tag_map, tag_spec, Ec2};
use crate::errors::provider_error;

fn state(s: Option<&Ec2State>) -> SnapshotState {
    match s {
        Some(Ec2State::Completed) => SnapshotState::Completed,
        Some(Ec2State::Error) => SnapshotState::Error,
        _ => SnapshotState::Pending,
    }
}

fn convert(region: &Region, s: &aws_sdk_ec2::types::Snapshot) -> Option<Snapshot> {
    Some(Snapshot {
        id: s.snapshot_id()?.to_owned(),
        region: region.clone(),
        volume_id: s.volume_id().map(str::to_owned),
        size_gb: s.volume_size().unwrap_or(0),
        state: state(s.state()),
        started: s.start_time().map(|t| t.secs()),
        tags: tag_map(s.tags()),
    })
}

impl Ec2 {
    pub(crate) async fn read_snapshots(
        &self,
        region: &Region,
        product: &Product,
    ) -> ProviderResult<Vec<Snapshot>> {
        self.pace(region, "DescribeSnapshots", true, 1).await;
        let mut pages = self
            .client(region)
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter(
                &format!("tag:{}", tags::PRODUCT),
                [product.to_string()],
            ))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(provider_error)?;
            out.extend(page.snapshots().iter().filter_map(|s| convert(region, s)));
        }
        Ok(out)
    }

    pub(crate) async fn snapshot_set(
        &self,
        region: &Region,
        instance: &InstanceId,
        volumes: &[VolumeId],
        exclude: &[VolumeId],
        set_tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Vec<Snapshot>> {
        let others: Vec<String> = exclude
            .iter()
            .filter(|v| !volumes.contains(v))
            .map(ToString::to_string)
            .collect();
        self.pace(region, "CreateSnapshots", true, 1).await;
        let out = self
            .client(region)
            .create_snapshots()
            .instance_specification(
                InstanceSpecification::builder()
                    .instance_id(instance.as_str())
                    .exclude_boot_volume(true)
                    .set_exclude_data_volume_ids(Some(others))
                    .build(),
            )
            .copy_tags_from_source(aws_sdk_ec2::types::CopyTagsFromSource::Volume)
            .tag_specifications(tag_spec(ResourceType::Snapshot, set_tags))
            .description(format!(
                "cerveza backup {}",
                set_tags
                    .get(cerveza_core::backup::SET)
                    .map_or("", String::as_str)
            ))
            .customize()
            .config_override(sent_once())
            .send()
            .await
            .map_err(provider_error)?;
        Ok(out
            .snapshots()
            .iter()
            .filter_map(|s| {
                Some(Snapshot {
                    id: s.snapshot_id()?.to_owned(),
                    region: region.clone(),
                    volume_id: s.volume_id().map(str::to_owned),
                    size_gb: s.volume_size().unwrap_or(0),
                    state: state(s.state()),
                    started: s.start_time().map(|t| t.secs()),
                    tags: tag_map(s.tags()),
                })
            })
            .collect())
    }

    pub(crate) async fn copy(
        &self,
        to: &Region,
        source: &Snapshot,
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Snapshot> {
        self.pace(to, "CopySnapshot", true, 1).await;
        let out = self
            .client(to)
            .copy_snapshot()
            .source_region(source.region.as_str())
            .source_snapshot_id(&source.id)
            .tag_specifications(tag_spec(ResourceType::Snapshot, tags))
            .description(format!(
                "cerveza backup {} (a copy of {} in {})",
                tags.get(cerveza_core::backup::SET)
                    .map_or("", String::as_str),
                source.id,
                source.region
            ))
            .customize()
            .config_override(sent_once())
            .send()
            .await
            .map_err(provider_error)?;
        let id = out.snapshot_id().ok_or_else(|| {
            cerveza_core::ports::ProviderError::new(
                cerveza_core::ports::ProviderErrorKind::Other,
                format!("CopySnapshot of {} answered no snapshot id", source.id),
            )
        })?;
        Ok(Snapshot {
            id: id.to_owned(),
            region: to.clone(),
            volume_id: None,
            size_gb: source.size_gb,
            state: SnapshotState::Pending,
            started: None,
            tags: tags.clone(),
        })
    }
}
