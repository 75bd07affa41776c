//! Sluice's domain: export specs, the run planner and its watermark rules, encoders, rolling
//! parts, the manifest, and the ports (traits) that adapters implement. Apart from reading its
//! config file, nothing here talks to a database, a file system or a cloud service directly.

pub mod alert;
pub mod catalog;
pub mod control;
pub mod cursor;
pub mod error;
pub mod format;
pub mod integrate;
pub mod layout;
pub mod manifest;
pub mod orchestrate;
pub mod part;
pub mod ports;
pub mod request;
pub mod run;
pub mod schedule;
pub mod spec;
pub mod sql;
pub mod status;
pub mod stop;
pub mod strategy;
pub mod trust;
pub mod value;
pub mod verify;

pub use error::{BoxError, Error, HistoryError, Result};
