//! EC2: instances and zones in every region.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ec2::types::{Filter, InstanceType, Placement, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;
use cerveza_core::model::{Instance, InstanceFilter, InstanceState, LaunchSpec};
use cerveza_core::names::{Region, Zone};
use cerveza_core::ports::{Compute, ComputeRead, ProviderError, ProviderErrorKind, ProviderResult};
use cerveza_core::tags;

use crate::errors::provider_error;

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

    fn client(&self, region: &Region) -> Client {
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

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

fn convert(region: &Region, i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let tags: BTreeMap<String, String> = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect();
    Some(Instance {
        id: i.instance_id()?.to_owned(),
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
    })
}

const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

#[async_trait]
impl ComputeRead for Ec2 {
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

    async fn instance(&self, region: &Region, id: &str) -> ProviderResult<Option<Instance>> {
        let res = self
            .client(region)
            .describe_instances()
            .instance_ids(id)
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
}

fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

#[async_trait]
impl Compute for Ec2 {
    async fn launch(&self, spec: &LaunchSpec) -> ProviderResult<Instance> {
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
            .set_key_name(spec.key_pair.clone());
        if !spec.security_groups.is_empty() {
            req = req.set_security_groups(Some(spec.security_groups.clone()));
        }
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

    async fn start(&self, region: &Region, id: &str) -> ProviderResult<()> {
        self.client(region)
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }

    async fn stop(&self, region: &Region, id: &str) -> ProviderResult<()> {
        self.client(region)
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }

    async fn reboot(&self, region: &Region, id: &str) -> ProviderResult<()> {
        self.client(region)
            .reboot_instances()
            .instance_ids(id)
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }

    async fn terminate(&self, region: &Region, id: &str) -> ProviderResult<()> {
        self.client(region)
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map(drop)
            .map_err(provider_error)
    }
}
