//! Errors of the AWS adapters. SDK errors are kept whole as the `source`, so the printed chain
//! carries the service's code and message; conditional failures are mapped to domain meaning
//! where the adapter knows it (see `dynamo_history.rs`).

use sluice_core::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("S3 {op} s3://{bucket}/{key} failed")]
    S3 {
        op: &'static str,
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("S3 could not delete {failed} object(s) under s3://{bucket}/{prefix} (first: {first})")]
    PartialDelete { bucket: String, prefix: String, failed: usize, first: String },
    #[error(
        "S3 object s3://{bucket}/{key} would need more than {max} parts; raise the part size or lower max_file_size"
    )]
    TooManyParts { bucket: String, key: String, max: i32 },
    #[error("DynamoDB {op} on table {table} failed")]
    Dynamo {
        op: &'static str,
        table: String,
        #[source]
        source: BoxError,
    },
    #[error("history table {table} holds an item that cannot be read ({what}); it was written by a newer sluice or edited by hand")]
    Corrupt { table: String, what: String },
    #[error("EventBridge PutEvents to bus {bus} failed")]
    Events {
        bus: String,
        #[source]
        source: BoxError,
    },
    #[error("EventBridge rejected the event on bus {bus}: {code}: {message}")]
    EventRejected { bus: String, code: String, message: String },
}

pub(crate) fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> BoxError {
    Box::new(e)
}
