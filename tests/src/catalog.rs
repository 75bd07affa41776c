//! The `Catalog` contract and the export lifecycle on top of it, run against every store (the
//! history file, and DynamoDB on moto) so both behave the same: versions, optimistic
//! concurrency (of concurrent edits from one revision exactly one lands), audit.

use std::path::Path;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sluice_core::catalog::{Catalog, CatalogError, Edit, Exports, Lifecycle, Preflight};
use sluice_core::orchestrate::{RuleSpec, Scheduler};
use sluice_core::spec::{Config, ExportSpec};
use sluice_core::BoxError;

/// Activation checks that pass, or refuse with one problem.
pub struct FakePreflight(pub Option<&'static str>);

#[async_trait]
impl Preflight for FakePreflight {
    async fn check(&self, spec: &ExportSpec) -> Vec<String> {
        self.0.map(|p| format!("{}: {p}", spec.name)).into_iter().collect()
    }
}

/// A scheduler that keeps its rules in memory (name -> the rule), and can be made to fail.
#[derive(Default)]
pub struct MemoryScheduler {
    pub rules: Mutex<BTreeMap<String, RuleSpec>>,
    pub failing: Mutex<bool>,
}

impl MemoryScheduler {
    fn up(&self) -> Result<(), BoxError> {
        if *self.failing.lock().unwrap() {
            return Err("the scheduler is unreachable".into());
        }
        Ok(())
    }

    /// The rule as held, for the scheduler contract.
    pub fn held(&self, rule: &str) -> Option<crate::scheduler::Held> {
        self.rules.lock().unwrap().get(rule).map(|r| crate::scheduler::Held {
            schedule: r.schedule.clone(),
            enabled: r.enabled,
            input: serde_json::from_str(&r.input()).unwrap(),
        })
    }

    /// Whether the rule exists and is enabled (None: it does not exist).
    pub fn enabled(&self, rule: &str) -> Option<bool> {
        self.rules.lock().unwrap().get(rule).map(|r| r.enabled)
    }
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    async fn put(&self, rule: &RuleSpec) -> Result<(), BoxError> {
        self.up()?;
        self.rules.lock().unwrap().insert(rule.rule.clone(), rule.clone());
        Ok(())
    }
    async fn remove(&self, rule: &str) -> Result<(), BoxError> {
        self.up()?;
        self.rules.lock().unwrap().remove(rule);
        Ok(())
    }
    fn rule_name(&self, export: &str, orchestration: &str) -> Result<String, sluice_core::error::Invalid> {
        Ok(format!("test-orch-{export}.{orchestration}"))
    }
}

/// A config with two SQLite sources (`db` and `other`) and no exports of its own but `filed`.
pub fn sources_config(dir: &Path) -> Config {
    let text = "version = 1\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n\
                [sources.other]\nkind = \"sqlite\"\npath = \"other.db\"\n\n\
                [[export]]\nname = \"filed\"\nsource = \"db\"\ndestination = \"out\"\n\
                [[export.table]]\nname = \"contacts\"\nincremental = { strategy = \"full\" }\n";
    Config::parse(&dir.join("sluice.toml"), text, sluice_local::KINDS).expect("the sources config is valid")
}

pub const CONTACTS: &str = "name = \"crm\"\nsource = \"db\"\ndestination = \"out\"\n\n\
                            [[table]]\nname = \"contacts\"\nincremental = { strategy = \"timestamp\", column = \"updated_at\" }\n";

/// The whole lifecycle on a fresh catalog.
pub async fn check_contract(catalog: &dyn Catalog, dir: &Path) {
    let config = sources_config(dir);
    let alice = Exports { catalog, config: &config, who: "alice@host".into() };
    let bob = Exports { catalog, config: &config, who: "bob@host".into() };
    let ok = FakePreflight(None);
    let rules = MemoryScheduler::default();

    // Create: a draft, version 1; the name is then taken, as is a name the file uses.
    let e = alice.create(CONTACTS).await.unwrap();
    assert_eq!((e.state, e.revision, e.draft_version, e.active_version), (Lifecycle::Draft, 1, Some(1), None));
    assert!(matches!(bob.create(CONTACTS).await, Err(CatalogError::Exists(n)) if n == "crm"));
    let filed = CONTACTS.replace("\"crm\"", "\"filed\"");
    assert!(matches!(bob.create(&filed).await, Err(CatalogError::InFile { .. })));
    // A definition naming an unknown source or with a bad key is refused with the problem.
    let bad = CONTACTS.replace("\"crm\"", "\"bad\"").replace("\"db\"", "\"nope\"");
    let err = bob.create(&bad).await.unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(catalog.entry("bad").await.unwrap().is_none());
    // Drafts do not run.
    assert!(alice.runnable().await.unwrap().is_empty());

    // Activation runs the checks; refused, nothing changes.
    let refused = alice.activate("crm", None, &FakePreflight(Some("no table contacts"))).await.unwrap_err();
    assert!(refused.to_string().contains("crm: no table contacts"), "{refused}");
    assert_eq!(catalog.entry("crm").await.unwrap().unwrap().revision, 1);
    let e = alice.activate("crm", Some(1), &ok).await.unwrap();
    assert_eq!((e.state, e.revision, e.active_version, e.draft_version), (Lifecycle::Active, 2, Some(1), None));
    assert_eq!(alice.runnable().await.unwrap()[0].name, "crm");

    // Editing an active export makes a draft of the next version; the active one still runs.
    let orders = "name = \"orders\"\nincremental = { strategy = \"full\" }";
    let e = alice.edit("crm", &Edit::AddTable(orders.into()), Some(2)).await.unwrap();
    assert_eq!((e.active_version, e.draft_version, e.revision), (Some(1), Some(2), 3));
    assert_eq!(alice.runnable().await.unwrap()[0].tables.len(), 1);
    // Two edits made from revision 3: one lands, the other is refused as stale, naming who won.
    let (switch, remove) = (Edit::SetSource("other".into()), Edit::RemoveTable("contacts".into()));
    let (a, b) = tokio::join!(alice.edit("crm", &switch, Some(3)), bob.edit("crm", &remove, Some(3)));
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("exactly one of two concurrent edits lands: {other:?}"),
    };
    assert_eq!(won.revision, 4);
    match &lost {
        CatalogError::Stale { expected, found, by, .. } => {
            assert_eq!((*expected, *found), (3, 4));
            assert_eq!(by, &won.updated_by);
        }
        other => panic!("the loser is told its revision is stale: {other}"),
    }
    assert!(lost.to_string().contains("changed since revision 3"), "{lost}");
    // A stale revision given up front is refused before anything is written.
    assert!(matches!(
        bob.edit("crm", &Edit::SetDestination("elsewhere".into()), Some(3)).await,
        Err(CatalogError::Stale { .. })
    ));
    // Edits that cannot apply are named.
    let err = bob.edit("crm", &Edit::RemoveTable("nope".into()), None).await.unwrap_err().to_string();
    assert!(err.contains("no table \"nope\""), "{err}");
    let err = bob.edit("crm", &Edit::SetSource("missing".into()), None).await.unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");

    // Discard drops the draft; the active version is untouched.
    let e = bob.discard("crm", None).await.unwrap();
    assert_eq!((e.state, e.active_version, e.draft_version), (Lifecycle::Active, Some(1), None));
    assert!(matches!(bob.discard("crm", None).await, Err(CatalogError::WrongState { .. })));

    // Orchestrations: only an activated export, with a valid schedule, to its own destination.
    let err = alice.orchestrate("crm", "hourly", "rate(1 hours)", None, &rules).await.unwrap_err().to_string();
    assert!(err.contains("write hour"), "{err}");
    let err = alice.orchestrate("crm", "hourly", "rate(1 hour)", Some("s3://b/x"), &rules).await.unwrap_err();
    assert!(err.to_string().contains("out, not s3://b/x"), "{err}");
    let out = dir.join("out").display().to_string();
    let e = alice.orchestrate("crm", "hourly", "rate(1 hour)", Some(&out), &rules).await.unwrap();
    assert_eq!((e.revision, e.orchestrations.len()), (6, 1));
    let rule = rules.rules.lock().unwrap()["test-orch-crm.hourly"].clone();
    assert_eq!((rule.schedule.as_str(), rule.enabled), ("rate(1 hour)", true));
    assert_eq!(rule.input(), r#"{"export":"crm","orchestration":"hourly"}"#);
    assert!(alice.orchestrate("crm", "hourly", "rate(2 hours)", None, &rules).await.is_err(), "name taken");
    assert!(alice.scheduled("crm", "hourly").await.unwrap().is_ok());
    assert!(alice.scheduled("crm", "nightly").await.unwrap().is_err(), "unknown: skipped");
    // Pausing one disables its rule, and its invocations are skipped.
    alice.set_orchestration_paused("crm", "hourly", true, &rules).await.unwrap();
    assert_eq!(rules.enabled("test-orch-crm.hourly"), Some(false));
    assert!(alice.scheduled("crm", "hourly").await.unwrap().is_err());
    // A scheduler failure after the catalog changed is reported; repeating the command fixes
    // the rule without another catalog change.
    *rules.failing.lock().unwrap() = true;
    let err = alice.set_orchestration_paused("crm", "hourly", false, &rules).await.unwrap_err().to_string();
    assert!(err.contains("run the same command again"), "{err}");
    *rules.failing.lock().unwrap() = false;
    let before = catalog.entry("crm").await.unwrap().unwrap().revision;
    alice.set_orchestration_paused("crm", "hourly", false, &rules).await.unwrap();
    assert_eq!(catalog.entry("crm").await.unwrap().unwrap().revision, before);
    assert_eq!(rules.enabled("test-orch-crm.hourly"), Some(true));

    // Pause and resume the export: its rules follow; a paused export is still listed to run
    // (its scheduled invocations are skipped), and pausing twice is not an error.
    let e = bob.set_paused("crm", true, None, &rules).await.unwrap();
    assert_eq!(e.state, Lifecycle::Paused);
    assert_eq!(rules.enabled("test-orch-crm.hourly"), Some(false));
    assert_eq!(bob.set_paused("crm", true, None, &rules).await.unwrap().revision, e.revision);
    assert!(matches!(
        bob.set_paused("crm", true, Some(e.revision), &rules).await,
        Err(CatalogError::WrongState { .. })
    ));
    assert_eq!(alice.runnable().await.unwrap()[0].state, sluice_core::spec::ExportState::Paused);
    assert!(alice.scheduled("crm", "hourly").await.unwrap().is_err());
    bob.set_paused("crm", false, None, &rules).await.unwrap();
    assert_eq!(rules.enabled("test-orch-crm.hourly"), Some(true));
    alice.orchestrate("crm", "nightly", "cron(0 2 * * ? *)", None, &rules).await.unwrap();
    alice.unorchestrate("crm", "nightly", &rules).await.unwrap();
    assert_eq!(rules.enabled("test-orch-crm.nightly"), None);
    // Removing it again is done, not an error (a repeat after a failed rule removal).
    let again = alice.unorchestrate("crm", "nightly", &rules).await.unwrap();
    assert!(again.orchestrations.iter().all(|o| o.name != "nightly"));
    // A rule lost in EventBridge comes back when its orchestration is resumed.
    rules.rules.lock().unwrap().clear();
    alice.set_orchestration_paused("crm", "hourly", false, &rules).await.unwrap();
    assert_eq!(rules.enabled("test-orch-crm.hourly"), Some(true));

    // A second version activated.
    alice.edit("crm", &Edit::AddTable(orders.into()), None).await.unwrap();
    let e = alice.activate("crm", None, &ok).await.unwrap();
    assert_eq!(e.active_version, Some(e.latest_version));
    assert_eq!(alice.runnable().await.unwrap()[0].tables.len(), 2);

    // Delete: refused while an orchestration uses it, unless forced (which removes its
    // rules); then nothing runs, but every version and the audit trail stay.
    let err = alice.delete("crm", false, None, &rules).await.unwrap_err().to_string();
    assert!(err.contains("orchestration hourly") && err.contains("force the delete"), "{err}");
    assert_eq!(rules.enabled("test-orch-crm.hourly"), Some(true));
    // A forced delete whose rule removal fails changes nothing, and can be repeated.
    *rules.failing.lock().unwrap() = true;
    let err = alice.delete("crm", true, None, &rules).await.unwrap_err();
    assert!(matches!(err, CatalogError::Scheduler(_)), "{err}");
    assert_eq!(catalog.entry("crm").await.unwrap().unwrap().state, Lifecycle::Active);
    *rules.failing.lock().unwrap() = false;
    let e = alice.delete("crm", true, None, &rules).await.unwrap();
    assert_eq!(e.state, Lifecycle::Deleted);
    assert!(e.orchestrations.is_empty());
    assert!(rules.rules.lock().unwrap().is_empty(), "its rules are gone");
    let skipped = alice.scheduled("crm", "hourly").await.unwrap().unwrap_err();
    assert!(skipped.0.contains("deleted"), "a leftover rule's run is skipped: {skipped:?}");
    assert!(alice.runnable().await.unwrap().is_empty());
    assert!(matches!(
        alice.edit("crm", &Edit::SetSource("db".into()), None).await,
        Err(CatalogError::WrongState { .. })
    ));
    for v in 1..=e.latest_version {
        assert!(catalog.definition("crm", v).await.unwrap().is_some(), "version {v} kept");
    }
    let audit = catalog.audit("crm", 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "delete",
            "activate",
            "edit",
            "delete orchestration",
            "orchestrate",
            "resume",
            "pause",
            "resume orchestration",
            "pause orchestration",
            "orchestrate",
            "discard",
            "edit",
            "edit",
            "activate",
            "create"
        ],
        "newest first"
    );
    assert_eq!(audit.len() as u64, e.revision);
    let add = audit.iter().rev().find(|a| a.action == "edit").unwrap();
    assert!(add.diff.contains("+ name = \"orders\""), "{}", add.diff);
    assert_eq!(audit[0].who, "alice@host");
    assert_eq!(catalog.audit("crm", 2).await.unwrap().len(), 2);
    assert_eq!(catalog.entries().await.unwrap().len(), 1);

    // A deleted export's name is reused: a new draft with the next version, audited on.
    let again = alice.create(CONTACTS).await.unwrap();
    assert_eq!(again.state, Lifecycle::Draft);
    assert_eq!((again.active_version, again.draft_version), (None, Some(e.latest_version + 1)));
    assert_eq!(again.revision, e.revision + 1);
    assert_eq!(catalog.audit("crm", 1).await.unwrap()[0].action, "create");
    assert!(catalog.definition("crm", 1).await.unwrap().is_some(), "the deleted versions stay");
}
