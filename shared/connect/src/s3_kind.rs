//! An S3 destination: `destination = "s3://bucket/prefix"`. Its store is `sluice_aws::S3Store`;
//! the kind is here, not beside it, because a build without the AWS SDK (the CLI's default)
//! still reads configs that name S3 (`validate`, `plan`, `status`), and refuses only to write.

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use sluice_core::spec::{DestinationKind, DestinationSettings, Validator};

/// The S3 kind, as the binaries list it.
pub static S3: S3Kind = S3Kind;

pub struct S3Kind;

/// A bucket and the prefix (no leading or trailing `/`) keys go under.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl DestinationKind for S3Kind {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn form(&self) -> &'static str {
        "s3://bucket/prefix"
    }

    fn claims(&self, raw: &str) -> bool {
        raw.starts_with("s3://")
    }

    fn parse(&self, key: &str, raw: &str, _base_dir: &Path, v: &mut Validator) -> Option<Arc<dyn DestinationSettings>> {
        let rest = raw.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            v.problem(key, "s3 destination without a bucket", "write s3://bucket/prefix");
            return None;
        }
        Some(Arc::new(S3Location { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() }))
    }
}

impl DestinationSettings for S3Location {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}
