//! `verify` against a real destination: real runs of the export into the store, then each way of
//! tampering verify must catch, one at a time (each undone before the next), and a clean chain
//! that passes. Run on a folder and on S3 (moto), with the history file and DynamoDB.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sluice_core::manifest::Manifest;
use sluice_core::ports::{EventSink, HistoryStore, ObjectMeta, ObjectStore};
use sluice_core::run::{Ports, Quiet, Runner};
use sluice_core::spec::Config;
use sluice_core::value::Watermark;
use sluice_core::verify::{Report, Scope, Verifier};
use sluice_local::SqliteSource;

use crate::{contacts_config, create_contacts, insert_contacts};

/// Four committed runs of a timestamp table (one empty), made with the real runner.
pub struct Chain {
    pub manifests: Vec<String>,
}

fn kinds(report: &Report) -> Vec<(&'static str, Option<String>)> {
    report.findings.iter().map(|f| (f.kind, f.key.clone())).collect()
}

fn has(report: &Report, kind: &str, key: &str) -> bool {
    report.findings.iter().any(|f| f.kind == kind && f.key.as_deref() == Some(key))
}

/// Runs the contacts export four times into `store`, recording in `history`.
pub async fn make_chain(
    dir: &Path,
    store: &dyn ObjectStore,
    history: &dyn HistoryStore,
    events: &dyn EventSink,
) -> Chain {
    let db = create_contacts(&dir.join("source.db"));
    let config = Config::load(
        &contacts_config(
            dir,
            "{ strategy = \"timestamp\", column = \"updated_at\", lag = \"0s\" }",
            "{ compression = \"none\", max_file_size = 200 }",
        ),
        sluice_local::KINDS,
    )
    .unwrap();
    let clock = Arc::new(Mutex::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()));
    let now = || *clock.lock().unwrap();
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    let mut manifests = Vec::new();
    for (i, (first, n)) in [(1, 12), (0, 0), (100, 7), (200, 5)].into_iter().enumerate() {
        if i == 3 {
            // The last run in a later second than the first three (run ids order by the second
            // only, so `--since` must put one second's runs in order by their links).
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        if n > 0 {
            insert_contacts(&db, first, n, &stamp(now() - Duration::milliseconds(500)));
        }
        let c = clock.clone();
        let source = SqliteSource::with_clock(dir.join("source.db"), Arc::new(move || *c.lock().unwrap()));
        let ports = Ports { source: &source, store, history, events };
        let s = Runner::new(ports, &Quiet).run(&config.exports[0], &crate::run_options()).await.unwrap();
        assert!(s.succeeded, "{:?}", s.error);
        manifests.push(s.tables[0].manifest_key.clone().unwrap());
        *clock.lock().unwrap() += Duration::seconds(2);
    }
    Chain { manifests }
}

async fn manifest(store: &dyn ObjectStore, key: &str) -> Manifest {
    serde_json::from_slice(&store.get(key).await.unwrap().unwrap()).unwrap()
}

/// Every tampering `verify` must name, on `chain` in `store`; `history` is the one the runs
/// recorded in, `empty` a history with no record of them.
pub async fn check_verify(
    store: &dyn ObjectStore,
    history: &dyn HistoryStore,
    empty: &dyn HistoryStore,
    chain: &Chain,
) {
    let scope = Scope { export: Some("contacts".into()), ..Scope::default() };
    let verify = || Verifier { store, history: Some(history) };
    let clean = verify().verify(&scope).await.unwrap();
    assert_eq!(kinds(&clean), vec![], "a clean chain verifies");
    assert_eq!(clean.tables.len(), 1);
    assert_eq!(clean.tables[0].runs, 4);
    assert_eq!(clean.tables[0].rows, 24);
    let recorded = history.watermark("contacts", "contacts").await.unwrap().map(|w| w.watermark);
    assert_eq!(clean.tables[0].cursor, recorded, "the cursor the files prove is the history's");
    // A consumer's copy, without the history, verifies too.
    let alone = Verifier { store, history: None }.verify(&Scope::default()).await.unwrap();
    assert_eq!(kinds(&alone), vec![]);

    let third = manifest(store, &chain.manifests[2]).await;
    assert!(third.parts.len() >= 2, "the run wrote several parts: {:?}", third.parts);
    let part = third.parts[1].key.clone();
    let bytes = store.get(&part).await.unwrap().unwrap();
    let meta = ObjectMeta { content_type: "text/csv".into(), content_encoding: None };

    // A missing part.
    store.delete(&part).await.unwrap();
    let r = verify().verify(&scope).await.unwrap();
    assert!(has(&r, "part_missing", &part), "{:?}", kinds(&r));
    assert!(r.violations() > 0);

    // A changed byte, the size unchanged.
    let mut changed = bytes.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0x01;
    store.put(&part, changed, &meta).await.unwrap();
    let r = verify().verify(&scope).await.unwrap();
    assert_eq!(kinds(&r), vec![("part_hash", Some(part.clone()))]);
    store.put(&part, bytes.clone(), &meta).await.unwrap();

    // An extra file in a committed run's folder.
    let folder = chain.manifests[2].trim_end_matches("manifest.json");
    let extra = format!("{folder}notes.txt");
    store.put(&extra, b"hello".to_vec(), &meta).await.unwrap();
    let r = verify().verify(&scope).await.unwrap();
    assert_eq!(kinds(&r), vec![("extra_file", Some(extra.clone()))]);
    store.delete(&extra).await.unwrap();

    // The oldest run gone whole (as a bucket's retention removes old runs): the chain is proven
    // from the next run on, a notice; the history still names the run it recorded.
    let oldest = chain.manifests[0].trim_end_matches("manifest.json").to_string();
    let saved: Vec<(String, Vec<u8>)> = {
        let mut all = Vec::new();
        for key in store.list(&oldest).await.unwrap() {
            all.push((key.clone(), store.get(&key).await.unwrap().unwrap()));
        }
        all
    };
    store.delete_prefix(&oldest).await.unwrap();
    let alone = Verifier { store, history: None }.verify(&scope).await.unwrap();
    assert_eq!(kinds(&alone), vec![("chain_starts_here", Some(chain.manifests[1].clone()))]);
    assert_eq!(alone.violations(), 0);
    // With the history: the removed run is named only when it shares the next run's second
    // (older records count as retention's, as the chain does); nothing else is found.
    let r = verify().verify(&scope).await.unwrap();
    assert!(
        r.findings.iter().all(|f| matches!(f.kind, "chain_starts_here" | "recorded_without_manifest")),
        "{:?}",
        kinds(&r)
    );
    for (key, bytes) in saved {
        store.put(&key, bytes, &meta).await.unwrap();
    }

    // A manifest deleted in the middle of the chain: the next one's link names it.
    let middle = chain.manifests[1].clone();
    let saved = store.get(&middle).await.unwrap().unwrap();
    store.delete(&middle).await.unwrap();
    let r = verify().verify(&scope).await.unwrap();
    assert!(has(&r, "link_missing_target", &chain.manifests[2]), "{:?}", kinds(&r));
    assert!(r.findings.iter().any(|f| f.kind == "recorded_without_manifest"), "{:?}", kinds(&r));
    store.put(&middle, saved, &meta).await.unwrap();

    // Overlapping windows: the newest run's window starts before the previous one ended (a
    // rewound watermark does this); and a gap, after it.
    let newest = chain.manifests[3].clone();
    let saved = store.get(&newest).await.unwrap().unwrap();
    let mut m = manifest(store, &newest).await;
    m.window.low = third.window.low.clone();
    store.put(&newest, m.to_json().unwrap(), &meta).await.unwrap();
    let r = verify().verify(&scope).await.unwrap();
    assert!(has(&r, "window_overlap", &newest), "{:?}", kinds(&r));
    let overlap = r.findings.iter().find(|f| f.kind == "window_overlap").unwrap();
    assert!(overlap.problem.contains("exported twice"), "{}", overlap.problem);
    m.window.low = m.window.high.clone();
    if let Some(Watermark::Text(t)) = &mut m.window.low {
        t.replace_range(..4, "2027");
    }
    store.put(&newest, m.to_json().unwrap(), &meta).await.unwrap();
    let r = verify().verify(&scope).await.unwrap();
    assert!(has(&r, "window_gap", &newest), "{:?}", kinds(&r));
    store.put(&newest, saved, &meta).await.unwrap();

    // A history that disagrees: one with no record of these runs.
    let r = Verifier { store, history: Some(empty) }.verify(&scope).await.unwrap();
    let disagree: Vec<&str> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(disagree.iter().filter(|k| **k == "run_not_recorded").count(), 4, "{disagree:?}");
    assert!(disagree.contains(&"watermark_disagrees"), "{disagree:?}");

    // Undone, it verifies again; and from a run on, only the runs since are checked.
    assert_eq!(kinds(&verify().verify(&scope).await.unwrap()), vec![]);
    for (from, runs) in [(3, 1), (2, 2), (1, 3)] {
        let since = chain.manifests[from].split('/').nth(2).unwrap().to_string();
        let r = verify().verify(&Scope { since: Some(since), ..scope.clone() }).await.unwrap();
        assert_eq!((kinds(&r), r.tables[0].runs), (vec![], runs), "since run {}", from + 1);
    }

    // A table whose whole folder is gone: the history's watermark names it.
    store.delete_prefix("contacts/contacts").await.unwrap();
    let r = verify().verify(&scope).await.unwrap();
    assert_eq!(
        r.findings.iter().map(|f| (f.kind, f.table.as_str())).collect::<Vec<_>>(),
        [("table_missing", "contacts")]
    );
}
