//! The HTTP client under every SDK call: the SDK's own HTTPS client, wrapped to keep
//! each region under a request rate and to count what was sent.
//!
//! AWS throttles per account and region (EC2's `RequestLimitExceeded`); a fleet start of
//! hundreds of hosts would otherwise burst into that limit and spend its retries there.
//! Every attempt, retries included, waits for its slot here, so a region never sees more
//! than the configured rate from one cerveza process. The SDK's standard retry mode
//! backs off with jitter on top of this when AWS throttles anyway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use tokio::time::Instant;

/// Requests sent by this process: every attempt, retries included.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Of those, attempts after the first of a call.
    pub retries: u64,
    /// Answers that were throttling (429, 503), server errors (5xx) or no answer at all.
    pub failed: u64,
}

impl Stats {
    /// The counts so far.
    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// The process's request counts (one cerveza command is one process).
pub fn stats() -> &'static Stats {
    static STATS: Stats = Stats {
        requests: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    &STATS
}

/// Spaces requests `1/rate` apart per region: never more than `rate` in any second.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// A limiter of `per_second` requests per region; 0 means no limit.
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the next free slot of `region`.
    pub async fn acquire(&self, region: &str) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let entry = next.entry(region.to_owned()).or_insert(now);
            let slot = (*entry).max(now);
            *entry = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// The region a signed request is for, from its SigV4 credential scope
/// (`Credential=AKID/20260101/eu-west-1/ec2/aws4_request`); the key is never read.
fn region_of(req: &HttpRequest) -> String {
    req.headers()
        .get("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("")
        .to_owned()
}

/// The attempt number the SDK put in `amz-sdk-request: attempt=2; max=4`.
fn attempt_of(req: &HttpRequest) -> u32 {
    req.headers()
        .get("amz-sdk-request")
        .and_then(|h| h.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The SDK's HTTPS client behind a [`RateLimiter`], counting into [`stats`].
#[derive(Debug, Clone)]
pub struct Transport {
    inner: SharedHttpClient,
    limiter: Arc<RateLimiter>,
}

impl Transport {
    /// The SDK's default HTTPS client (rustls), limited to `per_second` per region.
    pub fn new(per_second: u32) -> Self {
        Self {
            inner: aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .build_https(),
            limiter: Arc::new(RateLimiter::new(per_second)),
        }
    }
}

impl HttpClient for Transport {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            inner: self.inner.http_connector(settings, components),
            limiter: self.limiter.clone(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    inner: SharedHttpConnector,
    limiter: Arc<RateLimiter>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let limiter = self.limiter.clone();
        HttpConnectorFuture::new(async move {
            limiter.acquire(&region_of(&request)).await;
            let s = stats();
            s.requests.fetch_add(1, Ordering::Relaxed);
            if attempt_of(&request) > 1 {
                s.retries.fetch_add(1, Ordering::Relaxed);
            }
            let answer = inner.call(request).await;
            let failed = match &answer {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    code == 429 || code >= 500
                }
                Err(_) => true,
            };
            if failed {
                s.failed.fetch_add(1, Ordering::Relaxed);
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_region_gets_at_most_its_rate() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        for _ in 0..21 {
            limiter.acquire("us-east-1").await;
        }
        // 21 requests at 10/s: the 21st waits for t = 2 s.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // Another region has its own slots.
        let t = Instant::now();
        limiter.acquire("eu-west-1").await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire("us-east-1").await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn region_and_attempt_come_from_the_signed_headers() {
        let mut req = HttpRequest::empty();
        req.headers_mut().insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=abc",
        );
        req.headers_mut()
            .insert("amz-sdk-request", "attempt=3; max=4");
        assert_eq!(region_of(&req), "eu-west-1");
        assert_eq!(attempt_of(&req), 3);
        assert_eq!(region_of(&HttpRequest::empty()), "");
        assert_eq!(attempt_of(&HttpRequest::empty()), 1);
    }
}
