//! The ports: what the domain needs from the outside world, named for that need, one file each.
//! They depend on value types only (`value`, `manifest`, `format`, `strategy`'s names, `error`),
//! so an adapter crate compiles against them alone. Adapters live in their own crates
//! (`sluice-local`, `sluice-aws`, `sluice-snowflake`, `sluice-http`) and are named for what they
//! talk to; `tests/src/*` holds a contract suite per port that every adapter runs.

pub mod alerts;
pub mod events;
pub mod history;
pub mod ledger;
pub mod scheduler;
pub mod secrets;
pub mod source;
pub mod store;

pub use alerts::*;
pub use events::*;
pub use history::*;
pub use ledger::*;
pub use scheduler::*;
pub use secrets::*;
pub use source::*;
pub use store::*;
