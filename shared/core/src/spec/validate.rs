//! What every part of the config's validation shares: a problem (key, what is wrong, what to
//! do), the error that lists them all, the collector that gathers them, and the parsers of
//! names, durations and sizes.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One thing wrong with a config file: the key (a dotted path), what is wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub problem: String,
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass --config PATH or create sluice.toml (see docs/configuration.md)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
    #[error("{path}: no export named {name:?}; the file defines: {known}")]
    UnknownExport { path: PathBuf, name: String, known: String },
    #[error("{path}: no integration named {name:?}; the file defines: {known}")]
    UnknownIntegration { path: PathBuf, name: String, known: String },
}

/// Names of exports and sources: short, lower-case identifiers that are safe in keys and paths.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses `30s`, `5m`, `2h`, `1d`, `250ms` (one number, one unit).
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// Parses a byte size: an integer, or `64MiB`, `500KB`, `1GiB`, `4096B`.
pub fn parse_size(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Gathers every problem of a file, so they are reported at once; a kind validating its
/// section reports to it as core does.
#[derive(Default)]
pub struct Validator {
    pub(crate) problems: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
}

impl Validator {
    /// Records a problem: the key (a dotted path), what is wrong, what to do.
    pub fn problem(&mut self, key: impl Into<String>, problem: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), problem: problem.into(), hint: hint.into() });
    }

    /// Records something allowed but worth knowing.
    pub fn warning(&mut self, key: impl Into<String>, problem: impl Into<String>, hint: impl Into<String>) {
        self.warnings.push(Problem { key: key.into(), problem: problem.into(), hint: hint.into() });
    }

    /// Problems recorded so far: a validation compares it before and after a section.
    pub fn count(&self) -> usize {
        self.problems.len()
    }
}
