//! The scheduler port: where orchestrations' rules live (EventBridge in AWS, records only on one
//! machine).

use async_trait::async_trait;

use crate::error::{BoxError, Invalid};

/// What a scheduler rule is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub rule: String,
    pub export: String,
    pub orchestration: String,
    pub schedule: String,
    pub enabled: bool,
}

impl RuleSpec {
    /// The invocation the rule sends: what `ExportRequest::from_event` reads.
    pub fn input(&self) -> String {
        serde_json::json!({"export": self.export, "orchestration": self.orchestration}).to_string()
    }
}

/// Where orchestrations' rules live: EventBridge in AWS (`sluice_aws::EventBridgeScheduler`).
/// Every method is idempotent, so a command that failed half-way can simply be repeated.
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Creates or replaces the rule (schedule, target, input, enabled or not).
    async fn put(&self, rule: &RuleSpec) -> Result<(), BoxError>;
    /// Removes the rule and its target; a rule already gone is not an error.
    async fn remove(&self, rule: &str) -> Result<(), BoxError>;
    /// The rule's name for an orchestration (within the scheduler's limits), or why not.
    fn rule_name(&self, export: &str, orchestration: &str) -> Result<String, Invalid>;
    /// Why this scheduler cannot change rules at all (missing settings), checked before the
    /// catalog is written so a change is refused whole.
    fn ready(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// On one machine nothing fires on its own: orchestrations are records that `sluice status`
/// shows with their next run, and `sluice run --due` (from cron, every minute) runs the
/// exports they make due.
pub struct RecordOnly;

#[async_trait]
impl Scheduler for RecordOnly {
    async fn put(&self, _: &RuleSpec) -> Result<(), BoxError> {
        Ok(())
    }
    async fn remove(&self, _: &str) -> Result<(), BoxError> {
        Ok(())
    }
    fn rule_name(&self, export: &str, orchestration: &str) -> Result<String, Invalid> {
        Ok(format!("local:{export}.{orchestration}"))
    }
}
