//! Waiting: one polling loop with jittered exponential backoff, on a [`Clock`] that
//! tests replace, so a ten-minute wait is checked in microseconds.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

/// Time as the workflows see it.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed origin (monotonic).
    fn now(&self) -> Duration;
    /// Waits for `d`.
    async fn sleep(&self, d: Duration);
}

/// The real clock (tokio's timer).
pub struct SystemClock;

static ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Duration {
        ORIGIN.get_or_init(tokio::time::Instant::now).elapsed()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

#[cfg(any(test, feature = "test-hooks"))]
/// A clock that only moves when slept on: each sleep advances it at once. For tests
/// of timeouts and backoff.
#[derive(Default)]
pub struct ManualClock {
    now: std::sync::Mutex<Duration>,
    sleeps: std::sync::Mutex<Vec<Duration>>,
}

#[cfg(any(test, feature = "test-hooks"))]
impl ManualClock {
    /// Moves the clock forward without anyone sleeping.
    pub fn advance(&self, d: Duration) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) += d;
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(any(test, feature = "test-hooks"))]
#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn sleep(&self, d: Duration) {
        self.advance(d);
        self.sleeps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d);
        // Let other tasks run, as a real sleep would.
        tokio::task::yield_now().await;
    }
}

/// How to poll: the first delay doubles up to `max`; no sleep may end past `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The whole wait.
    pub timeout: Duration,
}

impl Backoff {
    /// The delay after `delay`: doubled, at most `max`.
    fn next(&self, delay: Duration) -> Duration {
        (delay * 2).min(self.max)
    }
}

/// A delay between `d/2` and `d` (full jitter keeps many waiters apart).
pub fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Why [`poll`] gave up.
#[derive(Debug, PartialEq, Eq)]
pub enum Gave<E> {
    /// An attempt failed for good.
    Up(E),
    /// The timeout would pass before the next attempt.
    TimedOut,
}

/// Calls `attempt` until it returns `Ok(Some(t))` (done) or `Err(e)` (failed for good);
/// `Ok(None)` means "not yet". Between attempts it sleeps on `clock` for a jittered
/// delay that doubles each time, and gives up with [`Gave::TimedOut`] when the next
/// sleep and attempt (as long as the longest so far) would end past `backoff.timeout`.
pub async fn poll<T, E, F, Fut>(
    clock: &dyn Clock,
    backoff: &Backoff,
    mut attempt: F,
) -> Result<T, Gave<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let started = clock.now();
    let mut delay = backoff.initial;
    // An attempt may take time itself (a batched read waits for its companions): the
    // next one must fit too, so the wait never runs past `timeout`.
    let mut longest = std::time::Duration::ZERO;
    loop {
        let began = clock.now();
        match attempt().await {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => {}
            Err(e) => return Err(Gave::Up(e)),
        }
        longest = longest.max(clock.now().saturating_sub(began));
        let pause = jitter(delay);
        if clock.now().saturating_sub(started) + pause + longest > backoff.timeout {
            return Err(Gave::TimedOut);
        }
        clock.sleep(pause).await;
        delay = backoff.next(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(timeout: u64) -> Backoff {
        Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(15),
            timeout: Duration::from_secs(timeout),
        }
    }

    #[tokio::test]
    async fn delays_double_up_to_the_maximum_and_stop_at_the_timeout() {
        let clock = ManualClock::default();
        let mut calls = 0;
        let r: Result<(), Gave<()>> = poll(&clock, &backoff(600), || {
            calls += 1;
            async { Ok(None) }
        })
        .await;
        assert_eq!(r, Err(Gave::TimedOut));
        let sleeps = clock.sleeps();
        assert!(clock.now() <= Duration::from_secs(600), "{:?}", clock.now());
        assert!(clock.now() > Duration::from_secs(585), "{:?}", clock.now());
        assert_eq!(calls, sleeps.len() + 1);
        // Jittered between half and all of 2, 4, 8, 15, 15, … seconds.
        let bounds = [2, 4, 8, 15, 15, 15];
        for (s, b) in sleeps.iter().zip(bounds) {
            let b = Duration::from_secs(b);
            assert!(*s >= b / 2 && *s <= b, "{s:?} not in [{:?}, {b:?}]", b / 2);
        }
    }

    #[tokio::test]
    async fn done_and_failed_end_the_wait_at_once() {
        let clock = ManualClock::default();
        let mut n = 0;
        let r: Result<u32, Gave<()>> = poll(&clock, &backoff(60), || {
            n += 1;
            let n = n;
            async move { Ok((n == 3).then_some(n)) }
        })
        .await;
        assert_eq!(r, Ok(3));
        assert_eq!(clock.sleeps().len(), 2);
        let r: Result<(), Gave<&str>> = poll(&clock, &backoff(60), || async { Err("no") }).await;
        assert_eq!(r, Err(Gave::Up("no")));
        assert_eq!(clock.sleeps().len(), 2, "no sleep after a failure");
    }
}
