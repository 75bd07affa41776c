//! Destinations in the config, of kinds core does not know: `destination = "…"` names a place
//! by a URL (a folder, `s3://bucket/prefix`), and the kind whose scheme it has reads it. The
//! folder kind lives in `sluice-local`; the S3 kind in `sluice-connect` (a build without the
//! AWS SDK still reads configs that name S3, and refuses only to write there). The binaries
//! assemble the kinds they ship (`sluice_connect::KINDS`); a URL no kind claims is refused when
//! the config is read.

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::validate::Validator;

/// A kind of destination a build can write to.
pub trait DestinationKind: Send + Sync {
    /// The kind's name (`"folder"`, `"s3"`).
    fn name(&self) -> &'static str;

    /// How a destination of this kind is written, for messages (`"s3://bucket/prefix"`).
    fn form(&self) -> &'static str;

    /// Whether `raw` is written for this kind (by its scheme).
    fn claims(&self, raw: &str) -> bool;

    /// Reads `raw`, reporting problems to `v` under `key`; `None` when there was one.
    fn parse(&self, key: &str, raw: &str, base_dir: &Path, v: &mut Validator) -> Option<Arc<dyn DestinationSettings>>;
}

/// One destination, read. Its `Display` is the URL it was read from, in its canonical form.
pub trait DestinationSettings: fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// The kind's name.
    fn kind(&self) -> &'static str;

    /// For the kind's own code (and the binaries opening its store) to get it back.
    fn as_any(&self) -> &dyn Any;

    /// A place on this machine (a folder), which a function running elsewhere cannot reach.
    fn is_local(&self) -> bool {
        false
    }
}

/// Where an export's parts and manifests go.
#[derive(Clone)]
pub struct Destination(Arc<dyn DestinationSettings>);

impl Destination {
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    pub fn settings(&self) -> &dyn DestinationSettings {
        self.0.as_ref()
    }

    /// The settings as the kind's own type, when the destination is of that kind.
    pub fn settings_as<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    pub fn is_local(&self) -> bool {
        self.0.is_local()
    }
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.to_string() == other.to_string()
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Reads `raw` with the kind that claims it, among `kinds`.
pub(crate) fn parse(
    key: &str,
    raw: &str,
    base_dir: &Path,
    kinds: &[&'static dyn DestinationKind],
    v: &mut Validator,
) -> Option<Destination> {
    let forms: Vec<&str> = kinds.iter().map(|k| k.form()).collect();
    match kinds.iter().find(|k| k.claims(raw)) {
        Some(kind) => kind.parse(key, raw, base_dir, v).map(Destination),
        None => {
            v.problem(key, format!("this build cannot write to {raw:?}"), format!("write {}", forms.join(" or ")));
            None
        }
    }
}

/// Reads a destination named on a command line, not in a config (`sluice verify --at`): the
/// kind that claims it reads it, or the error says what this build can read.
pub fn from_location(
    raw: &str,
    base_dir: &Path,
    kinds: &[&'static dyn DestinationKind],
) -> Result<Destination, String> {
    if !kinds.iter().any(|k| k.claims(raw)) {
        let forms: Vec<&str> = kinds.iter().map(|k| k.form()).collect();
        return Err(format!("this build cannot open {raw:?}: name {}", forms.join(" or ")));
    }
    let mut v = Validator::default();
    match parse("location", raw, base_dir, kinds, &mut v) {
        Some(d) if v.count() == 0 => Ok(d),
        _ => Err(v
            .problems
            .first()
            .map_or_else(|| format!("{raw:?} is not a destination"), |p| format!("{} ({})", p.problem, p.hint))),
    }
}
