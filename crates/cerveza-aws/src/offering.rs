//! What a region offers a launch (see `cerveza_core::offering`): the image
//! (DescribeImages), the instance type's architectures (DescribeInstanceTypes) and the
//! zones that offer it (DescribeInstanceTypeOfferings), read at once.

use cerveza_core::names::{Region, Zone};
use cerveza_core::offering::{Image, Offering};
use cerveza_core::ports::ProviderResult;

use crate::ec2::{filter, Ec2};
use crate::errors::provider_error;

impl Ec2 {
    pub(crate) async fn read_offering(
        &self,
        region: &Region,
        image: Option<&str>,
        instance_type: &str,
    ) -> ProviderResult<Offering> {
        let (image, architectures, zones) = futures::try_join!(
            async {
                match image {
                    Some(id) => self.image(region, id).await,
                    None => Ok(None),
                }
            },
            self.architectures(region, instance_type),
            self.offered_zones(region, instance_type),
        )?;
        Ok(Offering {
            image,
            architectures,
            zones,
        })
    }

    async fn image(&self, region: &Region, id: &str) -> ProviderResult<Option<Image>> {
        self.pace(region, "DescribeImages", false, 1).await;
        let out = match self
            .client(region)
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .map_err(provider_error)
        {
            Ok(out) => out,
            // An id EC2 does not know here (or one this account may not launch).
            Err(e)
                if e.has_code("InvalidAMIID.NotFound")
                    || e.has_code("InvalidAMIID.Unavailable") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        Ok(out.images().first().map(|i| Image {
            id: i.image_id().unwrap_or(id).to_owned(),
            name: i.name().unwrap_or_default().to_owned(),
            architecture: i
                .architecture()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            deprecated_at: i.deprecation_time().and_then(|t| {
                aws_smithy_types::DateTime::from_str(
                    t,
                    aws_smithy_types::date_time::Format::DateTime,
                )
                .ok()
                .map(|d| d.secs())
            }),
        }))
    }

    async fn architectures(&self, region: &Region, itype: &str) -> ProviderResult<Vec<String>> {
        self.pace(region, "DescribeInstanceTypes", false, 1).await;
        let out = match self
            .client(region)
            .describe_instance_types()
            .instance_types(aws_sdk_ec2::types::InstanceType::from(itype))
            .send()
            .await
            .map_err(provider_error)
        {
            Ok(out) => out,
            Err(e) if e.has_code("InvalidInstanceType") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(out
            .instance_types()
            .iter()
            .flat_map(|t| {
                t.processor_info()
                    .map(|p| p.supported_architectures().to_vec())
                    .unwrap_or_default()
            })
            .map(|a| a.as_str().to_owned())
            .collect())
    }

    async fn offered_zones(&self, region: &Region, itype: &str) -> ProviderResult<Vec<Zone>> {
        self.pace(region, "DescribeInstanceTypeOfferings", true, 1)
            .await;
        let mut pages = self
            .client(region)
            .describe_instance_type_offerings()
            .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
            .filters(filter("instance-type", [itype.to_owned()]))
            .into_paginator()
            .send();
        let mut zones = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(provider_error)?;
            zones.extend(
                page.instance_type_offerings()
                    .iter()
                    .filter_map(|o| Zone::parse(o.location()?).ok()),
            );
        }
        zones.sort();
        zones.dedup();
        Ok(zones)
    }
}
