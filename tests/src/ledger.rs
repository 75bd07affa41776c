//! The `DeliveryLedger` contract, run against every implementation (the history file and
//! DynamoDB on moto) so both behave the same.

use std::time::Duration;

use sluice_core::ports::{Claim, DeliveryId, DeliveryLedger, DeliveryState, SettledBatch};
use sluice_core::HistoryError;

fn id(manifest: &str) -> DeliveryId {
    DeliveryId {
        integration: "hook".into(),
        manifest_key: format!("e/t/{manifest}/manifest.json"),
        etag: "etag-1".into(),
    }
}

/// Claims, checkpoints, hand-over, completion and a claim race, on a fresh ledger.
pub async fn check_contract(ledger: &dyn DeliveryLedger) {
    let ttl = Duration::from_secs(60);
    let a = id("r1");
    let Claim::Mine(mut rec) = ledger.claim(&a, "owner-a", ttl, 250).await.unwrap() else {
        panic!("a new delivery is claimed")
    };
    assert_eq!((rec.attempts, rec.rows, rec.state), (1, 250, DeliveryState::InProgress));
    match ledger.claim(&a, "owner-b", ttl, 250).await.unwrap() {
        Claim::Held { owner, .. } => assert_eq!(owner, "owner-a"),
        other => panic!("a held claim is refused: {other:?}"),
    }

    // A checkpoint by the owner; none by anyone else.
    rec.progress.batch_size = 100;
    rec.progress.settled_rows = 100;
    rec.progress.delivered = 99;
    rec.progress.failed = 1;
    rec.progress.ahead.push(SettledBatch { seq: 2, delivered: 50, failed: 0 });
    ledger.save(&rec, "owner-a", Some(ttl)).await.unwrap();
    assert!(matches!(ledger.save(&rec, "owner-b", Some(ttl)).await, Err(HistoryError::LeaseLost)));

    // The owner stops (gives the claim up): the next owner resumes from its progress.
    rec.error = Some("stopped".into());
    ledger.save(&rec, "owner-a", None).await.unwrap();
    let Claim::Mine(mut rec) = ledger.claim(&a, "owner-b", ttl, 250).await.unwrap() else {
        panic!("a released claim is taken")
    };
    assert_eq!(rec.attempts, 2);
    assert_eq!((rec.progress.settled_rows, rec.progress.ahead.len()), (100, 1));
    assert!(matches!(ledger.save(&rec, "owner-a", None).await, Err(HistoryError::LeaseLost)), "the old owner is out");

    // Done: later claims are duplicates.
    rec.state = DeliveryState::Done;
    rec.progress.settled_rows = 250;
    ledger.save(&rec, "owner-b", None).await.unwrap();
    match ledger.claim(&a, "owner-c", ttl, 250).await.unwrap() {
        Claim::Done(r) => assert_eq!(r.progress.settled_rows, 250),
        other => panic!("a done delivery is a duplicate: {other:?}"),
    }
    assert_eq!(ledger.delivery(&a).await.unwrap().unwrap().state, DeliveryState::Done);
    // Another version of the object is another delivery.
    let rewritten = DeliveryId { etag: "etag-2".into(), ..a.clone() };
    assert!(matches!(ledger.claim(&rewritten, "owner-c", ttl, 1).await.unwrap(), Claim::Mine(_)));

    // Five claim one new delivery at once: one wins.
    let b = id("r2");
    let claims = futures::future::join_all((0..5).map(|i| {
        let b = b.clone();
        async move { ledger.claim(&b, &format!("racer-{i}"), ttl, 10).await.unwrap() }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| matches!(c, Claim::Mine(_))).count(), 1, "{claims:?}");

    // The last one written, whichever manifest it was.
    let last = ledger.last_delivery("hook").await.unwrap().expect("a last delivery");
    assert_eq!(last.id, b, "{last:?}");
    assert!(ledger.last_delivery("nobody").await.unwrap().is_none());

    check_send_slots(ledger).await;
}

/// The shared rate: slots spaced by at least the spacing whoever takes them, never before
/// `not_before`, one per caller however many race, and a count per UTC day.
async fn check_send_slots(ledger: &dyn DeliveryLedger) {
    let spacing = Duration::from_millis(50);
    // Slots are kept to the microsecond.
    let micro = chrono::Duration::microseconds(1);
    let now = chrono::Utc::now();
    let first = ledger.take_send_slot("paced", spacing, now).await.unwrap();
    assert!(first.at >= now - micro, "{first:?}");
    assert_eq!(first.day_count, 1);
    // Twelve callers at once (as concurrent invocations are): twelve distinct slots.
    let taken = futures::future::join_all(
        (0..12).map(|_| async { ledger.take_send_slot("paced", spacing, chrono::Utc::now()).await.unwrap() }),
    )
    .await;
    let mut at: Vec<_> = taken.iter().map(|s| s.at).chain([first.at]).collect();
    at.sort();
    for w in at.windows(2) {
        assert!(w[1] - w[0] >= chrono::Duration::from_std(spacing).unwrap(), "{:?} then {:?}", w[0], w[1]);
    }
    let mut counts: Vec<u64> = taken.iter().map(|s| s.day_count).collect();
    counts.sort();
    assert!(counts.iter().zip(2..).all(|(c, n)| *c >= n), "every request counted: {counts:?}");
    // After a pause, the next slot is now, not a burst of the slots missed meanwhile.
    let later = chrono::Utc::now() + chrono::Duration::seconds(30);
    let resumed = ledger.take_send_slot("paced", spacing, later).await.unwrap();
    assert!(resumed.at >= later - micro && resumed.at < later + chrono::Duration::seconds(1), "{resumed:?}");
    let next = ledger.take_send_slot("paced", spacing, later).await.unwrap();
    assert!(next.at - resumed.at >= chrono::Duration::from_std(spacing).unwrap());
    // Another integration has its own pace and count; no spacing is a count only.
    let other = ledger.take_send_slot("other", Duration::ZERO, now).await.unwrap();
    assert!((other.at - now).abs() <= micro && other.day_count == 1, "{other:?}");
    assert_eq!(ledger.take_send_slot("other", Duration::ZERO, now).await.unwrap().day_count, 2);
}
