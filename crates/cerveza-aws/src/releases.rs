//! Releases, as in the paper: pushed once into a bucket in each region, so every host
//! fetches from its own region (fast, and no cross-region traffic at deploy time).
//!
//! Layout: bucket `<prefix>-<product>-<region>`, object `releases/<name>/<file>`, with the
//! file's SHA-256 as object metadata (`sha256`) and an S3 checksum. Hosts fetch through
//! presigned URLs, so they need no credentials.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration,
};
use aws_sdk_s3::Client;
use cerveza_core::names::{Product, Region};
use cerveza_core::ports::{ProviderError, ProviderErrorKind, ProviderResult};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::errors::provider_error;

/// Files above this size are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
/// Size of each part.
const PART_SIZE: usize = 16 * 1024 * 1024;

/// One released file in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseFile {
    /// Release name.
    pub name: String,
    /// File name.
    pub file: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// The region of the bucket.
    pub region: Region,
}

/// The per-region release buckets of a product.
pub struct Releases {
    base: SdkConfig,
    prefix: String,
    clients: Mutex<BTreeMap<Region, Client>>,
}

fn invalid(msg: String) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Invalid, msg)
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Releases {
    /// Release buckets named `<prefix>-<product>-<region>`.
    pub fn new(base: SdkConfig, prefix: impl Into<String>) -> Self {
        Self {
            base,
            prefix: prefix.into(),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    async fn client(&self, region: &Region) -> Client {
        let mut clients = self.clients.lock().await;
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let conf = aws_sdk_s3::config::Builder::from(&self.base)
                    .region(aws_sdk_s3::config::Region::new(region.to_string()))
                    .force_path_style(true)
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }

    /// The bucket of a product in a region.
    pub fn bucket(&self, product: &Product, region: &Region) -> String {
        format!("{}-{product}-{region}", self.prefix)
    }

    async fn ensure_bucket(
        &self,
        client: &Client,
        bucket: &str,
        region: &Region,
    ) -> ProviderResult<()> {
        if client.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        let mut req = client.create_bucket().bucket(bucket);
        if region.as_str() != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(provider_error(e)),
        }
    }

    /// Uploads `path` as release `name` into the bucket of `region` (created when
    /// missing), with its SHA-256.
    pub async fn push(
        &self,
        product: &Product,
        region: &Region,
        name: &str,
        path: &Path,
        sha256: &str,
    ) -> ProviderResult<ReleaseFile> {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .ok_or_else(|| invalid(format!("{} has no file name", path.display())))?;
        let client = self.client(region).await;
        let bucket = self.bucket(product, region);
        self.ensure_bucket(&client, &bucket, region).await?;
        let key = format!("releases/{name}/{file}");
        let size = std::fs::metadata(path)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?
            .len();
        if size <= MULTIPART_THRESHOLD {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
            client
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .metadata("sha256", sha256)
                .send()
                .await
                .map_err(provider_error)?;
        } else {
            self.push_multipart(&client, &bucket, &key, path, sha256)
                .await?;
        }
        Ok(ReleaseFile {
            name: name.to_owned(),
            file,
            size: size as i64,
            sha256: sha256.to_owned(),
            region: region.clone(),
        })
    }

    async fn push_multipart(
        &self,
        client: &Client,
        bucket: &str,
        key: &str,
        path: &Path,
        sha256: &str,
    ) -> ProviderResult<()> {
        use std::io::Read;
        let upload = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .metadata("sha256", sha256)
            .send()
            .await
            .map_err(provider_error)?;
        let id = upload.upload_id().unwrap_or_default().to_owned();
        let result = async {
            let mut f = std::fs::File::open(path)
                .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
            let mut parts = Vec::new();
            for number in 1.. {
                let mut buf = vec![0u8; PART_SIZE];
                let mut filled = 0;
                while filled < PART_SIZE {
                    let n = f
                        .read(&mut buf[filled..])
                        .map_err(|e| invalid(e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                let part = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(number)
                    .body(ByteStream::from(buf))
                    .send()
                    .await
                    .map_err(provider_error)?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(provider_error)
        }
        .await;
        if result.is_err() {
            // Leave no half upload behind.
            let _ = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .send()
                .await;
        }
        result.map(drop)
    }

    /// The released files in `region` (a missing bucket has none).
    pub async fn list(
        &self,
        product: &Product,
        region: &Region,
    ) -> ProviderResult<Vec<ReleaseFile>> {
        let client = self.client(region).await;
        let bucket = self.bucket(product, region);
        let mut pages = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("releases/")
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) => {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(provider_error(e)),
            };
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let mut it = key.splitn(3, '/').skip(1);
                let (Some(name), Some(file)) = (it.next(), it.next()) else {
                    continue;
                };
                let head = client
                    .head_object()
                    .bucket(&bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(provider_error)?;
                let sha256 = head
                    .metadata()
                    .and_then(|m| m.get("sha256"))
                    .cloned()
                    .unwrap_or_default();
                out.push(ReleaseFile {
                    name: name.into(),
                    file: file.into(),
                    size: o.size().unwrap_or(0),
                    sha256,
                    region: region.clone(),
                });
            }
        }
        Ok(out)
    }

    /// A URL that fetches one released file for `valid_for`, without credentials.
    pub async fn presigned_url(
        &self,
        product: &Product,
        region: &Region,
        name: &str,
        file: &str,
        valid_for: Duration,
    ) -> ProviderResult<String> {
        let client = self.client(region).await;
        let config = PresigningConfig::expires_in(valid_for).map_err(|e| invalid(e.to_string()))?;
        let req = client
            .get_object()
            .bucket(self.bucket(product, region))
            .key(format!("releases/{name}/{file}"))
            .presigned(config)
            .await
            .map_err(provider_error)?;
        Ok(req.uri().to_string())
    }
}
