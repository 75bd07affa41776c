//! The incremental strategies: how a table's rows are chosen each run, and which cursor a
//! successful run commits for the next.
//!
//! - this module: the strategy's name ([`Strategy`]) and the committed cursor ([`Cursor`]), value
//!   types that the ports, the manifest and the history carry;
//! - [`table`]: the one trait each strategy implements (plan the read, stream rows into parts,
//!   say what cursor to commit, tidy up after a commit);
//! - [`choose`]: the strategy of a table; the runner and reconciliation both ask it, so a run
//!   committed by its own process and one committed from its manifest by the next run leave
//!   the same cursor;
//! - [`full`], [`timestamp`], [`check`]: the strategies; [`plan`]: what a plan holds.

pub mod check;
pub mod choose;
pub mod drift;
pub mod full;
pub mod plan;
pub mod table;
pub mod timestamp;

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::layout::RunFolder;
use crate::value::Watermark;

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
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a committed run leaves for the next run of its table, tagged by what it is.
///
/// The history stores it in the form it always had (a [`Watermark`]): a value for a timestamp
/// run, and for a check run the text of its state file's key. [`Cursor::from_stored`] is the one
/// place that tells the two apart, so history written by earlier versions reads unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    /// A `timestamp` run's upper bound: a value of the incremental column.
    Value(Watermark),
    /// A `check` run's state file, by its key in the destination.
    CheckState(String),
}

impl Cursor {
    /// The cursor the history stored. A state file's key ends in the state file's name, which no
    /// timestamp does.
    pub fn from_stored(stored: Watermark) -> Cursor {
        match stored {
            Watermark::Text(key) if RunFolder::is_state(&key) => Cursor::CheckState(key),
            other => Cursor::Value(other),
        }
    }

    /// The form the history stores.
    pub fn stored(&self) -> Watermark {
        match self {
            Cursor::Value(w) => w.clone(),
            Cursor::CheckState(key) => Watermark::Text(key.clone()),
        }
    }

    /// The state file a check run left, if this is one.
    pub fn state(&self) -> Option<&str> {
        match self {
            Cursor::CheckState(key) => Some(key),
            Cursor::Value(_) => None,
        }
    }

    /// The strategy that leaves a cursor of this kind.
    pub fn left_by(&self) -> Strategy {
        match self {
            Cursor::Value(_) => Strategy::Timestamp,
            Cursor::CheckState(_) => Strategy::Check,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::Value(w) => write!(f, "{w}"),
            Cursor::CheckState(key) => f.write_str(key),
        }
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
    fn a_cursor_reads_back_from_what_the_history_already_holds() {
        let state = RunFolder::new("e", "t", "r").state();
        let stored_state = Watermark::Text(state.clone());
        assert_eq!(Cursor::from_stored(stored_state.clone()), Cursor::CheckState(state.clone()));
        assert_eq!(Cursor::CheckState(state).stored(), stored_state);
        for value in [Watermark::Text("2026-01-01 00:00:00".into()), Watermark::Int(7)] {
            let cursor = Cursor::from_stored(value.clone());
            assert_eq!(cursor, Cursor::Value(value.clone()));
            assert_eq!(cursor.stored(), value);
            assert_eq!(cursor.left_by(), Strategy::Timestamp);
        }
    }
}
