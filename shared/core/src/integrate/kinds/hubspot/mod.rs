//! `hubspot_contacts`: HubSpot's batch upsert of contacts, matched on a unique property.

pub mod api;
pub mod spec;

pub use self::api::HubspotContacts;
pub use self::spec::{HubspotSpec, HUBSPOT_ENDPOINT, HUBSPOT_MAX_BATCH};
