//! How a connection retries: the [`RetryPolicy`] between rounds over the URL list, and the
//! [`FailoverStrategy`] that orders the URLs of each round.

use std::time::Duration;

/// How often and how fast to retry connecting (Kombu's `max_retries`, `interval_start`, `interval_step`,
/// `interval_max`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Rounds over the URL list after the first one; `None` retries forever.
    pub max_retries: Option<u32>,
    /// Wait before the first retry.
    pub interval_start: Duration,
    /// Added to the wait after each retry.
    pub interval_step: Duration,
    /// Longest wait.
    pub interval_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: Some(2),
            interval_start: Duration::from_millis(100),
            interval_step: Duration::from_millis(200),
            interval_max: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries: one round over the URLs.
    pub fn none() -> Self {
        RetryPolicy { max_retries: Some(0), ..Default::default() }
    }
    /// Sets the number of retries (`None`: forever).
    pub fn max_retries(mut self, n: Option<u32>) -> Self {
        self.max_retries = n;
        self
    }
    /// Sets the intervals.
    pub fn intervals(mut self, start: Duration, step: Duration, max: Duration) -> Self {
        self.interval_start = start;
        self.interval_step = step;
        self.interval_max = max;
        self
    }
    /// The wait before retry number `n` (0-based).
    pub fn interval(&self, n: u32) -> Duration {
        (self.interval_start + self.interval_step * n).min(self.interval_max)
    }
}

/// The order in which failover URLs are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailoverStrategy {
    /// In the order given, starting after the last one that failed.
    #[default]
    RoundRobin,
    /// In a random order each round.
    Shuffle,
}

pub(super) fn shuffle(v: &mut [usize]) {
    // A small xorshift seeded from the clock is plenty to spread clients over brokers.
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64);
    let mut x = clock.unwrap_or(0) ^ u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_intervals_grow_to_max() {
        let p = RetryPolicy::default().intervals(
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_millis(250),
        );
        assert_eq!(p.interval(0), Duration::from_millis(100));
        assert_eq!(p.interval(1), Duration::from_millis(200));
        assert_eq!(p.interval(5), Duration::from_millis(250));
    }

    #[test]
    fn shuffle_keeps_elements() {
        let mut v = vec![0, 1, 2, 3, 4];
        shuffle(&mut v);
        v.sort();
        assert_eq!(v, vec![0, 1, 2, 3, 4]);
    }
}
