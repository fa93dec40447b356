//! Releases, as in the paper: pushed once into a bucket in each region, so every host
//! fetches from its own region (fast, and no cross-region traffic at deploy time).
//!
//! Layout: bucket `<prefix>-<product>-<account>-<region>` (or a configured name with
//! `{region}`), object `releases/<name>/<file>`, with the file's SHA-256 as object
//! metadata (`sha256`) and an S3 checksum. Hosts fetch through presigned URLs, so they
//! need no credentials.
//!
//! Bucket names are global: anyone may own `cerveza-noc-us-east-1`. The account id in
//! the default name keeps names apart, and every call but the presigned fetch sends
//! `ExpectedBucketOwner`, so a bucket of that name owned by another account is refused
//! rather than written to (the fetch checks the file's SHA-256 on the host instead: a
//! presigned URL cannot make curl send the owner header).

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
    /// The bucket name, with `{product}`, `{account}` and `{region}` in it.
    template: String,
    /// The account the credentials belong to (`sts:GetCallerIdentity`, once).
    account: tokio::sync::OnceCell<String>,
    clients: Mutex<BTreeMap<Region, Client>>,
}

/// What S3 takes as a bucket name: 3-63 of `a-z0-9.-`, starting and ending with a
/// letter or digit, no `..`.
fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let edges = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !(3..=63).contains(&name.len()) {
        Some("S3 bucket names have 3 to 63 characters")
    } else if !ok_chars || !edges || name.contains("..") {
        Some("S3 bucket names are lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit")
    } else {
        None
    }
}

/// Why a bucket cannot be used: another account owns the name, or these credentials
/// may not use it (S3 does not say which).
fn not_ours(bucket: &str, account: &str, what: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Conflict,
        format!(
            "release bucket {bucket}: {what}; it belongs to another AWS account than {account} (bucket names are global), or these credentials may not use it. Name the buckets in the config: `[release] bucket = \"<name>-{{region}}\"`"
        ),
    )
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

/// The HTTP status of a service's answer.
fn status<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl Releases {
    /// Release buckets named `<prefix>-<product>-<account>-<region>`.
    pub fn new(base: SdkConfig, prefix: impl Into<String>) -> Self {
        let template = format!("{}-{{product}}-{{account}}-{{region}}", prefix.into());
        Self::named(base, template)
    }

    /// Release buckets named by `template`, in which `{region}` (required),
    /// `{product}` and `{account}` are replaced.
    pub fn named(base: SdkConfig, template: impl Into<String>) -> Self {
        Self {
            base,
            template: template.into(),
            account: tokio::sync::OnceCell::new(),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// The account the credentials belong to, asked once.
    async fn account(&self) -> ProviderResult<&str> {
        self.account
            .get_or_try_init(|| async {
                let sts = aws_sdk_sts::Client::new(&self.base);
                let me = sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(provider_error)?;
                me.account().map(str::to_owned).ok_or_else(|| {
                    ProviderError::new(
                        ProviderErrorKind::Other,
                        "sts:GetCallerIdentity answered without an account",
                    )
                })
            })
            .await
            .map(String::as_str)
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

    /// The bucket of a product in a region, and the account that must own it.
    pub async fn bucket(
        &self,
        product: &Product,
        region: &Region,
    ) -> ProviderResult<(String, String)> {
        let account = self.account().await?.to_owned();
        let name = self
            .template
            .replace("{product}", product.as_str())
            .replace("{account}", &account)
            .replace("{region}", region.as_str());
        if let Some(why) = bucket_name_problem(&name) {
            return Err(invalid(format!(
                "release bucket {name:?} (from {:?}): {why}; name the buckets in the config: `[release] bucket = \"<name>-{{region}}\"`",
                self.template
            )));
        }
        Ok((name, account))
    }

    /// Makes the bucket when it does not exist; refuses one another account owns.
    async fn ensure_bucket(
        &self,
        client: &Client,
        bucket: &str,
        account: &str,
        region: &Region,
    ) -> ProviderResult<()> {
        match client
            .head_bucket()
            .bucket(bucket)
            .expected_bucket_owner(account)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) if status(&e) == Some(403) => {
                return Err(not_ours(
                    bucket,
                    account,
                    "S3 refused it to this account (403)",
                ))
            }
            Err(e) => return Err(provider_error(e)),
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
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_exists()) =>
            {
                Err(not_ours(
                    bucket,
                    account,
                    "the name is taken (BucketAlreadyExists)",
                ))
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
        let (bucket, account) = self.bucket(product, region).await?;
        self.ensure_bucket(&client, &bucket, &account, region)
            .await?;
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
                .expected_bucket_owner(&account)
                .key(&key)
                .body(body)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .metadata("sha256", sha256)
                .send()
                .await
                .map_err(provider_error)?;
        } else {
            self.push_multipart(&client, (&bucket, &account), &key, path, sha256)
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
        (bucket, account): (&str, &str),
        key: &str,
        path: &Path,
        sha256: &str,
    ) -> ProviderResult<()> {
        use std::io::Read;
        let upload = client
            .create_multipart_upload()
            .bucket(bucket)
            .expected_bucket_owner(account)
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
                    .expected_bucket_owner(account)
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
                .expected_bucket_owner(account)
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
                .expected_bucket_owner(account)
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
        let (bucket, account) = self.bucket(product, region).await?;
        let mut pages = client
            .list_objects_v2()
            .bucket(&bucket)
            .expected_bucket_owner(&account)
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
                Err(e) if status(&e) == Some(403) => {
                    return Err(not_ours(
                        &bucket,
                        &account,
                        "S3 refused it to this account (403)",
                    ))
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
                    .expected_bucket_owner(&account)
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
        let (bucket, _) = self.bucket(product, region).await?;
        let req = client
            .get_object()
            .bucket(bucket)
            .key(format!("releases/{name}/{file}"))
            .presigned(config)
            .await
            .map_err(provider_error)?;
        Ok(req.uri().to_string())
    }
}
