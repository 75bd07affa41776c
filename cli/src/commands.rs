//! The commands. Each loads the config, builds the adapters through `App`, calls into
//! `sluice_core`, and prints a table or JSON.

use anyhow::{anyhow, Result};
use clap::Args;
use serde::Serialize;
use sluice_core::strategy::{Cursor, Strategy};
use std::io::IsTerminal;
use std::time::Duration;

use sluice_core::format::FileFormat;
use sluice_core::layout::RunFolder;
use sluice_core::manifest::Changes;
use sluice_core::ports::{RunState, UnloadTarget};
use sluice_core::run::{error_chain, ExportRunSummary, Observer, Ports, Quiet, RunOptions, Runner};
use sluice_core::spec::{Config, ConfigError, ExportSpec, ExportState, TableMode};
use sluice_core::status::{ExportStatus, Stores};
use sluice_core::strategy::choose::plan_table;
use sluice_core::value::Window;
use sluice_core::Error as CoreError;

use crate::app::App;
use crate::progress::Progress;
use crate::{demo, exit, output, Cli, Command};

/// A mistake in how the command was called (exit code 2), as opposed to a failure while running.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// How long a run holds its export's lease without renewing it. A dead process's lease on this
/// machine is taken over at once; one on another machine waits this long.
const LEASE_TTL: Duration = Duration::from_secs(3600);

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Run only this export (repeatable). Default: every active export.
    #[arg(long = "export", short = 'e', value_name = "NAME")]
    pub exports: Vec<String>,
    /// Run only this table of the export(s) (repeatable).
    #[arg(long = "table", short = 't', value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Ignore the committed watermark: export every row up to now, then commit the new bound.
    #[arg(long)]
    pub full_refresh: bool,
    /// Do not deliver the new manifests to the export's integrations (run `sluice integrate`
    /// later, or let S3 events do it).
    #[arg(long)]
    pub no_integrate: bool,
    /// Run only the active exports that are due: a schedule of theirs (a running
    /// orchestration's, or the file's `schedule`) has come round since their last run. For a
    /// cron line on one machine: `* * * * * sluice run --due`.
    #[arg(long, conflicts_with = "exports")]
    pub due: bool,
    /// Set by `sluice backfill`: the bounded window to export again instead.
    #[arg(skip)]
    pub backfill: Option<sluice_core::run::Backfill>,
}

/// The active exports a schedule has come round for since their last run started: a managed
/// export's running orchestrations, counted from their creation (an orchestration's first run
/// is its schedule's first time after it was created, as its EventBridge rule's is and as
/// `orchestrations list` shows); a file export's `schedule`, counted from its last run (one
/// that never ran is due at once).
async fn due_exports(app: &App) -> Result<Vec<&ExportSpec>> {
    let now = chrono::Utc::now();
    let mut due = Vec::new();
    for export in app.config.exports.iter().filter(|e| e.state == ExportState::Active) {
        // Each schedule with what a rate counts from: an orchestration's creation (as its
        // EventBridge rule does), or None for the export's last run.
        type Counted = (String, Option<chrono::DateTime<chrono::Utc>>);
        let schedules: Vec<Counted> = match app.catalog.entry(&export.name).await? {
            Some(entry) => entry
                .orchestrations
                .iter()
                .filter(|o| !o.paused)
                .map(|o| (o.schedule.clone(), Some(o.created_at)))
                .collect(),
            None => export.schedule.iter().map(|s| (s.clone(), None)).collect(),
        };
        if schedules.is_empty() {
            continue;
        }
        let last = app.history.runs(&export.name, 1).await?.first().map(|r| r.started_at);
        let is_due = |(schedule, anchor): &Counted| {
            // From the later of its creation and the export's last run.
            let since = match (anchor, last) {
                (Some(created), Some(last)) => Some((*created).max(last)),
                (Some(created), None) => Some(*created),
                (None, last) => last,
            };
            match since {
                None => true,
                Some(since) => sluice_core::schedule::next_after(schedule, anchor.unwrap_or(since), since)
                    .is_some_and(|next| next <= now),
            }
        };
        if schedules.iter().any(is_due) {
            due.push(export);
        }
    }
    Ok(due)
}

#[derive(Args, Debug, Clone, Default)]
pub struct PlanArgs {
    /// Plan only this export (repeatable). Default: every export.
    #[arg(long = "export", short = 'e', value_name = "NAME")]
    pub exports: Vec<String>,
    /// Plan as for `run --full-refresh`.
    #[arg(long)]
    pub full_refresh: bool,
}

#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<crate::verify::HistoryCommand>,
    /// The export whose runs to show.
    #[arg(required = true)]
    pub export: Option<String>,
    /// How many run records to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

pub async fn dispatch(cli: Cli) -> u8 {
    let result = match &cli.command {
        Command::Demo(args) => demo::demo(args).await,
        Command::Validate => validate(&cli, cli.json),
        Command::Schedules(args) => load(&cli).and_then(|config| crate::schedules::schedules(&config, args, cli.json)),
        Command::Run(args) => with_app(&cli, |app| run(app, args, cli.json)).await,
        Command::Plan(args) => with_app(&cli, |app| plan(app, args, cli.json)).await,
        Command::Console(args) => with_app(&cli, |app| crate::console::console(app, args)).await,
        Command::Alerts(cmd) => with_app(&cli, |app| crate::alerts::alerts(app, cmd, cli.json)).await,
        Command::Status => with_app(&cli, |app| status(app, cli.json)).await,
        Command::History(args) => match &args.command {
            Some(crate::verify::HistoryCommand::Rebuild(r)) => {
                with_app(&cli, |app| crate::verify::rebuild(app, r, cli.json)).await
            }
            None => with_app(&cli, |app| history(app, args, cli.json)).await,
        },
        Command::Verify(args) => crate::verify::verify(&cli, args, cli.json).await,
        Command::State(cmd) => with_app(&cli, |app| crate::state::state(app, cmd, cli.json)).await,
        Command::Backfill(args) => {
            let run_args = crate::state::backfill_run(args);
            with_app(&cli, |app| async move {
                // A table the export lacks is a mistake in the command (exit 2), as for `run`.
                let export = app.export(&args.export).await?;
                if !export.tables.iter().any(|t| t.name == args.table) {
                    let has: Vec<&str> = export.tables.iter().map(|t| t.name.as_str()).collect();
                    return Err(anyhow::anyhow!(Usage(format!(
                        "export {:?} has no table {:?}; it has: {}",
                        export.name,
                        args.table,
                        has.join(", ")
                    ))));
                }
                run(app, &run_args, cli.json).await
            })
            .await
        }
        Command::CheckConnection(args) => with_app(&cli, |app| check_connection(app, args, cli.json)).await,
        Command::Exports(cmd) => with_app(&cli, |app| crate::exports::exports(app, cmd, cli.json)).await,
        Command::Orchestrations(cmd) => {
            with_app(&cli, |app| crate::orchestrations::orchestrations(app, cmd, cli.json)).await
        }
        Command::Apply(args) => with_app(&cli, |app| crate::exports::apply(app, args, cli.json)).await,
        Command::Integrate(args) => with_app(&cli, |app| crate::integrate::integrate(app, args, cli.json)).await,
        Command::Migrate => migrate(&cli, cli.json).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            exit_code(&e)
        }
    }
}

/// The whole cause chain, without repeating a cause a message already quotes.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<Usage>().is_some() {
        return exit::USAGE;
    }
    match e.downcast_ref::<CoreError>() {
        Some(CoreError::Config(_)) => exit::USAGE,
        Some(CoreError::LeaseHeld { .. }) => exit::BUSY,
        _ => exit::FAILED,
    }
}

pub fn load(cli: &Cli) -> Result<Config> {
    let config = sluice_connect::load_config(&cli.config)?;
    // A file without exports is worth a word only when the catalog has none either: with_app
    // says it once it has read the catalog.
    for w in config.warnings.iter().filter(|w| w.problem != sluice_core::spec::NO_EXPORTS) {
        tracing::warn!(key = %w.key, "{}", w);
    }
    Ok(config)
}

async fn with_app<F, Fut>(cli: &Cli, f: F) -> Result<u8>
where
    F: FnOnce(App) -> Fut,
    Fut: std::future::Future<Output = Result<u8>>,
{
    let config = load(cli)?;
    let app = App::open(config, cli.history.clone(), cli.event_bus.clone()).await?;
    if let Some(w) = app.file_config.warnings.iter().find(|w| w.problem == sluice_core::spec::NO_EXPORTS) {
        if app.catalog.entries().await.map(|e| e.is_empty()).unwrap_or(true) {
            tracing::warn!(key = %w.key, "{}", w);
        }
    }
    f(app).await
}

async fn select<'a>(app: &'a App, names: &[String], only_active: bool) -> Result<Vec<&'a ExportSpec>> {
    let config = &app.config;
    if names.is_empty() {
        return Ok(config.exports.iter().filter(|e| !only_active || e.state == ExportState::Active).collect());
    }
    let mut out = Vec::new();
    for n in names {
        out.push(app.export(n).await?);
    }
    Ok(out)
}

pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

pub async fn run(app: App, args: &RunArgs, json: bool) -> Result<u8> {
    let exports = if args.due { due_exports(&app).await? } else { select(&app, &args.exports, true).await? };
    if args.due && exports.is_empty() {
        crate::alerts::check_freshness(&app, &[]).await?;
        if json && (app.config.integrations.is_empty() || args.no_integrate) {
            print_json(&serde_json::json!([]))?;
        } else if json {
            print_json(&serde_json::json!({"runs": [], "deliveries": []}))?;
        } else {
            println!("nothing is due");
        }
        return Ok(exit::OK);
    }
    if exports.is_empty() {
        return Err(Usage(
            "no active export to run: activate one (`sluice exports activate NAME` for a managed export, \
                 state = \"active\" in the file for the file's), or name one with --export"
                .into(),
        )
        .into());
    }
    // Everything is checked and built before the first export runs, so a mistake in the last
    // one does not leave the first ones run and the rest not.
    let mut wired = Vec::new();
    for e in &exports {
        if e.state == ExportState::Draft {
            return Err(Usage(format!("export {:?} is a draft; set state = \"active\" to run it", e.name)).into());
        }
        for t in &args.tables {
            if !e.tables.iter().any(|s| &s.name == t) {
                let known = e.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
                return Err(Usage(format!("export {:?} has no table {t:?}; its tables: {known}", e.name)).into());
            }
        }
        let source = match app.source(e).await {
            Ok(s) => s,
            Err(err) => {
                // A source that cannot be opened (a Snowflake login refused) is a failed run.
                crate::alerts::after_source_error(&app, e, &err).await;
                return Err(err);
            }
        };
        wired.push((*e, source, app.store(e)?));
    }
    let progress = Progress::new();
    let observer: &dyn Observer = if !json && std::io::stderr().is_terminal() { &progress } else { &Quiet };
    let signals = crate::signals::Signals::watch();
    let opts = RunOptions {
        full_refresh: args.full_refresh,
        tables: (!args.tables.is_empty()).then(|| args.tables.clone()),
        interrupt: Some(signals.interrupt()),
        backfill: args.backfill.clone(),
        ..run_options(&app)
    };

    let mut summaries: Vec<ExportRunSummary> = Vec::new();
    let mut errors: Vec<CoreError> = Vec::new();
    let mut deliveries = Vec::new();
    let mut delivery_code = exit::OK;
    for (export, source, store) in wired {
        if signals.interrupted().is_some() {
            // Not started: nothing to record, and the next run picks it up as usual.
            eprintln!("error: export {:?} not run: interrupted", export.name);
            continue;
        }
        let ports = Ports {
            source: source.as_ref(),
            store: store.as_ref(),
            history: app.history.as_ref(),
            events: app.events.as_ref(),
        };
        let outcome = Runner::new(ports, observer).run(export, &opts).await;
        crate::alerts::after_run(&app, export, outcome.as_ref()).await;
        match outcome {
            Ok(summary) => {
                for t in summary.tables.iter().filter(|t| t.state != RunState::Succeeded) {
                    eprintln!("error: {}", t.error.as_deref().unwrap_or("table run failed"));
                }
                if !json {
                    print!("{}", render_summary(&summary, &store.location()));
                }
                if !args.no_integrate && signals.interrupted().is_none() {
                    let (code, results) = crate::integrate::after_run(&app, &summary, json).await?;
                    delivery_code = crate::integrate::worst([delivery_code, code]);
                    deliveries.extend(results);
                }
                summaries.push(summary);
            }
            Err(e) => {
                eprintln!("error: {}", error_chain(&e));
                errors.push(e);
            }
        }
    }
    if args.due && signals.interrupted().is_none() {
        // A schedule that stopped firing leaves no run to alert after: freshness is checked on
        // every tick of the cron that runs `--due`.
        crate::alerts::check_freshness(&app, &[]).await?;
    }
    if json {
        if app.config.integrations.is_empty() || args.no_integrate {
            print_json(&summaries)?;
        } else {
            print_json(&serde_json::json!({ "runs": summaries, "deliveries": deliveries }))?;
        }
    }
    let failed = summaries.iter().any(|s| !s.succeeded)
        || errors.iter().any(|e| !e.is_lease_held())
        || delivery_code == exit::FAILED;
    if let Some(signal) = signals.interrupted() {
        return Ok(crate::signals::exit_code(signal));
    }
    Ok(if failed {
        exit::FAILED
    } else if !errors.is_empty() {
        exit::BUSY
    } else {
        exit::OK
    })
}

/// A whole run of every table by this process, as the CLI makes it (this host and pid own the
/// lease, which has no deadline but the lease's TTL).
fn run_options(app: &App) -> RunOptions {
    RunOptions {
        full_refresh: false,
        tables: None,
        host: app.host.clone(),
        pid: std::process::id(),
        lease_ttl: LEASE_TTL,
        stop_by: None,
        interrupt: None,
        backfill: None,
    }
}

/// Runs one export now, as `sluice run --export NAME` does (alerts, then its integrations'
/// deliveries), printing nothing: the console's "run now". What happened, or why it failed.
pub async fn run_now(app: &App, export: &ExportSpec) -> Result<String> {
    let source = match app.source(export).await {
        Ok(s) => s,
        Err(e) => {
            crate::alerts::after_source_error(app, export, &e).await;
            return Err(e);
        }
    };
    let store = app.store(export)?;
    let ports = Ports {
        source: source.as_ref(),
        store: store.as_ref(),
        history: app.history.as_ref(),
        events: app.events.as_ref(),
    };
    let outcome = Runner::new(ports, &Quiet).run(export, &run_options(app)).await;
    crate::alerts::after_run(app, export, outcome.as_ref()).await;
    let summary = outcome.map_err(|e| anyhow!(error_chain(&e)))?;
    let said = format!(
        "run {} {}: {}, {}",
        summary.run_id,
        if summary.succeeded { "succeeded" } else { "FAILED" },
        output::counted(summary.rows, "row", "rows"),
        output::counted(u64::from(summary.parts), "part", "parts")
    );
    // The tables that committed are delivered even when another failed, as `sluice run` does;
    // deliveries that cannot start do not hide the run that committed.
    let code = match crate::integrate::after_run(app, &summary, true).await {
        Ok((code, _)) => code,
        Err(e) => return Ok(format!("{said}; its deliveries could not start: {e:#}")),
    };
    if !summary.succeeded {
        let errors: Vec<String> = summary.tables.iter().filter_map(|t| t.error.clone()).collect();
        return Err(anyhow!("{said}: {}", errors.join("; ")));
    }
    Ok(if code == exit::OK { said } else { format!("{said}; a delivery failed (see Deliveries)") })
}

/// The WINDOW/CHANGES cell of a table run: `full`, a check run's `+ins ~upd -del`, or its window.
fn window_or_changes(strategy: Strategy, window: &Window, changes: Option<Changes>) -> String {
    match (strategy, changes) {
        (Strategy::Full, _) => "full".into(),
        (_, Some(c)) => c.to_string(),
        (Strategy::Check, None) => "-".into(),
        _ => window.to_string(),
    }
}

pub fn render_summary(s: &ExportRunSummary, location: &str) -> String {
    let rows: Vec<Vec<String>> = s
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.state.as_str().to_string(),
                window_or_changes(t.strategy, &t.window, t.changes),
                output::count(t.rows),
                t.parts.to_string(),
                output::bytes(t.bytes),
                t.manifest_key
                    .as_ref()
                    .filter(|_| t.state == RunState::Succeeded)
                    .cloned()
                    .unwrap_or_else(|| t.error.clone().unwrap_or_default()),
            ]
        })
        .collect();
    let mut out = format!(
        "export {} run {}: {} in {} ({}, {}, {}) -> {}\n",
        s.export,
        s.run_id,
        if s.succeeded { "succeeded" } else { "FAILED" },
        output::duration_ms(s.duration_ms),
        output::counted(s.rows, "row", "rows"),
        output::counted(u64::from(s.parts), "part", "parts"),
        output::bytes(s.bytes),
        location
    );
    out.push_str(&indent(&output::table(
        &["TABLE", "RESULT", "WINDOW/CHANGES", "ROWS", "PARTS", "BYTES", "MANIFEST / ERROR"],
        &rows,
    )));
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct PlanEntry {
    export: String,
    table: String,
    strategy: Strategy,
    window: sluice_core::value::Window,
    window_empty: bool,
    sql: Option<String>,
    /// For `mode = "unload"`: the `COPY INTO` statement (same parameters; RUN_ID stands for the
    /// run's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    unload_sql: Option<String>,
    params: Vec<sluice_core::value::Watermark>,
    rows: u64,
    null_rows: u64,
    /// For the `check` strategy: the key, the checked columns and the state compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<sluice_core::strategy::plan::CheckPlan>,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Check only this export's source and tables (repeatable). Default: every export.
    #[arg(long = "export", short = 'e', value_name = "NAME")]
    pub exports: Vec<String>,
}

/// Logs in to each export's source and checks its tables and columns; exit 1 if anything is
/// missing.
pub async fn check_connection(app: App, args: &CheckArgs, json: bool) -> Result<u8> {
    let secrets = app.secrets();
    let mut reports = Vec::new();
    for export in select(&app, &args.exports, false).await? {
        let spec = app.source_spec(export)?;
        let report = sluice_connect::check_connection(export, spec, secrets.as_ref())
            .await
            .map_err(|e| anyhow!(e).context(format!("export {:?}: source {:?}", export.name, export.source)))?;
        reports.push(report);
    }
    let ok = reports.iter().all(|r| r.ok());
    if json {
        print_json(&reports)?;
    } else {
        for r in &reports {
            println!("{} (source {}, {})", r.export, r.source, r.kind);
            if let Some(serde_json::Value::Object(s)) = &r.session {
                let v = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("(none)").to_string();
                let facts: Vec<String> = ["user", "role", "warehouse", "database", "schema"]
                    .into_iter()
                    .filter(|k| s.contains_key(*k))
                    .map(|k| format!("{k} {}", v(k)))
                    .collect();
                println!("  session:   {}", facts.join(", "));
            }
            for t in &r.tables {
                match (&t.error, t.missing.is_empty()) {
                    (Some(e), _) => println!("  {}: error: {e}", t.table),
                    (None, true) if t.unusable.is_empty() => println!("  {}: ok ({} columns)", t.table, t.columns),
                    (None, true) => {
                        println!("  {}: incremental column of no usable type: {}", t.table, t.unusable.join(", "))
                    }
                    (None, false) => println!("  {}: missing columns: {}", t.table, t.missing.join(", ")),
                }
            }
        }
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}

pub async fn plan(app: App, args: &PlanArgs, json: bool) -> Result<u8> {
    let mut entries = Vec::new();
    for export in select(&app, &args.exports, false).await? {
        let source = app.source(export).await?;
        // A build without AWS still plans an export to S3, without its previous manifest.
        let store = app.store(export).ok();
        for table in &export.tables {
            let (committed, committed_by) =
                app.history.watermark(&export.name, &table.name).await?.map(|w| (w.watermark, w.run_id)).unzip();
            // The previous manifest's columns: the plan fails on schema drift as the run would.
            let previous = match &store {
                Some(store) => {
                    let history = app.history.as_ref();
                    sluice_core::run::chain::previous_manifest(
                        history,
                        store.as_ref(),
                        export,
                        table,
                        committed_by.as_deref(),
                    )
                    .await
                }
                None => None,
            };
            let previous = previous.as_ref().and_then(|p| p.manifest.as_ref());
            let (p, _) = plan_table(source.as_ref(), export, table, committed, args.full_refresh, previous).await?;
            let unload_sql = match (&p.query, table.mode, &export.format) {
                (Some(q), TableMode::Unload, FileFormat::Csv(format)) => {
                    let prefix = RunFolder::of(&export.name, &table.name, "RUN_ID").prefix().to_string();
                    source
                        .unloader()
                        .and_then(|u| u.render_unload(q, &UnloadTarget { prefix, format: format.clone() }))
                        .map(|r| r.sql)
                }
                _ => None,
            };
            let (sql, params, rows) = match &p.query {
                Some(q) => {
                    let r = source.render(q);
                    let n = source.count(q).await.map_err(|e| {
                        anyhow!(CoreError::Source { export: export.name.clone(), table: table.name.clone(), source: e })
                    })?;
                    (Some(r.sql), r.params, n)
                }
                None => (None, Vec::new(), 0),
            };
            // A run counts these with its read; a plan reads nothing, so it counts them here.
            let null_rows = match (&p.stamp, p.strategy) {
                (Some(expr), Strategy::Timestamp) => source.count_null(&table.table, expr).await.map_err(|e| {
                    anyhow!(CoreError::Source { export: export.name.clone(), table: table.name.clone(), source: e })
                })?,
                _ => 0,
            };
            entries.push(PlanEntry {
                export: export.name.clone(),
                table: table.name.clone(),
                strategy: p.strategy,
                window_empty: p.window.is_empty() && p.strategy == Strategy::Timestamp,
                window: p.window,
                sql,
                unload_sql,
                params,
                rows,
                null_rows,
                check: p.check,
            });
        }
    }
    if json {
        print_json(&entries)?;
        return Ok(exit::OK);
    }
    for e in &entries {
        println!("{}/{} ({})", e.export, e.table, e.strategy);
        if e.strategy == Strategy::Timestamp {
            println!("  window:    {}{}", e.window, if e.window_empty { "  (empty: nothing to export)" } else { "" });
        }
        if let Some(c) = &e.check {
            println!("  key:       {}", c.key_columns.join(", "));
            println!("  checked:   {}", c.checked_columns.join(", "));
            match &c.previous_state {
                Some(state) => println!("  state:     {state} (rows are compared with it as they are read)"),
                None => println!("  state:     none yet: every row is exported as an insert"),
            }
            if c.deletes {
                println!("  deletes:   keys gone since the last run are exported with _sluice_op = \"delete\"");
            }
        }
        if let Some(sql) = &e.sql {
            println!("  sql:       {sql}");
            if let Some(unload) = &e.unload_sql {
                println!("  unload:    {unload}");
                println!("             (RUN_ID stands for the run's id; the parameters are the same)");
            }
            for (i, p) in e.params.iter().enumerate() {
                println!("  param {}:   {}", i + 1, serde_json::to_string(p)?);
            }
        }
        let rows_note = if e.check.is_some() { "  (read and compared; only changes are exported)" } else { "" };
        println!("  rows:      {}{rows_note}", output::count(e.rows));
        if e.null_rows > 0 {
            println!("  warning:   {} rows have a NULL incremental column and are in no window; set incremental.fallback_column", output::count(e.null_rows));
        }
    }
    Ok(exit::OK)
}

// ---------------------------------------------------------------------------------------------

pub async fn status(app: App, json: bool) -> Result<u8> {
    let open = |export: &ExportSpec| app.store(export).ok();
    let stores = Stores {
        history: app.history.as_ref(),
        ledger: app.ledger.as_ref(),
        catalog: app.catalog.as_ref(),
        destination: Some(&open),
    };
    let now = chrono::Utc::now();
    let all = sluice_core::status::status_of_all(&stores, &app.config, now).await?;
    if json {
        print_json(&all)?;
    } else {
        print!("{}", render_status(&all, now));
    }
    Ok(exit::OK)
}

fn render_status(all: &[ExportStatus], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut rows = Vec::new();
    for e in all {
        if e.tables.is_empty() {
            // A managed draft: nothing runs yet.
            let v = e.managed.as_ref().and_then(|m| m.draft_version).map(|d| format!(" v{d}")).unwrap_or_default();
            rows.push(vec![
                e.export.clone(),
                format!("{}{v}", e.state),
                "-".into(),
                "never".into(),
                String::new(),
                "0".into(),
                "-".into(),
                String::new(),
            ]);
        }
        for t in &e.tables {
            rows.push(vec![
                e.export.clone(),
                {
                    let state = match &e.managed {
                        Some(m) => match (m.active_version, m.draft_version) {
                            (Some(a), Some(d)) => format!("{} v{a} (draft v{d})", e.state),
                            (Some(a), None) => format!("{} v{a}", e.state),
                            (None, Some(d)) => format!("{} v{d}", e.state),
                            (None, None) => e.state.clone(),
                        },
                        None => e.state.clone(),
                    };
                    if e.running.is_some() {
                        format!("{state} (running)")
                    } else {
                        state
                    }
                },
                t.table.clone(),
                t.last_run.clone().unwrap_or_else(|| "never".into()),
                match (&t.last_result, t.changes, t.late_rows) {
                    (Some(r), Some(c), _) => format!("{r} ({c})"),
                    // Rows missed by the run before: said where the operator looks first.
                    (Some(r), None, late) if late > 0 => format!("{r} ({} late)", output::count(late)),
                    (r, _, _) => r.clone().unwrap_or_default(),
                },
                output::count(t.rows),
                match t.watermark.clone().map(Cursor::from_stored) {
                    // A check table's cursor is its state file: name the run that wrote it.
                    Some(Cursor::CheckState(k)) => format!("state of {}", k.rsplit('/').nth(1).unwrap_or(&k)),
                    Some(Cursor::Value(w)) => w.to_string(),
                    None => "-".into(),
                },
                t.last_error.as_deref().map(|s| truncate(s, 80)).unwrap_or_default(),
            ]);
        }
    }
    let mut out =
        output::table(&["EXPORT", "STATE", "TABLE", "LAST RUN", "RESULT", "ROWS", "WATERMARK", "LAST ERROR"], &rows);
    let deliveries: Vec<Vec<String>> = all
        .iter()
        .flat_map(|e| e.integrations.iter().map(move |i| (e, i)))
        .map(|(e, i)| {
            vec![
                i.integration.clone(),
                i.kind.clone(),
                e.export.clone(),
                i.manifest_key.clone().unwrap_or_else(|| "never".into()),
                i.state.clone().unwrap_or_default(),
                output::count(i.delivered),
                output::count(i.failed),
                match (i.undelivered, i.oldest_undelivered) {
                    (None, _) => "?".into(),
                    (Some(0), _) => "0".into(),
                    (Some(n), Some(at)) => format!("{n} (oldest {} ago)", output::age(now - at)),
                    (Some(n), None) => n.to_string(),
                },
                i.error.as_deref().map(|s| truncate(s, 80)).unwrap_or_default(),
            ]
        })
        .collect();
    if all.iter().any(|e| !e.orchestrations.is_empty()) {
        out.push('\n');
        out.push_str(&crate::orchestrations::render(all.iter().flat_map(|e| &e.orchestrations)));
    }
    if !deliveries.is_empty() {
        out.push('\n');
        out.push_str(&output::table(
            &[
                "INTEGRATION",
                "KIND",
                "EXPORT",
                "LAST MANIFEST",
                "STATE",
                "DELIVERED",
                "FAILED",
                "UNDELIVERED",
                "LAST ERROR",
            ],
            &deliveries,
        ));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

// ---------------------------------------------------------------------------------------------

pub async fn history(app: App, args: &HistoryArgs, json: bool) -> Result<u8> {
    let export = args
        .export
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!(Usage("name the export: sluice history EXPORT".into())))?;
    // A managed export's runs stay readable after it is deleted (its audit trail).
    if app.catalog.entry(export).await?.is_none() {
        app.config.export(export)?;
    }
    let runs = app.history.runs(export, args.limit as usize).await?;
    if json {
        print_json(&runs)?;
        return Ok(exit::OK);
    }
    if runs.is_empty() {
        println!("export {export} has no runs yet; start one with `sluice run --export {export}`");
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.table.clone(),
                r.state.as_str().to_string(),
                window_or_changes(r.strategy, &r.window, r.changes),
                output::count(r.rows),
                r.parts.to_string(),
                output::bytes(r.bytes),
                r.finished_at
                    .map(|f| output::duration_ms((f - r.started_at).num_milliseconds().max(0) as u64))
                    .unwrap_or_default(),
                r.error.as_deref().map(|s| truncate(s, 80)).unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["RUN", "TABLE", "STATE", "WINDOW/CHANGES", "ROWS", "PARTS", "BYTES", "TOOK", "ERROR"];
    print!("{}", output::table(&header, &rows));
    Ok(exit::OK)
}

// ---------------------------------------------------------------------------------------------

fn validate(cli: &Cli, json: bool) -> Result<u8> {
    let config = load(cli)?;
    if json {
        let exports: Vec<serde_json::Value> = config
            .exports
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "state": e.state.as_str(),
                    "source": e.source,
                    "destination": e.destination.to_string(),
                    "format": e.format.describe(),
                    "tables": e.tables.iter().map(|t| serde_json::json!({"name": t.name, "strategy": t.incremental.strategy()})).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "path": config.path,
            "valid": true,
            "sources": config.sources.keys().collect::<Vec<_>>(),
            "exports": exports,
            "integrations": config.integrations.iter().map(|i| serde_json::json!({
                "name": i.name,
                "kind": i.kind_name(),
                "export": i.export,
                "tables": i.tables,
                "batch_size": i.batch_size,
                "rate_limit": i.rate_limit.map(|r| serde_json::json!({"requests": r.requests, "per_ms": r.per.as_millis() as u64})),
            })).collect::<Vec<_>>(),
            "warnings": config.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        }))?;
        return Ok(exit::OK);
    }
    let tables: usize = config.exports.iter().map(|e| e.tables.len()).sum();
    println!(
        "{}: ok ({} sources, {} exports, {} tables)",
        config.path.display(),
        config.sources.len(),
        config.exports.len(),
        tables
    );
    for e in &config.exports {
        println!(
            "  {} [{}] {} -> {} ({}): {}",
            e.name,
            e.state.as_str(),
            e.source,
            e.destination,
            e.format.extension(),
            e.tables
                .iter()
                .map(|t| format!("{} ({})", t.name, t.incremental.strategy()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for i in &config.integrations {
        println!(
            "  integration {} ({}) <- {}{}: batches of {}{}",
            i.name,
            i.kind_name(),
            i.export,
            i.tables.as_ref().map(|t| format!(" ({})", t.join(", "))).unwrap_or_default(),
            i.batch_size,
            i.rate_limit.map(|r| format!(", at most {} requests per {:?}", r.requests, r.per)).unwrap_or_default()
        );
    }
    for w in &config.warnings {
        println!("  warning: {w}");
    }
    Ok(exit::OK)
}

// ---------------------------------------------------------------------------------------------

/// `sluice migrate`: a DynamoDB history to this version's layout. It opens the table alone (not
/// the catalog through `App`, whose reads would refuse the old layout).
async fn migrate(cli: &Cli, json: bool) -> Result<u8> {
    let history = match &cli.history {
        Some(h) => h.clone(),
        None => load(cli)?.history_path(),
    };
    let Some(_table) = history.to_str().and_then(|h| h.strip_prefix(crate::app::DYNAMODB_SCHEME)) else {
        // A history file moves itself forward when it is opened (its schema version).
        if json {
            print_json(&serde_json::json!({ "history": history, "changed": false }))?;
        } else {
            println!("{}: a history file is brought up to date when it is opened; nothing to do", history.display());
        }
        return Ok(exit::OK);
    };
    #[cfg(feature = "aws")]
    {
        use anyhow::Context as _;
        let sdk = sluice_aws::client_config().await;
        let store = sluice_aws::DynamoHistory::new(aws_sdk_dynamodb::Client::new(&sdk), _table);
        let done = store.migrate().await.with_context(|| format!("migrating the history table {_table}"))?;
        if json {
            print_json(&done)?;
        } else {
            println!(
                "{_table}: {} catalog item(s) moved to their own partition, {} open run(s) given a marker",
                done.catalog_items_moved, done.open_markers_added
            );
        }
        Ok(exit::OK)
    }
    #[cfg(not(feature = "aws"))]
    Err(anyhow!(
        "a DynamoDB history needs the AWS adapters, and this build of sluice does not include them: build it with `cargo build -p sluice-cli --features aws`"
    ))
}
