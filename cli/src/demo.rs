//! `sluice demo`: the first thing a newcomer runs. It builds a sample SQLite database (contacts
//! and orders with `updated_at`), writes a config beside it, exports everything, shows the
//! status, changes a few rows, and exports again: only what changed is written.

use anyhow::{bail, Context, Result};
use clap::Args;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

use crate::app::App;
use crate::commands::{self, RunArgs};
use crate::exit;

/// A file that marks a folder as the demo's own, so re-running may replace it safely.
const MARKER: &str = ".sluice-demo";

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// The folder to build the demo in (replaced if it holds an earlier demo).
    #[arg(long, default_value = "sluice-demo")]
    pub dir: PathBuf,
    /// How many contacts the sample database holds (orders: three per contact).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub contacts: u32,
}

pub const DEMO_CONFIG: &str = r#"# Sluice config written by `sluice demo`. Paths are relative to this file.
version = 1
history = ".sluice/history.db"

[sources.sample]
kind = "sqlite"
path = "sample.db"

[[export]]
name = "crm_updates"
source = "sample"
destination = "exports"
schedule = "rate(15 minutes)"
state = "active"
# The reference file format: | delimited, header row, " quoting when needed, NULL as an empty
# field and the empty string as "". Uncompressed so the files are easy to look at.
format = { kind = "csv", delimiter = "|", header = true, compression = "none", max_file_size = "64MiB" }

  [[export.table]]
  name = "contacts"
  # Rows changed since the last run. A row is exported once its stamp is older than the lag
  # (5 seconds unless set), so a transaction committing just after its stamp is never skipped.
  incremental = { strategy = "timestamp", column = "updated_at" }

  [[export.table]]
  name = "orders"
  incremental = { strategy = "timestamp", column = "updated_at" }
"#;

/// A small deterministic generator, so every demo database is the same.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Builds the sample database: timestamps lie in the past 30 days, some values hold the
/// delimiter or quotes, some are NULL or empty.
pub fn build_sample(path: &Path, contacts: u32) -> Result<()> {
    let conn = Connection::open(path).with_context(|| format!("creating {}", path.display()))?;
    conn.execute_batch(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, first_name TEXT, last_name TEXT,
             company TEXT, lifecycle_stage TEXT, score REAL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL REFERENCES contacts(id),
             amount REAL NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL, note TEXT,
             created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
         CREATE INDEX contacts_updated_at ON contacts(updated_at);
         CREATE INDEX orders_updated_at ON orders(updated_at);",
    )?;
    let first = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances"];
    let last = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen"];
    let companies = ["Acme", "Globex", "Initech", "Umbrella | Labs", "\"Quoted\" Inc", "Hooli", ""];
    let stages = ["lead", "subscriber", "opportunity", "customer"];
    let mut rng = Lcg(42);
    let now = chrono::Utc::now();
    let stamp =
        |secs_ago: u64| (now - chrono::Duration::seconds(secs_ago as i64)).format("%Y-%m-%d %H:%M:%S").to_string();
    let tx = conn.unchecked_transaction()?;
    {
        let mut c = tx.prepare("INSERT INTO contacts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
        let mut o = tx.prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
        for id in 1..=contacts as u64 {
            let created = 86_400 * 30 - rng.next() % (86_400 * 20);
            let updated = created - rng.next() % (86_400 * 9);
            let last_name = (id % 13 != 0).then(|| rng.pick(&last));
            let score = (id % 11 != 0).then(|| (rng.next() % 10_000) as f64 / 100.0);
            c.execute(params![
                id,
                format!("user{id}@example.com"),
                rng.pick(&first),
                last_name,
                rng.pick(&companies),
                rng.pick(&stages),
                score,
                stamp(created),
                stamp(updated)
            ])?;
            for k in 0..3u64 {
                let oid = id * 3 + k - 2;
                let placed = updated - rng.next() % 86_400;
                let note = (oid % 7 == 0).then_some("gift wrap, \"fragile\"\nleave at door");
                o.execute(params![
                    oid,
                    id,
                    (rng.next() % 50_000) as f64 / 100.0,
                    rng.pick(&["USD", "EUR", "GBP"]),
                    rng.pick(&["placed", "paid", "shipped"]),
                    note,
                    stamp(placed),
                    stamp(placed.saturating_sub(rng.next() % 3600))
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// How long the demo waits before its second run: the default lag and the second in progress
/// must be over before rows stamped now are in a window.
const WAIT: std::time::Duration = std::time::Duration::from_millis(6500);

/// Changes a few rows the way an application would: updates stamp `updated_at` with now.
fn change_rows(path: &Path, contacts: u32) -> Result<(usize, usize)> {
    let conn = Connection::open(path)?;
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    let updated = conn.execute(
        "UPDATE contacts SET lifecycle_stage = 'customer', updated_at = ?1 WHERE id IN (3, 14, 15)",
        params![now],
    )?;
    let next: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM orders", [], |r| r.get(0))?;
    let mut inserted = 0;
    for (i, contact) in [3i64, 14].iter().enumerate() {
        inserted += conn.execute(
            "INSERT INTO orders VALUES (?1, ?2, 99.5, 'USD', 'placed', NULL, ?3, ?3)",
            params![next + i as i64, contact.min(&(contacts as i64)), now],
        )?;
    }
    Ok((updated, inserted))
}

pub async fn demo(args: &DemoArgs) -> Result<u8> {
    let dir = &args.dir;
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!("{} exists and is not a sluice demo folder; choose another with --dir", dir.display());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("replacing the earlier demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "made by `sluice demo`; safe to delete\n")?;
    let db = dir.join("sample.db");
    build_sample(&db, args.contacts)?;
    let config_path = dir.join("sluice.toml");
    std::fs::write(&config_path, DEMO_CONFIG)?;
    let shown = config_path.display();
    println!("Sluice demo in {}", dir.display());
    println!("  sample database  {} ({} contacts, {} orders)", db.display(), args.contacts, args.contacts * 3);
    println!("  config           {shown}\n");

    let open = || async { App::open(sluice_connect::load_config(&config_path)?, None, None).await };
    let run_args = RunArgs::default();

    println!("1. First run: every row up to now is exported.");
    let code = commands::run(open().await?, &run_args, false).await?;
    if code != exit::OK {
        return Ok(code);
    }
    println!("\n2. Status after the first run:");
    commands::status(open().await?, false).await?;

    let (updated, inserted) = change_rows(&db, args.contacts)?;
    println!("\n3. The application updates {updated} contacts and places {inserted} orders.");
    println!(
        "   Waiting {:.1} s: a row is exported once its stamp is older than the lag (5 s unless set), so a \
         transaction that commits just after taking its stamp is never skipped.",
        WAIT.as_secs_f64()
    );
    tokio::time::sleep(WAIT).await;
    println!("\n4. Second run: only what changed since the watermark is exported.");
    let code = commands::run(open().await?, &run_args, false).await?;
    if code != exit::OK {
        return Ok(code);
    }
    println!("\n5. History of export crm_updates:");
    commands::history(
        open().await?,
        &commands::HistoryArgs { command: None, export: Some("crm_updates".into()), limit: 10 },
        false,
    )
    .await?;

    println!("\n6. Verify: the files prove each table's runs one unbroken chain, every part as its manifest says.");
    let verify = crate::verify::VerifyArgs { export: None, table: None, since: None, at: None };
    let code = crate::verify::verify_exports(open().await?, &verify, false).await?;
    if code != exit::OK {
        return Ok(code);
    }
    println!("\nFiles are under {}/exports/<export>/<table>/<run>/ (parts, then manifest.json).", dir.display());
    let me = std::env::args().next().unwrap_or_else(|| "sluice".into());
    println!("Next: {me} --config {shown} plan | status | history crm_updates | verify | run --full-refresh");
    Ok(exit::OK)
}
