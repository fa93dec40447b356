//! The HTTP client under every SDK call: the SDK's own HTTPS client, wrapped to keep
//! each region under a request rate and to count what was sent.
//!
//! AWS throttles per account and region (EC2's `RequestLimitExceeded`); a fleet start of
//! hundreds of hosts would otherwise burst into that limit and spend its retries there.
//! Every attempt, retries included, waits for its slot here, so a region never sees more
//! than the configured rate from one cerveza process. The SDK's standard retry mode
//! backs off with jitter on top of this when AWS throttles anyway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// EC2's throttling, mirrored on the client: a token bucket per region and action with
/// the sizes and refill rates EC2 publishes ("Request throttling for the Amazon EC2 API"),
/// plus the resource buckets that count instances. A call waits here for its tokens
/// *before* it is sent (so the wait is not part of its attempt timeout) and then bursts
/// as far as the bucket allows; `RequestLimitExceeded` is left for what others in the
/// account spend. Route53 (5 requests a second per account) is paced the same way.
#[derive(Debug, Default)]
pub struct Pacer {
    schedules: Mutex<HashMap<(String, &'static str, &'static str), Instant>>,
}

/// A bucket: its name, size (tokens) and refill (tokens a second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// What it is called (the action, or the category it shares).
    pub name: &'static str,
    /// Tokens when full.
    pub size: f64,
    /// Tokens added a second.
    pub refill: f64,
}

const fn bucket(name: &'static str, size: f64, refill: f64) -> Bucket {
    Bucket { name, size, refill }
}

/// The EC2 request bucket of `action`; `paged` when it has a filter or `MaxResults`
/// (an unfiltered, unpaginated describe spends a smaller bucket).
pub fn ec2_request_bucket(action: &'static str, paged: bool) -> Bucket {
    match action {
        "RunInstances" | "StartInstances" => bucket(action, 5.0, 2.0),
        "TerminateInstances" | "CreateVolume" | "DeleteVolume" => bucket(action, 100.0, 5.0),
        "CreateTags" | "DeleteTags" => bucket(action, 100.0, 10.0),
        "DescribeInstances" | "DescribeVolumes" if !paged => bucket(action, 50.0, 10.0),
        // EC2's non-mutating actions: Describe*, List*, Search*, Get*.
        a if ["Describe", "List", "Search", "Get"]
            .iter()
            .any(|p| a.starts_with(p)) =>
        {
            bucket(action, 100.0, 20.0)
        }
        _ => bucket(action, 50.0, 5.0),
    }
}

/// The EC2 resource bucket of `action` (tokens per instance), if it has one.
pub fn ec2_resource_bucket(action: &'static str) -> Option<Bucket> {
    match action {
        "RunInstances" => Some(bucket("RunInstances/instances", 1000.0, 2.0)),
        "StartInstances" => Some(bucket("StartInstances/instances", 1000.0, 2.0)),
        "StopInstances" => Some(bucket("StopInstances/instances", 1000.0, 20.0)),
        "TerminateInstances" => Some(bucket("TerminateInstances/instances", 1000.0, 20.0)),
        _ => None,
    }
}

/// The share of a bucket's refill rate the client plans to use.
pub const HEADROOM: f64 = 0.9;

/// The share of a bucket's size the client keeps unspent in a burst.
pub const BURST_SLACK: f64 = 0.05;

/// Route53: five requests a second per account, every action together.
pub const ROUTE53: Bucket = bucket("route53", 5.0, 5.0);

impl Pacer {
    /// When `cost` tokens of `b` (in `scope`: a region, or "global") are there: the
    /// time is reserved at once, so callers are served in the order they asked.
    fn reserve(&self, scope: &str, service: &'static str, b: Bucket, cost: u32) -> Instant {
        // A little under EC2's figures: the client's bucket and EC2's do not start at
        // the same instant, and requests take a while to arrive.
        let interval = Duration::from_secs_f64(1.0 / (b.refill * HEADROOM));
        // And a few tokens short of a full bucket: requests released together after a
        // stall (a loaded machine fires late timers at once) arrive together, and the
        // refill headroom alone is too little just after the burst (a full run's pacing
        // test once had one of 150 GetConsoleOutput throttled there).
        let burst = interval.mul_f64((b.size - 1.0 - (b.size * BURST_SLACK).floor()).max(1.0));
        let now = Instant::now();
        let mut s = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
        // `full` is when the bucket would be full again with what is spent so far.
        let full = s.entry((scope.to_owned(), service, b.name)).or_insert(now);
        let after = (*full).max(now) + interval * cost.max(1);
        *full = after;
        after.checked_sub(burst).map_or(now, |t| t.max(now))
    }

    /// Waits until one request of `request` (and `cost` tokens of `resource`) may go.
    pub async fn wait(
        &self,
        scope: &str,
        service: &'static str,
        request: Bucket,
        resource: Option<Bucket>,
        cost: u32,
    ) {
        let mut at = self.reserve(scope, service, request, 1);
        if let Some(r) = resource {
            at = at.max(self.reserve(scope, service, r, cost));
        }
        tokio::time::sleep_until(at).await;
    }
}

impl Pacer {
    /// What is spent of each bucket, as the times the buckets are full again (seconds
    /// since the epoch); buckets already full are left out.
    fn spent(&self) -> HashMap<String, f64> {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let s = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
        s.iter()
            .filter(|(_, full)| **full > now)
            .filter_map(|((scope, service, name), full)| {
                let at = wall.checked_add(*full - now)?;
                let secs = at.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
                Some((format!("{scope}|{service}|{name}"), secs))
            })
            .collect()
    }

    /// Takes what an earlier command spent of the buckets (see [`Self::persist`]): a
    /// command that follows another starts where EC2's buckets are, not full.
    pub fn restore(&self, path: &Path) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let Ok(saved) = serde_json::from_str::<HashMap<String, f64>>(&text) else {
            return;
        };
        let (now, wall) = (Instant::now(), SystemTime::now());
        let wall = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut s = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
        for (key, at) in saved {
            let mut parts = key.splitn(3, '|');
            let (Some(scope), Some(service), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // Only the buckets this build knows (their names are 'static).
            let Some(service) = KNOWN_SERVICES.iter().find(|k| **k == service) else {
                continue;
            };
            let Some(name) = bucket_name(name) else {
                continue;
            };
            let ahead = at - wall;
            if !(0.0..=3600.0).contains(&ahead) {
                continue;
            }
            let full = now + Duration::from_secs_f64(ahead);
            let slot = s.entry((scope.to_owned(), service, name)).or_insert(full);
            *slot = (*slot).max(full);
        }
    }

    /// Saves what this command spent of the buckets, merged with what the file holds
    /// (another command may have run meanwhile); written whole, then renamed.
    pub fn persist(&self, path: &Path) -> std::io::Result<()> {
        let spent = self.spent();
        if spent.is_empty() {
            // Nothing spent (or all refilled): what the file says still holds.
            return Ok(());
        }
        let mut all: HashMap<String, f64> = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        all.retain(|_, at| *at > wall);
        for (k, at) in spent {
            let slot = all.entry(k).or_insert(at);
            *slot = slot.max(at);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&all).unwrap_or_default())?;
        std::fs::rename(&tmp, path)
    }
}

const KNOWN_SERVICES: [&str; 2] = ["ec2", "route53"];

/// A bucket name read back from the file, as the `'static` text the pacer keys on: names
/// are EC2 action names and a few others, so each is kept once for the process.
fn bucket_name(name: &str) -> Option<&'static str> {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/')
    {
        return None;
    }
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return Some(n);
    }
    if names.len() >= 256 {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    Some(leaked)
}

/// Where the buckets spent with these credentials against this endpoint are kept
/// between commands: one file per identity (a hash of the access key id or profile,
/// and the endpoint; the key itself is never written) under `dir`.
pub fn pacing_file(dir: &Path, endpoint: Option<&str>) -> std::path::PathBuf {
    use crate::errors::{env, CredentialSource};
    use sha2::{Digest, Sha256};
    let who = match CredentialSource::current() {
        CredentialSource::Environment(key) => format!("key:{key}"),
        CredentialSource::Profile(p) => format!("profile:{p}"),
        CredentialSource::Default => "default".into(),
    };
    let endpoint = endpoint
        .map(str::to_owned)
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{who}\0{endpoint}").as_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("pacing-{name}.json"))
}

/// The process's pacer (one cerveza command is one process).
pub fn pacer() -> &'static Pacer {
    static PACER: std::sync::OnceLock<Pacer> = std::sync::OnceLock::new();
    PACER.get_or_init(Pacer::default)
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
            // No other waiting here: the SDK counts time spent in the connector against
            // the attempt (and its stalled-stream check), so EC2's buckets are waited
            // for by the adapters before a call is sent, and retries keep the SDK's
            // own jittered backoff.
            let retry = attempt_of(&request) > 1;
            limiter.acquire(&region_of(&request)).await;
            let s = stats();
            s.requests.fetch_add(1, Ordering::Relaxed);
            if retry {
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

    #[tokio::test]
    async fn a_command_starts_where_the_last_one_left_the_buckets() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("pacing.json");
        let run = ec2_request_bucket("RunInstances", true);
        let first = Pacer::default();
        for _ in 0..5 {
            first.reserve("us-east-1", "ec2", run, 1);
        }
        first.persist(&file).unwrap_or_else(|e| panic!("{e}"));
        // A second command that knows nothing waits for nothing; one that restored the
        // file waits, as EC2's bucket is still spent.
        let fresh = Pacer::default();
        assert!(fresh.reserve("us-east-1", "ec2", run, 1) <= Instant::now());
        let second = Pacer::default();
        second.restore(&file);
        assert!(
            second.reserve("us-east-1", "ec2", run, 1)
                > Instant::now() + Duration::from_millis(300),
            "{:?}",
            std::fs::read_to_string(&file)
        );
        // Other regions and actions are not held back.
        assert!(second.reserve("eu-west-1", "ec2", run, 1) <= Instant::now());
        // A broken or hostile file is ignored.
        std::fs::write(&file, "{\"us-east-1|ec2|Run Instances\": 1e300, \"x\": 1}")
            .unwrap_or_else(|e| panic!("{e}"));
        let third = Pacer::default();
        third.restore(&file);
        assert!(third.reserve("us-east-1", "ec2", run, 1) <= Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_bursts_a_bucket_then_follows_its_refill() {
        let pacer = Pacer::default();
        let run = ec2_request_bucket("RunInstances", false);
        let resource = ec2_resource_bucket("RunInstances");
        let start = Instant::now();
        // EC2 allows 5 at once, then 2 a second; the client plans for one less, at 90 %.
        for _ in 0..4 {
            pacer.wait("us-east-1", "ec2", run, resource, 1).await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a full bucket goes at once"
        );
        for _ in 0..9 {
            pacer.wait("us-east-1", "ec2", run, None, 1).await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((took - 9.0 / 1.8).abs() < 0.01, "then 1.8 a second: {took}");
        // Other actions and regions have their own buckets.
        let t = Instant::now();
        pacer.wait("eu-west-1", "ec2", run, None, 1).await;
        let describe = ec2_request_bucket("DescribeInstances", true);
        pacer.wait("us-east-1", "ec2", describe, None, 1).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
        // A resource bucket counts instances: 949 at once (5 % of it kept) empties it.
        let stop = ec2_request_bucket("StopInstances", false);
        let stops = ec2_resource_bucket("StopInstances");
        let t = Instant::now();
        pacer.wait("ap-southeast-1", "ec2", stop, stops, 949).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
        pacer.wait("ap-southeast-1", "ec2", stop, stops, 18).await;
        let took = t.elapsed().as_secs_f64();
        assert!((took - 1.0).abs() < 0.01, "18 more at 18 a second: {took}");
    }

    #[test]
    fn unpaged_describes_spend_the_smaller_bucket() {
        assert_eq!(ec2_request_bucket("DescribeInstances", false).size, 50.0);
        assert_eq!(ec2_request_bucket("DescribeInstances", true).size, 100.0);
        assert_eq!(ec2_request_bucket("AttachVolume", false).refill, 5.0);
        // Get* is non-mutating, as Describe* is (GetConsoleOutput for host keys).
        assert_eq!(ec2_request_bucket("GetConsoleOutput", false).refill, 20.0);
        assert!(ec2_resource_bucket("AttachVolume").is_none());
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
