//! Orchestrations' rules in EventBridge: one scheduled rule per orchestration on the default
//! bus (scheduled rules live only there), named `<prefix><export>.<orchestration>`, with the
//! export function as its one target and `{"export": …, "orchestration": …}` as its input.
//!
//! The prefix is the stack's (`<stack>-orch-`), so the control function's role and the export
//! function's resource policy can name exactly these rules with one wildcard.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_eventbridge::Client;

use sluice_core::orchestrate::{RuleSpec, Scheduler};
use sluice_core::BoxError;

/// EventBridge's limit on a rule name.
pub const MAX_RULE_NAME: usize = 64;
/// The one target id of an orchestration's rule.
const TARGET_ID: &str = "export";

pub struct EventBridgeScheduler {
    client: Client,
    prefix: String,
    /// The export function's ARN.
    target: String,
}

#[derive(Debug, thiserror::Error)]
#[error("EventBridge {op} of rule {rule} failed")]
pub struct RuleError {
    op: &'static str,
    rule: String,
    #[source]
    source: BoxError,
}

impl EventBridgeScheduler {
    pub fn new(client: Client, prefix: &str, target: &str) -> Self {
        EventBridgeScheduler { client, prefix: prefix.into(), target: target.into() }
    }

    fn failed<E: std::error::Error + Send + Sync + 'static>(op: &'static str, rule: &str, e: E) -> BoxError {
        Box::new(RuleError { op, rule: rule.into(), source: Box::new(e) })
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn put(&self, rule: &RuleSpec) -> Result<(), BoxError> {
        let state = if rule.enabled { RuleState::Enabled } else { RuleState::Disabled };
        self.client
            .put_rule()
            .name(&rule.rule)
            .schedule_expression(&rule.schedule)
            .state(state)
            .description(format!("Sluice: runs export {} (orchestration {})", rule.export, rule.orchestration))
            .send()
            .await
            .map_err(|e| Self::failed("PutRule", &rule.rule, e))?;
        let target = Target::builder()
            .id(TARGET_ID)
            .arn(&self.target)
            .input(rule.input())
            .build()
            .map_err(|e| Self::failed("PutTargets", &rule.rule, e))?;
        let out = self
            .client
            .put_targets()
            .rule(&rule.rule)
            .targets(target)
            .send()
            .await
            .map_err(|e| Self::failed("PutTargets", &rule.rule, e))?;
        if out.failed_entry_count() > 0 {
            let first = out.failed_entries().first();
            return Err(format!(
                "EventBridge refused the target of rule {}: {}: {}",
                rule.rule,
                first.and_then(|f| f.error_code()).unwrap_or("unknown"),
                first.and_then(|f| f.error_message()).unwrap_or("")
            )
            .into());
        }
        Ok(())
    }

    async fn remove(&self, rule: &str) -> Result<(), BoxError> {
        match self.client.remove_targets().rule(rule).ids(TARGET_ID).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => return Ok(()),
            Err(e) => return Err(Self::failed("RemoveTargets", rule, e)),
        }
        match self.client.delete_rule().name(rule).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(Self::failed("DeleteRule", rule, e)),
        }
    }

    fn rule_name(&self, export: &str, orchestration: &str) -> Result<String, sluice_core::error::Invalid> {
        let name = format!("{}{export}.{orchestration}", self.prefix);
        if name.len() > MAX_RULE_NAME {
            return Err(format!(
                "the rule for orchestration {orchestration:?} of export {export:?} would be named {name:?}, \
                 longer than EventBridge's {MAX_RULE_NAME} characters: use shorter names"
            )
            .into());
        }
        Ok(name)
    }
}
