//! A progress line on a terminal (rows, rows/s, bytes) while a table exports; nothing otherwise,
//! where the structured logs say the same.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_core::run::{Observer, TableOutcome};
use sluice_core::value::Window;

use crate::output;

pub struct Progress {
    bar: Mutex<Option<(ProgressBar, Instant)>>,
}

impl Progress {
    pub fn new() -> Self {
        Progress { bar: Mutex::new(None) }
    }
}

impl Observer for Progress {
    fn table_started(&self, export: &str, table: &str, _window: &Window) {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(format!("{export}/{table}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some((bar, Instant::now()));
    }

    fn progress(&self, _table: &str, rows: u64, bytes: u64) {
        if let Some((bar, started)) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{} rows  {} rows/s  {}",
                output::count(rows),
                output::count((rows as f64 / secs) as u64),
                output::bytes(bytes)
            ));
        }
    }

    fn table_finished(&self, _outcome: &TableOutcome) {
        if let Some((bar, _)) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}
