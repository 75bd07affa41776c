//! HubSpot contacts' keys (`endpoint`, `id_property`), validated, and the limits of HubSpot's API
//! that the common keys default to.

use std::time::Duration;

use serde::Deserialize;

use crate::integrate::kinds::common::own_keys;
use crate::integrate::raw::{is_plain_url, KindDefaults, RateLimit, RawIntegration};
use crate::spec::validate::Validator;

/// HubSpot's API base; a test or a proxy may replace it with `endpoint`.
pub const HUBSPOT_ENDPOINT: &str = "https://api.hubapi.com";
/// HubSpot's batch endpoints take at most 100 inputs.
pub const HUBSPOT_MAX_BATCH: usize = 100;

/// HubSpot's limits: a private app token always; batches of at most 100 inputs; the smallest
/// private-app allowance (100 requests per 10 seconds) and daily allowance (250,000 requests on
/// the Free and Starter tiers); NULLs left out, as a null would clear the contact's value.
pub fn defaults() -> KindDefaults {
    KindDefaults {
        needs_token: Some(
            "HubSpot needs a private app token: token = \"secretsmanager:<secret>\" or \"env:<VARIABLE>\"",
        ),
        max_batch: HUBSPOT_MAX_BATCH,
        rate_limit: Some(RateLimit { requests: 100, per: Duration::from_secs(10) }),
        daily_limit: Some(250_000),
        omit_nulls: true,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HubspotSpec {
    pub endpoint: String,
    /// The unique property contacts are matched on (`email`, or a custom unique property).
    pub id_property: String,
}

/// The keys only HubSpot contacts take.
const KEYS: &[&str] = &["endpoint", "id_property"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHubspot {
    endpoint: Option<String>,
    id_property: Option<String>,
}

pub(crate) fn parse(v: &mut Validator, key: &str, raw: &RawIntegration) -> Option<HubspotSpec> {
    let before = v.problems.len();
    let own: RawHubspot = own_keys(v, key, "hubspot_contacts", raw, KEYS)?;
    let endpoint = own.endpoint.unwrap_or_else(|| HUBSPOT_ENDPOINT.into());
    if !is_plain_url(&endpoint) {
        v.problem(format!("{key}.endpoint"), "not an http(s) base URL", "remove it to use https://api.hubapi.com");
    } else if !crate::trust::secure_transport(&endpoint) {
        v.problem(
            format!("{key}.endpoint"),
            "plain http, and the token would travel in clear text",
            "use https:// (plain http is allowed only to a loopback address, for tests)",
        );
    }
    let id_property = own.id_property.unwrap_or_else(|| "email".into());
    if id_property.is_empty() {
        v.problem(format!("{key}.id_property"), "empty", "use email, or a unique custom property");
    }
    if let Some(props) = &raw.properties {
        if !props.contains_key(&id_property) {
            v.problem(
                format!("{key}.properties"),
                format!("no property {id_property:?} to match contacts on"),
                format!("map a column to {id_property} (e.g. {id_property} = \"EMAIL\") or set id_property"),
            );
        }
    }
    (v.problems.len() == before).then(|| HubspotSpec { endpoint: endpoint.trim_end_matches('/').into(), id_property })
}
