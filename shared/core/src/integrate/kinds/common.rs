//! What every kind's validation shares.

use serde::de::DeserializeOwned;
use std::path::Path;

use crate::integrate::raw::RawIntegration;
use crate::spec::source::Section;
use crate::spec::validate::Validator;

/// The kind's own keys of an integration as its raw type `T`: every key the common keys do not
/// take is the kind's, and one it does not take (`allowed`) is a problem naming it and what the
/// kind takes.
pub(crate) fn own_keys<T: DeserializeOwned>(
    v: &mut Validator,
    key: &str,
    kind: &str,
    raw: &RawIntegration,
    allowed: &[&str],
) -> Option<T> {
    let section = Section { key, keys: raw.rest.clone(), base_dir: Path::new("") };
    section.parse(kind, allowed, ", besides the keys every integration takes (docs/integrations.md)", v)
}
