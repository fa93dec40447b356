//! Many hosts, one request: what the hosts of one command ask a region at about the
//! same time is gathered into one call.
//!
//! EC2 throttles per action (`DescribeInstances` 100 requests then 20 a second,
//! `StartInstances` 5 then 2 a second), so 500 hosts that each poll their own instance,
//! or each start their own, spend the buckets many times over. A [`Batcher`] keeps one
//! open batch per region: the first host to ask opens it and, after `window`, sends one
//! request for every key that joined meanwhile; the others wait for that answer.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::names::Region;
use crate::ports::{ProviderError, ProviderErrorKind, ProviderResult};
use crate::wait::Clock;

/// EC2 filters take at most 200 values; a fuller batch is sent as it is.
pub(crate) const MAX_BATCH: usize = 200;

type Shared<V> = Result<Arc<HashMap<String, V>>, (ProviderErrorKind, String)>;

struct Batch<V> {
    keys: Mutex<BTreeSet<String>>,
    answer: OnceCell<Shared<V>>,
}

/// One open batch per region; see the module.
pub(crate) struct Batcher<V> {
    window: Duration,
    open: Mutex<HashMap<Region, Arc<Batch<V>>>>,
    /// Requests sent (one per batch), for tests and progress.
    sent: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Clone + Send + Sync> Batcher<V> {
    /// A batcher that waits `window` for companions before sending.
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            open: Mutex::new(HashMap::new()),
            sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many batched requests were sent.
    #[cfg(test)]
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The answer for `key` from the region's next batch: `fetch` is called (by one
    /// of the waiting callers) with every key of the batch, and answers per key; a key
    /// it leaves out is `None`. A failed fetch fails every caller of that batch.
    pub(crate) async fn get<F, Fut>(
        &self,
        clock: &dyn Clock,
        region: &Region,
        key: &str,
        fetch: F,
    ) -> ProviderResult<Option<V>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = ProviderResult<HashMap<String, V>>>,
    {
        let batch = {
            let mut open = lock(&self.open);
            let batch = open
                .entry(region.clone())
                .or_insert_with(|| {
                    Arc::new(Batch {
                        keys: Mutex::new(BTreeSet::new()),
                        answer: OnceCell::new(),
                    })
                })
                .clone();
            let mut keys = lock(&batch.keys);
            keys.insert(key.to_owned());
            if keys.len() >= MAX_BATCH {
                // Full: whoever asks next opens a new one.
                open.remove(region);
            }
            drop(keys);
            batch
        };
        let answer = batch
            .answer
            .get_or_init(|| async {
                clock.sleep(self.window).await;
                {
                    let mut open = lock(&self.open);
                    if open.get(region).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                        open.remove(region);
                    }
                }
                // Closed: nobody joins any more.
                let keys: Vec<String> = lock(&batch.keys).iter().cloned().collect();
                self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                fetch(keys)
                    .await
                    .map(Arc::new)
                    .map_err(|e| (e.kind, e.message))
            })
            .await;
        match answer {
            Ok(map) => Ok(map.get(key).cloned()),
            Err((kind, message)) => Err(ProviderError::new(*kind, message.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::ManualClock;

    fn region() -> Region {
        Region::parse("us-east-1").unwrap()
    }

    #[tokio::test]
    async fn callers_within_the_window_share_one_request() {
        let clock = ManualClock::default();
        let r = region();
        let b: Batcher<usize> = Batcher::new(Duration::from_secs(1));
        let asked = Mutex::new(Vec::new());
        let fetch = |keys: Vec<String>| {
            asked.lock().unwrap().push(keys.clone());
            async move { Ok(keys.iter().map(|k| (k.clone(), k.len())).collect()) }
        };
        let (a, bb, c) = tokio::join!(
            b.get(&clock, &r, "i-1", fetch),
            b.get(&clock, &r, "i-22", fetch),
            b.get(&clock, &r, "i-333", fetch),
        );
        assert_eq!(
            (a.unwrap(), bb.unwrap(), c.unwrap()),
            (Some(3), Some(4), Some(5))
        );
        assert_eq!(b.sent(), 1);
        assert_eq!(asked.lock().unwrap().len(), 1);
        assert_eq!(asked.lock().unwrap()[0].len(), 3);
        // The batch closed: the next caller opens a new one.
        b.get(&clock, &r, "i-1", fetch).await.unwrap();
        assert_eq!(b.sent(), 2);
    }

    #[tokio::test]
    async fn a_missing_key_is_none_and_a_failure_reaches_every_caller() {
        let clock = ManualClock::default();
        let r = region();
        let b: Batcher<()> = Batcher::new(Duration::from_millis(10));
        let none = b
            .get(&clock, &r, "i-1", |_| async { Ok(HashMap::new()) })
            .await
            .unwrap();
        assert_eq!(none, None);
        let fail = |_| async {
            Err(ProviderError::new(
                ProviderErrorKind::Throttled,
                "RequestLimitExceeded",
            ))
        };
        let (x, y) = tokio::join!(
            b.get(&clock, &r, "i-1", fail),
            b.get(&clock, &r, "i-2", fail)
        );
        assert_eq!(x.unwrap_err().kind, ProviderErrorKind::Throttled);
        assert_eq!(y.unwrap_err().message, "RequestLimitExceeded");
    }

    #[tokio::test]
    async fn a_full_batch_is_sent_and_the_next_caller_opens_another() {
        let clock = ManualClock::default();
        let r = region();
        let b: Batcher<()> = Batcher::new(Duration::from_secs(1));
        let keys: Vec<String> = (0..MAX_BATCH + 1).map(|n| format!("i-{n}")).collect();
        let sizes = Mutex::new(Vec::new());
        let fetch = |k: Vec<String>| {
            sizes.lock().unwrap().push(k.len());
            async { Ok(HashMap::new()) }
        };
        futures::future::join_all(keys.iter().map(|k| b.get(&clock, &r, k, fetch))).await;
        let mut sizes = sizes.into_inner().unwrap();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![1, MAX_BATCH]);
    }
}
