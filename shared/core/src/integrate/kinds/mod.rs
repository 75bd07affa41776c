//! Integration kinds, one folder each: its keys and their validation (`spec.rs`), its defaults
//! for the common keys (batch size, rate and daily limits, NULLs), the requests it builds and how
//! it reads the answers (`api.rs`). The delivery engine (claim, stream, batch, pace, retry,
//! split, checkpoint, failures) names no kind: it asks the kind's [`Api`].
//!
//! Adding a kind is a folder beside `webhook/`, a variant here with its arm in each method, and
//! its section in docs/integrations.md.

pub mod common;
pub mod hubspot;
pub mod webhook;

use self::hubspot::{HubspotContacts, HubspotSpec};
use self::webhook::{Webhook, WebhookSpec};
use crate::integrate::api::Api;
use crate::integrate::raw::{KindDefaults, RawIntegration};
use crate::spec::validate::Validator;

/// The kinds this build knows, by the name `kind` takes.
pub const KINDS: &[&str] = &["webhook", "hubspot_contacts"];

/// An integration's kind with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum IntegrationKind {
    Webhook(WebhookSpec),
    HubspotContacts(HubspotSpec),
}

impl IntegrationKind {
    /// The name `kind` takes in the config.
    pub fn name(&self) -> &'static str {
        match self {
            IntegrationKind::Webhook(_) => "webhook",
            IntegrationKind::HubspotContacts(_) => "hubspot_contacts",
        }
    }

    /// Validates the kind's own keys of `raw`, whose `kind` names it; problems go to `v`.
    /// `None` with a problem reported when the kind is unknown or its keys are wrong.
    pub(crate) fn parse(v: &mut Validator, key: &str, raw: &RawIntegration) -> Option<IntegrationKind> {
        match raw.kind.as_str() {
            "webhook" => webhook::spec::parse(v, key, raw).map(IntegrationKind::Webhook),
            "hubspot_contacts" => hubspot::spec::parse(v, key, raw).map(IntegrationKind::HubspotContacts),
            other => {
                let known: Vec<String> = KINDS.iter().map(|k| format!("{k:?}")).collect();
                v.problem(
                    format!("{key}.kind"),
                    format!("unknown integration kind {other:?}"),
                    format!("use {} (see docs/integrations.md to add one)", known.join(" or ")),
                );
                None
            }
        }
    }

    /// What the kind's API needs of the common keys by default.
    pub fn defaults_of(kind: &str) -> KindDefaults {
        match kind {
            "hubspot_contacts" => hubspot::spec::defaults(),
            _ => KindDefaults::default(),
        }
    }

    /// Where the kind sends the token: its URL or endpoint.
    pub fn url(&self) -> &str {
        match self {
            IntegrationKind::Webhook(w) => &w.url,
            IntegrationKind::HubspotContacts(h) => &h.endpoint,
        }
    }

    /// The kind's API: its requests and how its answers are read.
    pub fn api(&self) -> Box<dyn Api> {
        match self {
            IntegrationKind::Webhook(w) => Box::new(Webhook(w.clone())),
            IntegrationKind::HubspotContacts(h) => Box::new(HubspotContacts(h.clone())),
        }
    }
}
