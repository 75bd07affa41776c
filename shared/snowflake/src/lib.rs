//! Sluice's Snowflake source, on `snowflake-connector-rs`: streamed incremental reads rendered
//! as Snowflake unloads values, and a server-side unload mode (`COPY INTO @stage`).

mod config;
mod credentials;
mod error;
pub mod render;
mod source;
pub mod unload;

pub use config::{Credentials, SnowflakeAuth, SnowflakeKind, SnowflakeSpec, SNOWFLAKE};
pub use credentials::auth_config;
pub use error::SnowflakeError;
pub use source::{SessionInfo, SnowflakeSource};
