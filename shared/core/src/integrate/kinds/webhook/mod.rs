//! `webhook`: any JSON API. The records as an array (or inside a body template), a bearer
//! token, an `Idempotency-Key`; per-record errors from a 2xx answer's `errors`.

pub mod api;
pub mod spec;

pub use self::api::Webhook;
pub use self::spec::WebhookSpec;
