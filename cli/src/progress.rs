//! A progress line on a terminal while a table exports: rows of the total, rate, bytes stored
//! and the time left; nothing otherwise, where the structured logs say the same. To show a
//! total the run counts the table's rows first (`wants_total`), one more pass over the source
//! that only a person watching pays for.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use std::time::Duration;

use sluice_core::run::{Observer, TableOutcome};
use sluice_core::value::Window;

use crate::output;

pub struct Progress {
    bar: Mutex<Option<ProgressBar>>,
    /// Draws nowhere (tests).
    hidden: bool,
}

impl Progress {
    pub fn new() -> Self {
        Progress { bar: Mutex::new(None), hidden: false }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const WITH_TOTAL: &str = "{prefix} {human_pos}/{human_len} rows  {per_sec}  {msg}  {eta} left [{wide_bar}]";
const WITHOUT_TOTAL: &str = "{spinner} {prefix} {human_pos} rows  {per_sec}  {msg}";

impl Observer for Progress {
    fn wants_total(&self) -> bool {
        true
    }

    fn table_started(&self, export: &str, table: &str, _window: &Window, total: Option<u64>) {
        let (bar, template) = match total {
            Some(n) => (ProgressBar::new(n), WITH_TOTAL),
            None => (ProgressBar::new_spinner(), WITHOUT_TOTAL),
        };
        if self.hidden {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("per_sec", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{} rows/s", output::count(s.per_sec() as u64));
            })
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{export}/{table}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        *self.bar() = Some(bar);
    }

    fn progress(&self, _table: &str, rows: u64, bytes: u64) {
        if let Some(bar) = self.bar().as_ref() {
            // A table that grew since it was counted: the total follows the rows read.
            if bar.length().is_some_and(|len| rows > len) {
                bar.set_length(rows);
            }
            bar.set_position(rows);
            bar.set_message(output::bytes(bytes));
        }
    }

    fn table_finished(&self, _outcome: &TableOutcome) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_table_shows_rows_of_its_total_and_never_less_than_read() {
        let p = Progress { bar: Mutex::new(None), hidden: true };
        assert!(p.wants_total());
        p.table_started("crm", "contacts", &Window::default(), Some(1000));
        p.progress("contacts", 250, 4096);
        {
            let bar = p.bar();
            let bar = bar.as_ref().unwrap();
            assert_eq!((bar.position(), bar.length()), (250, Some(1000)));
            assert_eq!(bar.message(), "4.0 KiB");
        }
        // Rows written after the count: the total grows with them instead of overflowing.
        p.progress("contacts", 1200, 8192);
        assert_eq!(p.bar().as_ref().unwrap().length(), Some(1200));
        p.table_started("crm", "deals", &Window::default(), None);
        p.progress("deals", 7, 10);
        assert_eq!(p.bar().as_ref().unwrap().length(), None, "without a count, a spinner");
    }
}
