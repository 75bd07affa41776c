//! Pacing requests: an integration's rate limit and daily quota, held across every process that
//! delivers it (the concurrent invocations of its function, or `sluice` processes on one
//! machine), and exponential backoff with full jitter for retries.
//!
//! An API's limit is per account, so the pace lives where every deliverer sees it: the ledger
//! hands out send slots ([`DeliveryLedger::take_send_slot`]), one per request, each at least
//! [`spacing`] after the one before, whoever took it. A request goes at its slot's time; one
//! that could not go by then (its process was late to wake) takes another slot rather than go
//! late, since a late request bunches up with the next one. So requests are spread evenly, and
//! no window of the limit's period holds more than the limit, with 4 invocations as with one.
//! The same slots count the requests of each UTC day against the daily quota.

use chrono::Utc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::raw::RateLimit;
use crate::ports::DeliveryLedger;

/// A request that wakes this much after its slot started takes another slot instead of going.
pub const LATE: Duration = Duration::from_millis(20);
/// Added to the limit's period before it is divided into slots: room for a request being up to
/// [`LATE`] after its slot, for the way to the server and for the machines' clocks differing
/// by a few milliseconds, so the API's own count over any window of its period stays within
/// the limit. It costs 3.8% of a per-second limit, 0.4% of HubSpot's 100 per 10 seconds.
pub const PERIOD_SLACK: Duration = Duration::from_millis(40);

/// The time between two send slots for `limit`: `(period + PERIOD_SLACK) / requests`.
pub fn spacing(limit: RateLimit) -> Duration {
    let period = (limit.per + PERIOD_SLACK).as_micros() as u64;
    Duration::from_micros(period.div_ceil(u64::from(limit.requests.max(1))))
}

/// Why a request may not go.
#[derive(Debug, PartialEq)]
pub enum NoSlot {
    /// Its slot is after the time the delivery must stop by.
    Deadline,
    /// The day's quota is used up.
    DailyLimit { limit: u64, day: String },
    /// The ledger could not hand out a slot.
    Ledger(String),
}

/// An integration's pace: its shared slots (when it has a rate limit or a daily quota) and a
/// pause every sender of this process observes after a 429.
pub struct Pace<'a> {
    ledger: &'a dyn DeliveryLedger,
    integration: String,
    spacing: Option<Duration>,
    daily_limit: Option<u64>,
    paused_until: Mutex<Option<Instant>>,
}

impl<'a> Pace<'a> {
    pub fn new(
        ledger: &'a dyn DeliveryLedger,
        integration: &str,
        limit: Option<RateLimit>,
        daily_limit: Option<u64>,
    ) -> Self {
        Pace {
            ledger,
            integration: integration.to_string(),
            spacing: limit.map(spacing),
            daily_limit,
            paused_until: Mutex::new(None),
        }
    }

    /// Waits for this request's turn: the end of a pause, then a slot of the shared rate.
    pub async fn acquire(&self, stop_by: Option<Instant>) -> Result<(), NoSlot> {
        loop {
            let until = *self.paused_until.lock().await;
            match until {
                Some(u) if u > Instant::now() => {
                    if stop_by.is_some_and(|s| u >= s) {
                        return Err(NoSlot::Deadline);
                    }
                    tokio::time::sleep_until(u).await;
                }
                _ => break,
            }
        }
        if self.spacing.is_none() && self.daily_limit.is_none() {
            return Ok(());
        }
        let spacing = self.spacing.unwrap_or(Duration::ZERO);
        loop {
            let now = Utc::now();
            let slot = self
                .ledger
                .take_send_slot(&self.integration, spacing, now)
                .await
                .map_err(|e| NoSlot::Ledger(crate::error::error_chain(&e)))?;
            if let Some(limit) = self.daily_limit.filter(|l| slot.day_count > *l) {
                return Err(NoSlot::DailyLimit { limit, day: now.format("%Y-%m-%d").to_string() });
            }
            // Measured from after the ledger answered: its round trip is not part of the wait.
            let wait = (slot.at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            let at = Instant::now() + wait;
            if stop_by.is_some_and(|s| at >= s) {
                return Err(NoSlot::Deadline);
            }
            tokio::time::sleep_until(at).await;
            // Late (the ledger answered after the slot began, or this task woke late): going
            // now would bunch up with the next slot's request.
            if Utc::now() <= slot.at + LATE {
                return Ok(());
            }
        }
    }

    /// Holds every sender of this process back for `wait` (a 429's `Retry-After`).
    pub async fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().await;
        if paused.is_none_or(|u| u < until) {
            *paused = Some(until);
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

    #[test]
    fn slots_leave_room_for_lateness_within_the_period() {
        let s = spacing(RateLimit { requests: 20, per: Duration::from_secs(1) });
        assert_eq!(s, Duration::from_micros(52_000));
        // Any window of the period holds at most the limit even with each request LATE.
        assert!(s * 20 >= Duration::from_secs(1) + LATE);
        let hubspot = spacing(RateLimit { requests: 100, per: Duration::from_secs(10) });
        assert_eq!(hubspot, Duration::from_micros(100_400));
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
