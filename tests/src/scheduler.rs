//! The `Scheduler` contract: a rule's name is a function of its export and orchestration; `put`
//! creates or replaces the rule (its schedule, whether it is enabled, the input it sends) and
//! can be repeated; `remove` deletes it and can be repeated. Where the scheduler can be read
//! back (EventBridge on moto, the test kit's memory scheduler), the suite checks what it holds.

use futures::future::BoxFuture;

use sluice_core::ports::{RuleSpec, Scheduler};

/// A rule as the scheduler holds it: its schedule, whether it is enabled, and its input.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub schedule: String,
    pub enabled: bool,
    pub input: serde_json::Value,
}

/// Reads a rule back by name; `None` when it does not exist.
pub type Inspect<'a> = &'a dyn Fn(String) -> BoxFuture<'a, Option<Held>>;

pub async fn check_contract(scheduler: &dyn Scheduler, inspect: Option<Inspect<'_>>) {
    scheduler.ready().expect("the scheduler is ready");
    let name = scheduler.rule_name("contract", "nightly").expect("a short name is accepted");
    assert_eq!(scheduler.rule_name("contract", "nightly").unwrap(), name, "the name is a function of its parts");
    assert_ne!(scheduler.rule_name("contract", "hourly").unwrap(), name, "each orchestration has its own rule");
    assert_ne!(scheduler.rule_name("contrac", "tnightly").unwrap(), name, "the parts stay apart in the name");

    let mut rule = RuleSpec {
        rule: name.clone(),
        export: "contract".into(),
        orchestration: "nightly".into(),
        schedule: "cron(0 2 * * ? *)".into(),
        enabled: true,
    };
    let input = serde_json::json!({"export": "contract", "orchestration": "nightly"});
    assert_eq!(serde_json::from_str::<serde_json::Value>(&rule.input()).unwrap(), input);
    scheduler.put(&rule).await.expect("a rule is put");
    scheduler.put(&rule).await.expect("putting the same rule again is fine");
    if let Some(inspect) = inspect {
        let held = inspect(name.clone()).await.expect("the rule exists");
        assert_eq!(held, Held { schedule: rule.schedule.clone(), enabled: true, input: input.clone() });
    }
    rule.enabled = false;
    rule.schedule = "rate(1 hour)".into();
    scheduler.put(&rule).await.expect("a rule is replaced");
    if let Some(inspect) = inspect {
        let held = inspect(name.clone()).await.expect("the rule exists");
        assert_eq!(held, Held { schedule: "rate(1 hour)".into(), enabled: false, input }, "replaced whole");
    }
    scheduler.remove(&name).await.expect("a rule is removed");
    scheduler.remove(&name).await.expect("removing a removed rule is fine");
    if let Some(inspect) = inspect {
        assert_eq!(inspect(name).await, None, "the rule is gone");
    }
}
