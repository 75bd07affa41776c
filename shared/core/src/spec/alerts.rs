//! An export's alerts (`[export.alerts]`), validated. Every key is optional: an export without
//! the section is alerted on a failed run, on late rows, on a delivery that rejected rows, and,
//! when it has a schedule, on going twice its longest interval without a successful run.

use serde::Deserialize;
use std::time::Duration;

use super::validate::{parse_duration, Validator};
use crate::trust::TokenSource;

/// How long an export may go without a successful run before `freshness` fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// Twice the longest interval between the export's scheduled runs; no alert for an export
    /// without a schedule (nothing says when it should have run).
    #[default]
    FromSchedule,
    After(Duration),
    Off,
}

/// A band around the trailing median of the rows of the last runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowsBand {
    /// The band's half width as a share of the median: 0.5 fires below half or above 1.5 times.
    pub share: f64,
    /// How many earlier successful runs the median is taken over (at least 3 must exist).
    pub runs: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertSpec {
    pub failed_run: bool,
    pub freshness: Freshness,
    /// Fires when this many runs in a row exported no row.
    pub zero_rows: Option<u32>,
    pub rows_band: Option<RowsBand>,
    /// Fires when a run takes longer.
    pub slower_than: Option<Duration>,
    /// Fires when a delivery rejects more than this share of a manifest's rows (0: any row).
    pub rejected_share: Option<f64>,
    pub late_rows: bool,
    /// A Slack-compatible incoming webhook each alert is also posted to. Its URL is a secret
    /// (whoever has it can post), so the config names where it is, never the URL.
    pub webhook: Option<TokenSource>,
}

impl Default for AlertSpec {
    fn default() -> Self {
        AlertSpec {
            failed_run: true,
            freshness: Freshness::FromSchedule,
            zero_rows: None,
            rows_band: None,
            slower_than: None,
            rejected_share: Some(0.0),
            late_rows: true,
            webhook: None,
        }
    }
}

pub const DEFAULT_BAND_RUNS: u32 = 10;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    failed_run: Option<bool>,
    freshness: Option<String>,
    zero_rows: Option<i64>,
    rows_band: Option<f64>,
    rows_band_runs: Option<i64>,
    slower_than: Option<String>,
    rejected_share: Option<toml::Value>,
    late_rows: Option<bool>,
    webhook: Option<String>,
}

impl Validator {
    pub(super) fn alerts(&mut self, key: &str, raw: RawAlerts) -> AlertSpec {
        let mut spec = AlertSpec::default();
        if let Some(b) = raw.failed_run {
            spec.failed_run = b;
        }
        if let Some(b) = raw.late_rows {
            spec.late_rows = b;
        }
        spec.freshness = match raw.freshness.as_deref().map(str::trim) {
            None => Freshness::FromSchedule,
            Some("off") => Freshness::Off,
            Some(d) => match parse_duration(d).filter(|d| d.as_secs() >= 1) {
                Some(d) => Freshness::After(d),
                None => {
                    self.problem(
                        format!("{key}.freshness"),
                        format!("{d:?} is not a duration of a second or more"),
                        "write a duration such as \"26h\" or \"90m\", or \"off\"",
                    );
                    Freshness::Off
                }
            },
        };
        spec.zero_rows = match raw.zero_rows {
            None | Some(0) => None,
            Some(n @ 1..=1000) => Some(n as u32),
            Some(n) => {
                self.problem(
                    format!("{key}.zero_rows"),
                    format!("{n} is out of range"),
                    "use 1 to 1000 runs, or 0 for no alert",
                );
                None
            }
        };
        let runs = match raw.rows_band_runs {
            None => DEFAULT_BAND_RUNS,
            Some(n @ 3..=1000) => n as u32,
            Some(n) => {
                self.problem(format!("{key}.rows_band_runs"), format!("{n} is out of range"), "use 3 to 1000 runs");
                DEFAULT_BAND_RUNS
            }
        };
        spec.rows_band = match raw.rows_band {
            None => {
                if raw.rows_band_runs.is_some() {
                    self.problem(
                        format!("{key}.rows_band_runs"),
                        "set without rows_band",
                        "add rows_band (the band's half width, e.g. 0.5), or remove rows_band_runs",
                    );
                }
                None
            }
            Some(share) if share > 0.0 && share.is_finite() => Some(RowsBand { share, runs }),
            Some(share) => {
                self.problem(
                    format!("{key}.rows_band"),
                    format!("{share} is not above 0"),
                    "write the band's half width as a share of the median: 0.5 alerts below half or above one and a half times it",
                );
                None
            }
        };
        spec.slower_than = match raw.slower_than.as_deref() {
            None => None,
            Some(d) => match parse_duration(d).filter(|d| !d.is_zero()) {
                Some(d) => Some(d),
                None => {
                    self.problem(
                        format!("{key}.slower_than"),
                        format!("{d:?} is not a duration"),
                        "write a duration such as \"20m\" or \"90s\"",
                    );
                    None
                }
            },
        };
        spec.rejected_share = match raw.rejected_share {
            None => Some(0.0),
            Some(toml::Value::String(s)) if s == "off" => None,
            Some(toml::Value::Float(f)) if (0.0..1.0).contains(&f) => Some(f),
            Some(toml::Value::Integer(0)) => Some(0.0),
            Some(other) => {
                self.problem(
                    format!("{key}.rejected_share"),
                    format!("{other} is not a share below 1"),
                    "write a share of a delivery's rows below 1: 0 (any rejected row, the default), 0.05, …, or \"off\"",
                );
                None
            }
        };
        spec.webhook = match raw.webhook.as_deref() {
            None => None,
            Some(w) => match w.split_once(':') {
                Some(("env", var)) if !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    Some(TokenSource::Env(var.to_string()))
                }
                Some(("secretsmanager", id)) if !id.is_empty() => Some(TokenSource::SecretsManager(id.to_string())),
                // A pasted webhook URL is itself the secret: never echo it.
                _ => {
                    self.problem(
                        format!("{key}.webhook"),
                        "not a secret location",
                        "use \"env:<VARIABLE>\" or \"secretsmanager:<secret name or ARN>\" holding the webhook's URL; the URL is a secret and never goes in the config file",
                    );
                    None
                }
            },
        };
        spec
    }
}
