//! Every AWS SDK call Cerveza makes. This is the only crate that depends on the SDK
//! (the slow part of the build), behind the traits of [`cerveza_core::ports`].
//!
//! * [`sdk_config`]: the one place credentials, region, endpoint, timeouts and retries
//!   are set up. The standard chain finds credentials; `endpoint_url` (or
//!   `AWS_ENDPOINT_URL`) points at an emulator such as moto. Every request goes through
//!   [`Transport`], which keeps each region under a request rate and counts requests.
//! * [`Ec2`]: instances in every region, one client per region.
//! * [`DynamoRegistry`]: the host registry, one DynamoDB table in a home region.
//! * [`Route53Dns`]: host names in Route53 hosted zones, the alternative to LDAP.

mod audit;
mod denial;
mod ec2;
mod errors;
mod network;
mod offering;
mod registry;
mod releases;
mod route53;
mod snapshots;
#[cfg(test)]
mod test_server;
mod transport;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

pub use audit::TableResilience;
pub use ec2::Ec2;
pub use registry::DynamoRegistry;
pub use releases::{sha256_file, ReleaseFile, Releases};
pub use route53::Route53Dns;
pub use transport::{pacer, pacing_file, stats, RateLimiter, RequestCounts, Stats, Transport};

/// How to reach AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// Region for calls that are not region-specific (the registry's home region).
    pub home_region: String,
    /// Endpoint override for every service (moto); `AWS_ENDPOINT_URL` also works.
    pub endpoint_url: Option<String>,
    /// Attempts per call, first included (the SDK's standard retry mode retries
    /// throttling, 5xx and connection errors with jittered backoff).
    pub max_attempts: u32,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Limit for one attempt of a call.
    pub attempt_timeout: Duration,
    /// Limit for a whole call, retries included.
    pub operation_timeout: Duration,
    /// Most requests per second to one region, all services and retries included, on
    /// top of the per-action buckets that mirror EC2's (0: no such cap, the default).
    pub max_request_rate: u32,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            home_region: "us-east-1".into(),
            endpoint_url: None,
            max_attempts: 4,
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(20),
            operation_timeout: Duration::from_secs(60),
            max_request_rate: 0,
        }
    }
}

/// The SDK configuration every client is built from.
pub async fn sdk_config(opts: &AwsOptions) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(opts.connect_timeout)
        .operation_attempt_timeout(opts.attempt_timeout)
        .operation_timeout(opts.operation_timeout)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(opts.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(10));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(opts.home_region.clone()))
        .timeout_config(timeouts)
        .retry_config(retries)
        .http_client(Transport::new(opts.max_request_rate));
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
