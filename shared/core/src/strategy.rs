//! The incremental strategies, as a type: how a table's rows are chosen each run, and which
//! cursor a successful run commits. The runner and reconciliation ask the same rule, so a run
//! committed by its own process and one committed from its manifest by the next run leave the
//! same cursor.

use serde::{Deserialize, Serialize};

use crate::layout::RunFolder;
use crate::value::{Watermark, Window};

/// Stored as its lowercase name (`"full"`, `"timestamp"`, `"check"`) in run records, manifests
/// and events, as it always was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every row, every run; no cursor.
    Full,
    /// Rows whose stamp is in the window; the cursor is the window's upper bound.
    Timestamp,
    /// Rows whose checked columns changed, and deletes; the cursor is the run's state file.
    Check,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Full => "full",
            Strategy::Timestamp => "timestamp",
            Strategy::Check => "check",
        }
    }

    /// The cursor a successful run of this strategy commits: a timestamp run's window `high`,
    /// or the cursor it started from when the window was empty (a clock behind the watermark
    /// never moves it backwards); a check run's state file, written before its manifest; none
    /// for a full copy.
    pub fn cursor_to_commit(self, window: &Window, base: Option<&Watermark>, folder: &RunFolder) -> Option<Watermark> {
        match self {
            Strategy::Full => None,
            Strategy::Timestamp => match (&window.high, window.is_empty()) {
                (Some(high), false) => Some(high.clone()),
                _ => base.cloned(),
            },
            Strategy::Check => Some(Watermark::Text(folder.state())),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_as_the_names_history_already_holds() {
        for (s, name) in [(Strategy::Full, "full"), (Strategy::Timestamp, "timestamp"), (Strategy::Check, "check")] {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Strategy>(&format!("\"{name}\"")).unwrap(), s);
            assert_eq!(s.to_string(), name);
        }
    }

    #[test]
    fn each_strategy_commits_its_own_cursor() {
        let folder = RunFolder::new("e", "t", "r");
        let base = Watermark::Text("2026-01-01".into());
        let high = Watermark::Text("2026-01-02".into());
        let window = Window { low: Some(base.clone()), high: Some(high.clone()) };
        let empty = Window { low: Some(base.clone()), high: Some(base.clone()) };
        assert_eq!(Strategy::Timestamp.cursor_to_commit(&window, Some(&base), &folder), Some(high));
        assert_eq!(Strategy::Timestamp.cursor_to_commit(&empty, Some(&base), &folder), Some(base.clone()));
        assert_eq!(
            Strategy::Check.cursor_to_commit(&window, Some(&base), &folder),
            Some(Watermark::Text(folder.state()))
        );
        assert_eq!(Strategy::Full.cursor_to_commit(&window, Some(&base), &folder), None);
    }
}
