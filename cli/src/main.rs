//! `sluice`: runs exports on one machine with the embedded adapters, and shows their plan,
//! status and history. Exit codes: 0 success, 1 a run or command failed, 2 the config or the
//! command line is wrong, 3 the export is already running elsewhere (its lease is held), 130 and
//! 143 a run stopped by SIGINT or SIGTERM, 141 its output piped into a reader that stopped early.

mod alerts;
mod app;
mod commands;
mod console;
mod demo;
mod exports;
mod integrate;
mod orchestrations;
mod output;
mod progress;
mod schedules;
mod signals;
mod state;
mod verify;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes scripts can rely on.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const BUSY: u8 = 3;
}

/// Sluice exports what changed in your database tables to files in a folder, with a manifest per
/// run and a history that makes every row land exactly once.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The config file declaring sources and exports.
    #[arg(long, short, global = true, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
    config: PathBuf,
    /// The history: a file (default: the config's `history`, else .sluice/history.db beside
    /// it), or `dynamodb://TABLE` (with the `aws` feature).
    #[arg(long, global = true, env = "SLUICE_HISTORY")]
    history: Option<PathBuf>,
    /// Publish run events to this EventBridge bus (with the `aws` feature) instead of a file.
    #[arg(long, global = true, env = "SLUICE_EVENT_BUS")]
    event_bus: Option<String>,
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Log format on stderr: text on a terminal and JSON lines otherwise, unless set.
    #[arg(long, global = true, value_parser = ["auto", "text", "json"], default_value = "auto")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Export the rows that changed since each table's last committed run.
    Run(commands::RunArgs),
    /// Show each table's next window, the exact SQL and how many rows it holds, without exporting.
    Plan(commands::PlanArgs),
    /// Show every export: state, last run, rows, watermark and last error.
    Status,
    /// Show the runs of one export, newest first; `history rebuild` rebuilds a lost history
    /// from the destination's committed manifests.
    History(commands::HistoryArgs),
    /// Prove from the destination that each table's runs form one chain with no gap or
    /// overlap, and that every file is what its manifest says (and agrees with the history).
    Verify(verify::VerifyArgs),
    /// Export a timestamp table's rows stamped in (FROM, TO] again, into the table's
    /// `backfills/` folder with a manifest marked as a backfill: outside the chain, the cursor
    /// unmoved, atomic as any run (for rows a run missed, such as late rows).
    Backfill(state::BackfillArgs),
    /// Show a table's cursor, or move it by hand: back to a run or a value (`rewind`), or to
    /// any value (`set`); recorded in the history and the table's manifest chain.
    #[command(subcommand)]
    State(state::StateCommand),
    /// Check the config file and print what it declares.
    Validate,
    /// Serve the exports as web pages on this machine (127.0.0.1:8750 by default): status,
    /// runs, alerts and deliveries, and the changes this user may make, each shown first.
    Console(console::ConsoleArgs),
    /// Alerts: check every export's freshness now (`check`, for cron), or list the open and
    /// last resolved alerts (`list`). Runs and deliveries raise the others as they finish.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Log in to each export's source and check that its tables and columns exist.
    CheckConnection(commands::CheckArgs),
    /// Deliver a run's rows to an integration's API (or send a failures file again).
    Integrate(integrate::IntegrateArgs),
    /// Manage exports kept in the state store: create, edit, activate, discard, pause,
    /// resume, delete, list, show, audit.
    #[command(subcommand)]
    Exports(exports::ExportsCommand),
    /// Bind activated exports to schedules (EventBridge rules with a DynamoDB history):
    /// create, pause, resume, delete, list.
    #[command(subcommand)]
    Orchestrations(orchestrations::OrchestrationsCommand),
    /// Make the managed exports match a file's [[export]] sections (create or edit drafts,
    /// activate them with --activate).
    Apply(exports::ApplyArgs),
    /// Write the EventBridge schedules that run each export in AWS (template.yaml's section,
    /// or JSON for the CDK app) from the exports' `schedule` and `state`.
    Schedules(schedules::SchedulesArgs),
    /// Build a sample database, export it, change a few rows and export again (in its own
    /// folder, with its own config and history: --config, --history, --event-bus and --json
    /// do not apply).
    Demo(demo::DemoArgs),
    /// Move a DynamoDB history written by an earlier Sluice to this version's layout (once,
    /// after upgrading; running it again changes nothing). A history file needs nothing.
    Migrate,
}

/// Piped into `head`, a command stops quietly when the reader goes, as other tools do, instead
/// of panicking with a backtrace on the failed write. SIGPIPE stays ignored (restoring its
/// default would let a reset network connection kill a run mid-write, lease held): a print to
/// a closed stdout is what ends the process, with the status a SIGPIPE would give.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe")) {
            std::process::exit(141);
        }
        default(info)
    }));
}

/// The global options `demo` has no use for, when given on the command line (an environment
/// variable is ambient, not a request).
fn ignored_by_demo(cli: &Cli, matches: &clap::ArgMatches) -> Option<String> {
    let Command::Demo(_) = &cli.command else { return None };
    let sub = matches.subcommand_matches("demo");
    let given: Vec<String> = ["config", "history", "event_bus", "json"]
        .into_iter()
        .filter(|id| {
            [Some(matches), sub]
                .into_iter()
                .flatten()
                .any(|m| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        })
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    (!given.is_empty()).then(|| given.join(", "))
}

fn init_logging(format: &str) {
    use tracing_subscriber::{fmt, EnvFilter};
    let json = match format {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    // On a terminal people read the tables, so logs say only what needs attention.
    let default = if json { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.compact().without_time().with_target(false).init();
    }
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    sluice_connect::bound_allocator();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(given) = ignored_by_demo(&cli, &matches) {
        eprintln!(
            "error: the demo makes its own config, history and event log in --dir, so {given} would be ignored: \
             leave it out (and use `sluice --config <DIR>/sluice.toml …` on the demo's files afterwards)"
        );
        return ExitCode::from(exit::USAGE);
    }
    // The demo is read by a person even when its output is piped: text logs, not JSON lines.
    let log_format = match (&cli.command, cli.log_format.as_str()) {
        (Command::Demo(_), "auto") => "text",
        (_, f) => f,
    };
    init_logging(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let code = runtime.block_on(commands::dispatch(cli));
    // A reader still stepping through an SQLite statement on a blocking thread (a run stopped
    // by a signal) is not waited for: it would only finish the statement for nobody.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    ExitCode::from(code)
}
