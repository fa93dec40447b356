//! EC2: instances and zones in every region.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ec2::types::{
    DomainType, Filter, InstanceType, Placement, ResourceType, Tag, TagSpecification, VolumeType,
};
use aws_sdk_ec2::Client;
use cerveza_core::model::{
    Address, AllocationId, Instance, InstanceFilter, InstanceId, InstanceState, LaunchSpec, Volume,
    VolumeId, VolumeRequest, VolumeState,
};
use cerveza_core::names::{Hostname, Product, Region, Zone};
use cerveza_core::ports::{Compute, ComputeRead, ProviderError, ProviderErrorKind, ProviderResult};
use cerveza_core::tags;

use crate::errors::provider_error;

/// Most values one `Filter` may carry.
const MAX_FILTER_VALUES: usize = 200;

/// Most instances one `DescribeInstances` page may return (the API's maximum).
const PAGE_SIZE: i32 = 1000;

/// EC2 in every region, one client per region built from one [`SdkConfig`].
pub struct Ec2 {
    base: SdkConfig,
    clients: Mutex<HashMap<Region, Client>>,
}

impl Ec2 {
    /// EC2 for the given SDK configuration.
    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `call` once EC2's buckets of `action` allow it; a call EC2 throttles even so
    /// (after the SDK's own retries: someone else in the account spends the same
    /// buckets), or that fails on the way (a 500, a reset: the SDK stops retrying once
    /// its retry quota is spent, as in a brownout), backs off, waits for its tokens
    /// again and is sent again, a few times. Every call paced this way is idempotent
    /// (a `ClientToken`, or a state EC2 accepts twice).
    async fn paced<T, F, Fut>(
        &self,
        region: &Region,
        action: &'static str,
        instances: usize,
        call: F,
    ) -> ProviderResult<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ProviderResult<T>>,
    {
        let mut rounds = 0u32;
        loop {
            self.pace(region, action, true, instances).await;
            match call().await {
                // An answer that says "again" (throttled, 500, 503), not silence: a
                // call that timed out is not sent again here (its region may be down).
                Err(e) if answered_again(&e) && rounds < 4 => {
                    // The bucket EC2 emptied refills at a few tokens a second.
                    rounds += 1;
                    let pause = std::time::Duration::from_millis(250 << rounds);
                    tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64())).await;
                }
                Err(e) if e.has_code("UnauthorizedOperation") => {
                    return Err(crate::denial::explained(&self.base, e).await)
                }
                done => return done,
            }
        }
    }

    /// One CreateVolume.
    async fn create_volume_once(
        &self,
        r: &VolumeRequest,
    ) -> ProviderResult<aws_sdk_ec2::operation::create_volume::CreateVolumeOutput> {
        self.client(&r.region)
            .create_volume()
            .availability_zone(r.zone.as_str())
            .size(r.size_gb as i32)
            .volume_type(VolumeType::from(r.volume_type.as_str()))
            .set_iops(r.iops.map(|i| i as i32))
            .set_throughput(r.throughput.map(|t| t as i32))
            .encrypted(r.encrypted)
            .set_kms_key_id(r.kms_key.clone())
            .client_token(&r.client_token)
            .set_snapshot_id(r.snapshot_id.clone())
            .tag_specifications(tag_spec(ResourceType::Volume, &r.tags))
            .send()
            .await
            .map_err(provider_error)
    }

    /// Waits for EC2's buckets of `action` in `region` (see [`crate::transport::Pacer`]).
    pub(crate) async fn pace(
        &self,
        region: &Region,
        action: &'static str,
        paged: bool,
        instances: usize,
    ) {
        crate::transport::pacer()
            .wait(
                region.as_str(),
                "ec2",
                crate::transport::ec2_request_bucket(action, paged),
                crate::transport::ec2_resource_bucket(action),
                u32::try_from(instances).unwrap_or(u32::MAX),
            )
            .await;
    }

    pub(crate) fn client(&self, region: &Region) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let conf = aws_sdk_ec2::config::Builder::from(&self.base)
                    .region(aws_sdk_ec2::config::Region::new(region.to_string()))
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }
}

/// Whether EC2 answered `e` and the answer means "ask again": throttled, or a 5xx with
/// its code (`InternalError`, `ServiceUnavailable`, `Unavailable`).
fn answered_again(e: &ProviderError) -> bool {
    e.kind == ProviderErrorKind::Throttled
        || (e.kind == ProviderErrorKind::Unavailable
            && [
                "InternalError",
                "InternalFailure",
                "ServiceUnavailable",
                "Unavailable",
            ]
            .iter()
            .any(|c| e.has_code(c)))
}

pub(crate) fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

fn convert(region: &Region, i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let tags = tag_map(i.tags());
    Some(Instance {
        id: InstanceId::new(i.instance_id()?),
        region: region.clone(),
        zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .and_then(|z| Zone::parse(z).ok()),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| InstanceState::from_name(n.as_str()))
            .unwrap_or_else(|| InstanceState::Other("unknown".into())),
        instance_type: i.instance_type().map(|t| t.as_str().to_owned()),
        image_id: i.image_id().map(str::to_owned),
        private_ip: i.private_ip_address().map(str::to_owned),
        public_ip: i.public_ip_address().map(str::to_owned),
        launch_time: i.launch_time().map(|t| t.secs()),
        security_groups: i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_name().map(str::to_owned))
            .collect(),
        tags,
        state_reason: i.state_reason().and_then(|r| {
            let code = r.code().unwrap_or_default();
            let message = r.message().unwrap_or_default();
            match (code.is_empty(), message.is_empty()) {
                (true, true) => None,
                (false, true) => Some(code.to_owned()),
                (true, false) => Some(message.to_owned()),
                (false, false) if message.starts_with(code) => Some(message.to_owned()),
                (false, false) => Some(format!("{code}: {message}")),
            }
        }),
        imds_v1: i
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| *t == aws_sdk_ec2::types::HttpTokensState::Optional),
    })
}

const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect()
}

fn convert_volume(region: &Region, v: &aws_sdk_ec2::types::Volume) -> Option<Volume> {
    let attachment = v.attachments().first();
    Some(Volume {
        id: VolumeId::new(v.volume_id()?),
        region: region.clone(),
        zone: v.availability_zone().and_then(|z| Zone::parse(z).ok()),
        size_gb: v.size().unwrap_or(0),
        volume_type: v.volume_type().map(|t| t.as_str().to_owned()),
        state: VolumeState::from_name(v.state().map(|s| s.as_str()).unwrap_or_default()),
        attached_to: attachment
            .and_then(|a| a.instance_id())
            .map(InstanceId::from),
        attached_as: attachment.and_then(|a| a.device()).map(str::to_owned),
        created: v.create_time().map(|t| t.secs()),
        tags: tag_map(v.tags()),
    })
}

#[async_trait]
impl ComputeRead for Ec2 {
    async fn network(
        &self,
        region: &Region,
        vpc: Option<&str>,
    ) -> ProviderResult<Option<cerveza_core::network::Network>> {
        self.read_network(region, vpc).await
    }

    async fn offering(
        &self,
        region: &Region,
        image: Option<&str>,
        instance_type: &str,
    ) -> ProviderResult<cerveza_core::offering::Offering> {
        self.read_offering(region, image, instance_type).await
    }

    async fn snapshots(
        &self,
        region: &Region,
        product: &Product,
    ) -> ProviderResult<Vec<cerveza_core::backup::Snapshot>> {
        self.read_snapshots(region, product).await
    }

    async fn zones(&self, region: &Region) -> ProviderResult<Vec<Zone>> {
        let out = self
            .client(region)
            .describe_availability_zones()
            .send()
            .await
            .map_err(provider_error)?;
        Ok(out
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name())
            .filter_map(|z| Zone::parse(z).ok())
            .collect())
    }

    async fn instances(
        &self,
        region: &Region,
        f: &InstanceFilter,
    ) -> ProviderResult<Vec<Instance>> {
        self.pace(region, "DescribeInstances", true, 1).await;
        let mut filters = vec![filter(
            &format!("tag:{}", tags::PRODUCT),
            [f.product.to_string()],
        )];
        if !f.hosts.is_empty() {
            filters.push(filter(
                &format!("tag:{}", tags::HOST),
                f.hosts.iter().map(ToString::to_string),
            ));
        }
        if !f.include_gone {
            filters.push(filter(
                "instance-state-name",
                LIVE_STATES.iter().map(|s| (*s).to_owned()),
            ));
        }
        let mut pages = self
            .client(region)
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(provider_error)?;
            for r in page.reservations() {
                out.extend(r.instances().iter().filter_map(|i| convert(region, i)));
            }
        }
        // The API filtered already; this keeps a lax emulator honest too.
        out.retain(|i| f.matches(i));
        Ok(out)
    }

    async fn instance(&self, region: &Region, id: &InstanceId) -> ProviderResult<Option<Instance>> {
        self.pace(region, "DescribeInstances", false, 1).await;
        let res = self
            .client(region)
            .describe_instances()
            .instance_ids(id.as_str())
            .send()
            .await;
        match res {
            Ok(out) => Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find_map(|i| convert(region, i))),
            Err(e) => {
                let e = provider_error(e);
                if e.kind == ProviderErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn instances_by_id(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> ProviderResult<Vec<Instance>> {
        self.pace(region, "DescribeInstances", true, 1).await;
        // A filter, not `InstanceIds`: an id EC2 does not show yet is left out instead
        // of failing the whole call, and a filtered, paginated describe spends EC2's
        // larger token bucket.
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let mut pages = self
                .client(region)
                .describe_instances()
                .filters(filter("instance-id", chunk.iter().map(ToString::to_string)))
                .max_results(PAGE_SIZE)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(provider_error)?;
                for r in page.reservations() {
                    out.extend(r.instances().iter().filter_map(|i| convert(region, i)));
                }
            }
        }
        Ok(out)
    }

    async fn attached_volumes(
        &self,
        region: &Region,
        instances: &[InstanceId],
    ) -> ProviderResult<Vec<Volume>> {
        let mut out = Vec::new();
        for chunk in instances.chunks(MAX_FILTER_VALUES) {
            self.pace(region, "DescribeVolumes", true, 1).await;
            let attached = filter(
                "attachment.instance-id",
                chunk.iter().map(ToString::to_string),
            );
            out.extend(self.describe_volumes(region, vec![attached]).await?);
        }
        Ok(out)
    }

    async fn volumes(
        &self,
        region: &Region,
        product: &Product,
        hosts: &[Hostname],
    ) -> ProviderResult<Vec<Volume>> {
        self.pace(region, "DescribeVolumes", true, 1).await;
        let mut filters = vec![filter(
            &format!("tag:{}", tags::PRODUCT),
            [product.to_string()],
        )];
        // EC2 takes at most 200 values in one filter: more hosts than that are
        // filtered here instead.
        let by_api = !hosts.is_empty() && hosts.len() <= MAX_FILTER_VALUES;
        if by_api {
            filters.push(filter(
                &format!("tag:{}", tags::HOST),
                hosts.iter().map(ToString::to_string),
            ));
        }
        let mut out = self.describe_volumes(region, filters).await?;
        if !by_api && !hosts.is_empty() {
            out.retain(|v| hosts.iter().any(|h| v.host() == Some(h.as_str())));
        }
        Ok(out)
    }

    async fn address(
        &self,
        region: &Region,
        product: &Product,
        host: &Hostname,
    ) -> ProviderResult<Option<Address>> {
        let found = self.tagged_addresses(region, product, Some(host)).await?;
        Ok(found.into_iter().next().map(|(_, a)| a))
    }
}

impl Ec2 {
    /// The product's Elastic IPs in a region (of `host` only, when given), each with the
    /// host it was allocated for.
    pub(crate) async fn tagged_addresses(
        &self,
        region: &Region,
        product: &Product,
        host: Option<&Hostname>,
    ) -> ProviderResult<Vec<(Option<String>, Address)>> {
        self.pace(region, "DescribeAddresses", true, 1).await;
        let mut req = self.client(region).describe_addresses().filters(filter(
            &format!("tag:{}", tags::PRODUCT),
            [product.to_string()],
        ));
        if let Some(h) = host {
            req = req.filters(filter(&format!("tag:{}", tags::HOST), [h.to_string()]));
        }
        let out = req.send().await.map_err(provider_error)?;
        Ok(out
            .addresses()
            .iter()
            .filter_map(|a| {
                let host = tag_map(a.tags()).remove(tags::HOST);
                let address = Address {
                    allocation: AllocationId::new(a.allocation_id()?),
                    ip: a.public_ip()?.to_owned(),
                    // Not associated: EC2 leaves the field out, moto sends "".
                    instance: a
                        .instance_id()
                        .filter(|i| !i.is_empty())
                        .map(InstanceId::from),
                };
                Some((host, address))
            })
            .collect())
    }
}

/// The SDK's retries turned off, for a call with no idempotency token
/// (AllocateAddress, CreateSnapshots, CopySnapshot): sent again after an answer lost
/// on the way back (a 5xx, a reset), it would make a second address or snapshot. The
/// caller looks for the first by its tags before it asks again.
pub(crate) fn sent_once() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
}

pub(crate) fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

impl Ec2 {
    /// Every page of one DescribeVolumes with `filters` (paced by the caller).
    async fn describe_volumes(
        &self,
        region: &Region,
        filters: Vec<aws_sdk_ec2::types::Filter>,
    ) -> ProviderResult<Vec<Volume>> {
        let mut pages = self
            .client(region)
            .describe_volumes()
            .set_filters(Some(filters))
            .max_results(500)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(provider_error)?;
            out.extend(
                page.volumes()
                    .iter()
                    .filter_map(|v| convert_volume(region, v)),
            );
        }
        Ok(out)
    }

    async fn launch_once(&self, spec: &LaunchSpec) -> ProviderResult<Instance> {
        let mut req = self
            .client(&spec.region)
            .run_instances()
            .image_id(&spec.image_id)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(&spec.client_token)
            .placement(
                Placement::builder()
                    .availability_zone(spec.zone.as_str())
                    .build(),
            )
            .tag_specifications(tag_spec(ResourceType::Instance, &spec.tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &spec.tags))
            // IMDSv2 unless the profile says otherwise: organisations deny launches
            // without it (`ec2:MetadataHttpTokens`), and accounts can enforce it.
            .metadata_options(
                aws_sdk_ec2::types::InstanceMetadataOptionsRequest::builder()
                    .http_endpoint(aws_sdk_ec2::types::InstanceMetadataEndpointState::Enabled)
                    .http_tokens(if spec.imds_tokens_required {
                        aws_sdk_ec2::types::HttpTokensState::Required
                    } else {
                        aws_sdk_ec2::types::HttpTokensState::Optional
                    })
                    .http_put_response_hop_limit(i32::from(spec.imds_hop_limit))
                    .build(),
            )
            .set_key_name(spec.key_pair.clone());
        // A subnet and group ids, never group names: names are only valid in a
        // default VPC. A public address other than the subnet's default needs the
        // primary network interface spelled out.
        let placed = &spec.placement;
        let groups = (!placed.group_ids.is_empty()).then(|| placed.group_ids.clone());
        req = match placed.public_ip {
            None => req
                .subnet_id(&placed.subnet_id)
                .set_security_group_ids(groups),
            Some(public) => req.network_interfaces(
                aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .subnet_id(&placed.subnet_id)
                    .set_groups(groups)
                    .associate_public_ip_address(public)
                    .delete_on_termination(true)
                    .build(),
            ),
        };
        if let Some(data) = &spec.user_data {
            req = req.user_data(aws_smithy_types::base64::encode(data));
        }
        let out = req.send().await.map_err(provider_error)?;
        out.instances()
            .iter()
            .find_map(|i| convert(&spec.region, i))
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::Other,
                    "RunInstances answered without an instance",
                )
            })
    }
}

#[async_trait]
impl Compute for Ec2 {
    async fn launch(&self, spec: &LaunchSpec) -> ProviderResult<Instance> {
        self.paced(&spec.region, "RunInstances", 1, || self.launch_once(spec))
            .await
    }
    async fn start(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.start_many(region, std::slice::from_ref(id)).await
    }

    async fn start_many(&self, region: &Region, ids: &[InstanceId]) -> ProviderResult<()> {
        self.paced(region, "StartInstances", ids.len(), || async {
            self.client(region)
                .start_instances()
                .set_instance_ids(Some(ids.iter().map(ToString::to_string).collect()))
                .send()
                .await
                .map(drop)
                .map_err(provider_error)
        })
        .await
    }

    async fn stop(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.stop_many(region, std::slice::from_ref(id)).await
    }

    async fn stop_many(&self, region: &Region, ids: &[InstanceId]) -> ProviderResult<()> {
        self.paced(region, "StopInstances", ids.len(), || async {
            self.client(region)
                .stop_instances()
                .set_instance_ids(Some(ids.iter().map(ToString::to_string).collect()))
                .send()
                .await
                .map(drop)
                .map_err(provider_error)
        })
        .await
    }

    async fn reboot(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.pace(region, "RebootInstances", true, 1).await;
        self.client(region)
            .reboot_instances()
            .instance_ids(id.as_str())
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }

    async fn terminate(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.pace(region, "TerminateInstances", true, 1).await;
        self.client(region)
            .terminate_instances()
            .instance_ids(id.as_str())
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }

    async fn create_volume(&self, r: &VolumeRequest) -> ProviderResult<Volume> {
        // Sent again when throttled: the ClientToken answers a volume that was made.
        let out = self
            .paced(&r.region, "CreateVolume", 1, || self.create_volume_once(r))
            .await?;
        Ok(Volume {
            id: VolumeId::new(out.volume_id().unwrap_or_default()),
            region: r.region.clone(),
            zone: Some(r.zone.clone()),
            size_gb: out.size().unwrap_or(r.size_gb as i32),
            volume_type: out.volume_type().map(|t| t.as_str().to_owned()),
            state: VolumeState::from_name(out.state().map(|s| s.as_str()).unwrap_or_default()),
            attached_to: None,
            attached_as: None,
            created: out.create_time().map(|t| t.secs()),
            tags: tag_map(out.tags()),
        })
    }

    async fn attach_volume(
        &self,
        region: &Region,
        volume: &VolumeId,
        instance: &InstanceId,
        device: &str,
    ) -> ProviderResult<()> {
        // Sent again when throttled: an attach that landed meanwhile fails as
        // attached, which the lifecycle counts as done where it wanted it.
        self.paced(region, "AttachVolume", 1, || async {
            self.client(region)
                .attach_volume()
                .volume_id(volume.as_str())
                .instance_id(instance.as_str())
                .device(device)
                .send()
                .await
                .map(drop)
                .map_err(provider_error)
        })
        .await
    }

    async fn create_snapshots(
        &self,
        region: &Region,
        instance: &InstanceId,
        volumes: &[VolumeId],
        exclude: &[VolumeId],
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Vec<cerveza_core::backup::Snapshot>> {
        self.snapshot_set(region, instance, volumes, exclude, tags)
            .await
    }

    async fn copy_snapshot(
        &self,
        to: &Region,
        source: &cerveza_core::backup::Snapshot,
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<cerveza_core::backup::Snapshot> {
        self.copy(to, source, tags).await
    }

    async fn detach_volume(
        &self,
        region: &Region,
        volume: &VolumeId,
        instance: &InstanceId,
    ) -> ProviderResult<()> {
        let sent = self
            .paced(region, "DetachVolume", 1, || async {
                self.client(region)
                    .detach_volume()
                    .volume_id(volume.as_str())
                    .instance_id(instance.as_str())
                    .send()
                    .await
                    .map(drop)
                    .map_err(provider_error)
            })
            .await;
        match sent {
            // Not attached (any more): what was wanted.
            Err(e) if e.has_code("IncorrectState") => Ok(()),
            other => other,
        }
    }

    async fn retag(
        &self,
        region: &Region,
        resource: &str,
        add: &BTreeMap<String, String>,
        remove: &[&str],
    ) -> ProviderResult<()> {
        if !add.is_empty() {
            let tags: Vec<Tag> = add
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            self.paced(region, "CreateTags", 1, || async {
                self.client(region)
                    .create_tags()
                    .resources(resource)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .map(drop)
                    .map_err(provider_error)
            })
            .await?;
        }
        if !remove.is_empty() {
            let tags: Vec<Tag> = remove
                .iter()
                .map(|k| Tag::builder().key(*k).build())
                .collect();
            self.paced(region, "DeleteTags", 1, || async {
                self.client(region)
                    .delete_tags()
                    .resources(resource)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .map(drop)
                    .map_err(provider_error)
            })
            .await?;
        }
        Ok(())
    }

    async fn delete_snapshot(&self, region: &Region, snapshot: &str) -> ProviderResult<()> {
        self.pace(region, "DeleteSnapshot", true, 1).await;
        match self
            .client(region)
            .delete_snapshot()
            .snapshot_id(snapshot)
            .send()
            .await
            .map_err(provider_error)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ProviderErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_volume(&self, region: &Region, volume: &VolumeId) -> ProviderResult<()> {
        self.pace(region, "DeleteVolume", true, 1).await;
        self.client(region)
            .delete_volume()
            .volume_id(volume.as_str())
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }

    async fn allocate_address(
        &self,
        region: &Region,
        product: &Product,
        host: &Hostname,
    ) -> ProviderResult<Address> {
        self.pace(region, "AllocateAddress", true, 1).await;
        let t = BTreeMap::from([
            (tags::NAME.to_owned(), host.to_string()),
            (tags::PRODUCT.to_owned(), product.to_string()),
            (tags::HOST.to_owned(), host.to_string()),
            (tags::EIP.to_owned(), "true".to_owned()),
        ]);
        // AllocateAddress has no idempotency token: a retry after a lost answer would
        // allocate a second address. It is tried once; the lifecycle looks the host's
        // address up by its tags before it tries again.
        let out = self
            .client(region)
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tag_spec(ResourceType::ElasticIp, &t))
            .customize()
            .config_override(sent_once())
            .send()
            .await
            .map_err(provider_error)?;
        match (out.allocation_id(), out.public_ip()) {
            (Some(a), Some(ip)) => Ok(Address {
                allocation: AllocationId::new(a),
                ip: ip.to_owned(),
                instance: None,
            }),
            _ => Err(ProviderError::new(
                ProviderErrorKind::Other,
                "AllocateAddress answered without an address",
            )),
        }
    }

    async fn associate_address(
        &self,
        region: &Region,
        allocation: &AllocationId,
        instance: &InstanceId,
    ) -> ProviderResult<()> {
        self.pace(region, "AssociateAddress", true, 1).await;
        self.client(region)
            .associate_address()
            .allocation_id(allocation.as_str())
            .instance_id(instance.as_str())
            .allow_reassociation(true)
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }

    async fn release_address(
        &self,
        region: &Region,
        allocation: &AllocationId,
    ) -> ProviderResult<()> {
        let out = self
            .client(region)
            .describe_addresses()
            .allocation_ids(allocation.as_str())
            .send()
            .await
            .map_err(provider_error)?;
        if let Some(assoc) = out.addresses().first().and_then(|a| a.association_id()) {
            self.client(region)
                .disassociate_address()
                .association_id(assoc)
                .send()
                .await
                .map_err(provider_error)?;
        }
        self.client(region)
            .release_address()
            .allocation_id(allocation.as_str())
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_an_answer_that_says_again_is_sent_again() {
        use cerveza_core::ports::{ProviderError, ProviderErrorKind::*};
        assert!(super::answered_again(&ProviderError::new(
            Throttled,
            "RequestLimitExceeded: slow down"
        )));
        assert!(super::answered_again(&ProviderError::new(
            Unavailable,
            "InternalError: oops"
        )));
        assert!(!super::answered_again(&ProviderError::new(
            Unavailable,
            "cannot reach the endpoint: timed out"
        )));
        assert!(!super::answered_again(&ProviderError::new(
            Capacity,
            "InsufficientInstanceCapacity: none"
        )));
    }

    use super::*;
    use crate::test_server::{Answer, Canned};

    fn instance_xml(id: &str, state: &str, host: &str) -> String {
        format!(
            "<item><instanceId>{id}</instanceId><imageId>ami-a6f504cf</imageId>\
             <instanceState><code>16</code><name>{state}</name></instanceState>\
             <privateIpAddress>10.0.0.5</privateIpAddress><instanceType>t3.micro</instanceType>\
             <launchTime>2026-11-27T10:00:00.000Z</launchTime>\
             <placement><availabilityZone>us-east-1b</availabilityZone></placement>\
             <groupSet><item><groupId>sg-1</groupId><groupName>web</groupName></item></groupSet>\
             <tagSet><item><key>cerveza:product</key><value>noc</value></item>\
             <item><key>cerveza:host</key><value>{host}</value></item></tagSet></item>"
        )
    }

    fn describe_xml(instances: &[String], next: Option<&str>) -> String {
        let next = next
            .map(|t| format!("<nextToken>{t}</nextToken>"))
            .unwrap_or_default();
        format!(
            "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId>\
             <instancesSet>{}</instancesSet></item></reservationSet>{next}</DescribeInstancesResponse>",
            instances.concat()
        )
    }

    fn region() -> Region {
        Region::parse("us-east-1").unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn instances_are_read_from_every_page_with_typed_ids_and_states() {
        let server = Canned::serve(vec![
            Answer::xml(
                200,
                &describe_xml(&[instance_xml("i-0a", "running", "web01")], Some("page2")),
            ),
            Answer::xml(
                200,
                &describe_xml(&[instance_xml("i-0b", "stopping", "web02")], None),
            ),
        ])
        .await;
        let ec2 = Ec2::new(server.sdk().await);
        let product = Product::parse("noc").unwrap_or_else(|e| panic!("{e}"));
        let found = ec2
            .instances(&region(), &InstanceFilter::product(&product))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-0a", "i-0b"]);
        assert_eq!(found[1].state, InstanceState::Stopping);
        assert_eq!(found[0].zone.as_ref().map(Zone::as_str), Some("us-east-1b"));
        assert_eq!(found[0].security_groups, ["web"]);
        assert_eq!(found[0].host(), Some("web01"));
        let asked = server.requests();
        assert_eq!(asked.len(), 2);
        assert!(
            asked[0].body.contains("Action=DescribeInstances"),
            "{asked:?}"
        );
        assert!(
            asked[0].body.contains("tag%3Acerveza%3Aproduct"),
            "{asked:?}"
        );
        assert!(asked[0].body.contains("instance-state-name"), "live only");
        assert!(asked[1].body.contains("NextToken=page2"), "{asked:?}");
    }

    #[tokio::test]
    async fn an_instance_ec2_does_not_know_yet_is_none_and_throttling_is_throttled() {
        let server = Canned::serve(vec![
            Answer::ec2_error(400, "InvalidInstanceID.NotFound"),
            Answer::ec2_error(503, "RequestLimitExceeded"),
        ])
        .await;
        let ec2 = Ec2::new(server.sdk().await);
        let id = InstanceId::new("i-0new");
        let first = ec2.instance(&region(), &id).await;
        assert!(matches!(first, Ok(None)), "{first:?}");
        let e = ec2.instance(&region(), &id).await.expect_err("throttled");
        assert_eq!(e.kind, ProviderErrorKind::Throttled);
        assert!(e.message.contains("RequestLimitExceeded"), "{}", e.message);
        assert!(server.requests()[0].body.contains("InstanceId.1=i-0new"));
    }

    #[tokio::test]
    async fn more_hosts_than_a_filter_takes_are_filtered_here() {
        let vol = |id: &str, host: &str| {
            format!(
                "<item><volumeId>{id}</volumeId><size>10</size><availabilityZone>us-east-1b</availabilityZone>\
                 <status>in-use</status><volumeType>gp3</volumeType>\
                 <attachmentSet><item><instanceId>i-0a</instanceId><device>/dev/sdf</device></item></attachmentSet>\
                 <tagSet><item><key>cerveza:product</key><value>noc</value></item>\
                 <item><key>cerveza:host</key><value>{host}</value></item></tagSet></item>"
            )
        };
        let body = format!(
            "<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId>\
             <volumeSet>{}{}</volumeSet></DescribeVolumesResponse>",
            vol("vol-1", "web001"),
            vol("vol-2", "other")
        );
        let server = Canned::serve(vec![Answer::xml(200, &body), Answer::xml(200, &body)]).await;
        let ec2 = Ec2::new(server.sdk().await);
        let product = Product::parse("noc").unwrap_or_else(|e| panic!("{e}"));
        let many: Vec<Hostname> = (1..=MAX_FILTER_VALUES + 1)
            .map(|i| Hostname::parse(&format!("web{i:03}")).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let found = ec2
            .volumes(&region(), &product, &many)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].id, "vol-1");
        assert_eq!(found[0].state, VolumeState::InUse);
        assert_eq!(
            found[0].attached_to.as_ref().map(InstanceId::as_str),
            Some("i-0a")
        );
        let asked = server.requests();
        assert!(
            !asked[0].body.contains("cerveza%3Ahost"),
            "no host filter: {asked:?}"
        );
        // A few hosts go in the filter.
        ec2.volumes(&region(), &product, &many[..2])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(server.requests()[1].body.contains("tag%3Acerveza%3Ahost"));
    }
}
