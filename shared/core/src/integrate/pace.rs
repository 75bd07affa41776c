//! Pacing requests: a rate limit that holds over every window of its period, and exponential
//! backoff with full jitter for retries.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::spec::RateLimit;

/// Sends when fewer than `requests` were sent in the last `per` (a sliding log of send times, so
/// no window of that length ever holds more; a token bucket would allow a double burst at a
/// window's edge), and no sooner than `per / requests` after the previous send, so requests are
/// spread evenly instead of bursting at the start of each window: the observed rate is the
/// limit, and every shorter window holds its share of it. A 429 pauses every sender until the
/// server's wait is over.
pub struct Limiter {
    limit: Option<RateLimit>,
    state: Mutex<LimiterState>,
}

struct LimiterState {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
    /// The earliest time of the next send.
    next: Option<Instant>,
}

/// Room for the clock granularity and the way to the server, so its own count stays under.
const GUARD: Duration = Duration::from_millis(2);

impl Limiter {
    pub fn new(limit: Option<RateLimit>) -> Self {
        Limiter { limit, state: Mutex::new(LimiterState { sent: VecDeque::new(), paused_until: None, next: None }) }
    }

    /// Waits for a slot. Waiters queue on the lock, so they are served in turn.
    pub async fn acquire(&self) {
        let mut state = self.state.lock().await;
        loop {
            let now = Instant::now();
            if let Some(until) = state.paused_until {
                if until > now {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                state.paused_until = None;
            }
            let Some(limit) = self.limit else { return };
            if let Some(next) = state.next.filter(|n| *n > now) {
                tokio::time::sleep_until(next).await;
                continue;
            }
            while state.sent.front().is_some_and(|t| *t + limit.per + GUARD <= now) {
                state.sent.pop_front();
            }
            if state.sent.len() < limit.requests as usize {
                state.sent.push_back(now);
                // On schedule: the next slot follows this one's, so timer lateness does not
                // add up and lower the rate; after a pause, no more than one slot is made up.
                let interval = limit.per / limit.requests;
                let slot = state.next.map_or(now, |n| n.max(now.checked_sub(interval).unwrap_or(now)));
                state.next = Some(slot + interval);
                return;
            }
            let oldest = state.sent[0];
            tokio::time::sleep_until(oldest + limit.per + GUARD).await;
        }
    }

    /// Holds every sender back for `wait` (a 429's `Retry-After`).
    pub async fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.state.lock().await;
        if state.paused_until.is_none_or(|u| u < until) {
            state.paused_until = Some(until);
        }
    }
}

/// Full-jitter exponential backoff: a random wait in `[0, min(cap, base * 2^attempt)]`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    let r = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
    ceiling.mul_f64(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_window_of_the_period_holds_more_than_the_limit() {
        let limiter = Limiter::new(Some(RateLimit { requests: 5, per: Duration::from_secs(1) }));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..23 {
            limiter.acquire().await;
            times.push(Instant::now() - start);
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().filter(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(in_window <= 5, "{in_window} sends in the second from {t:?}");
        }
        // Spread evenly: 23 sends at 5 per second take 22 intervals of 200 ms.
        let total = *times.last().unwrap();
        assert!(total >= Duration::from_millis(4400) && total < Duration::from_millis(4500), "{total:?}");
        for w in times.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(200), "{:?} apart", w[1] - w[0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_sender() {
        let limiter = Limiter::new(None);
        limiter.pause(Duration::from_secs(3)).await;
        let start = Instant::now();
        limiter.acquire().await;
        assert!(Instant::now() - start >= Duration::from_secs(3));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..30 {
            let d = backoff(attempt, Duration::from_millis(100), Duration::from_secs(20));
            assert!(d <= Duration::from_secs(20));
            assert!(d <= Duration::from_millis(100) * (1 << attempt.min(20)));
        }
    }
}
