//! `sluice exports …` and `sluice apply`: managed exports, kept in the state store (the catalog)
//! with versions, a lifecycle and an audit trail, next to the ones written in the config file.
//! The operations themselves are `sluice_core::catalog::Exports`; this module parses, wires the
//! preflight checks and prints.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use sluice_core::catalog::{canonical, diff, CatalogEntry, CatalogError, Edit, Exports, Preflight};
use sluice_core::spec::{Config, ExportSpec};

use crate::app::App;
use crate::commands::Usage;
use crate::exit;

#[derive(clap::Subcommand, Debug)]
pub enum ExportsCommand {
    /// List the managed exports: state, active and draft versions, revision, last change.
    List,
    /// Print an export's definition: the draft, else the active version (or version N).
    Show {
        name: String,
        /// A version number (see `audit`); default: the draft, else the active version.
        #[arg(value_name = "VERSION")]
        number: Option<u64>,
    },
    /// Create an export as a draft from a file holding one [[export]] section.
    Create {
        /// A TOML file with one [[export]] section (sources are the config file's).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Change the draft (one is made from the active version if there is none; the active
    /// version keeps running until the draft is activated).
    Edit {
        name: String,
        /// Add a table: the keys of an [[export.table]] section, on lines of their own or as one
        /// inline table, e.g. '{ name = "orders", incremental = { strategy = "timestamp",
        /// column = "updated_at" } }'.
        #[arg(long, value_name = "TOML")]
        add_table: Option<String>,
        /// Remove the table of this name.
        #[arg(long, value_name = "NAME")]
        remove_table: Option<String>,
        /// Switch to another source (database) of the config file; its tables are checked
        /// against it when the draft is activated.
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        #[arg(long, value_name = "DESTINATION")]
        destination: Option<String>,
        #[command(flatten)]
        at: Revision,
    },
    /// Check the draft against its source and destination, then make it the version that runs.
    Activate {
        name: String,
        #[command(flatten)]
        at: Revision,
    },
    /// Drop the draft; the active version, if any, keeps running.
    Discard {
        name: String,
        #[command(flatten)]
        at: Revision,
    },
    /// Stop an active export's scheduled runs: its orchestrations' rules are disabled (its
    /// definition and history stay).
    Pause {
        name: String,
        #[command(flatten)]
        at: Revision,
    },
    /// Let a paused export run again.
    Resume {
        name: String,
        #[command(flatten)]
        at: Revision,
    },
    /// Delete an export: it no longer runs; exported files, runs, versions and audit are kept.
    /// Refused while orchestrations use it, unless --force (which removes them too).
    Delete {
        name: String,
        /// Also remove the orchestrations that use it (and their EventBridge rules).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        at: Revision,
    },
    /// Who changed an export, what and when, newest first.
    Audit {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// Optimistic concurrency from the command line: the change is refused if the export is no
/// longer at this revision (another change landed since you looked).
#[derive(clap::Args, Debug)]
pub struct Revision {
    /// Refuse the change unless the export is still at this revision (from `show` or `list`).
    #[arg(long, value_name = "N")]
    revision: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The file whose [[export]] sections the catalog should match (sources come from the
    /// config file given with --config, which may be the same file).
    file: PathBuf,
    /// Also activate every export the file changed (after checking source and destination).
    #[arg(long)]
    activate: bool,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Who acts, as audit records name them on one machine.
pub fn local_user(host: &str) -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// Activation's checks with the CLI's adapters: see `sluice_connect::ActivationChecks`.
pub(crate) struct Checks<'a> {
    app: &'a App,
}

pub(crate) fn checks(app: &App) -> Checks<'_> {
    Checks { app }
}

#[async_trait]
impl Preflight for Checks<'_> {
    async fn check(&self, spec: &ExportSpec) -> Vec<String> {
        let secrets = self.app.secrets();
        let store = |spec: &ExportSpec| self.app.store(spec).map_err(|e| e.to_string());
        let checks =
            sluice_connect::ActivationChecks { config: &self.app.config, secrets: secrets.as_ref(), store: &store };
        checks.check(spec).await
    }
}

fn ops<'a>(app: &'a App, config: &'a Config) -> Exports<'a> {
    Exports { catalog: app.catalog.as_ref(), config, who: local_user(&app.host) }
}

fn describe(e: &CatalogEntry) -> String {
    let v = |o: Option<u64>| o.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "{} {}: active version {}, draft {}, revision {} ({} by {})",
        e.name,
        e.state.as_str(),
        v(e.active_version),
        v(e.draft_version),
        e.revision,
        e.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        e.updated_by
    )
}

fn done(e: &CatalogEntry, json: bool) -> Result<u8> {
    if json {
        println!("{}", serde_json::to_string_pretty(e)?);
    } else {
        println!("{}", describe(e));
    }
    Ok(exit::OK)
}

/// Catalog refusals are the caller's to fix (exit 2), like a bad config; store failures are 1.
pub fn refused(e: CatalogError) -> anyhow::Error {
    match e {
        CatalogError::Store(s) => anyhow!(s),
        // EventBridge failed or is not set up: not a mistake in the command.
        CatalogError::Scheduler(s) => anyhow!(s),
        CatalogError::InUse { ref name, .. } => anyhow!(Usage(format!("{e}: sluice exports delete {name} --force"))),
        other => anyhow!(Usage(other.to_string())),
    }
}

pub async fn exports(app: App, cmd: &ExportsCommand, json: bool) -> Result<u8> {
    let config = app.file_config.clone();
    let ops = ops(&app, &config);
    let at = |r: &Revision| r.revision;
    let entry = match cmd {
        ExportsCommand::List => {
            let entries = app.catalog.entries().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else if entries.is_empty() {
                println!(
                    "no managed exports (create one with `sluice exports create --from FILE`, or `sluice apply FILE`)"
                );
            } else {
                for e in &entries {
                    println!("{}", describe(e));
                }
            }
            return Ok(exit::OK);
        }
        ExportsCommand::Show { name, number } => {
            let e = ops.get(name).await.map_err(refused)?;
            let body = match number {
                Some(v) => app.catalog.definition(name, *v).await?.map(|d| d.body).ok_or_else(|| {
                    Usage(format!("export {name:?} has no version {v} (latest: {})", e.latest_version))
                })?,
                None => ops.working_body(&e).await.map_err(refused)?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"entry": e, "definition": body}))?);
            } else {
                // As a config file's section, so it can be saved, changed and given to `apply`.
                println!("# {}\n{}", describe(&e), as_section(&body)?);
            }
            return Ok(exit::OK);
        }
        ExportsCommand::Audit { name, limit } => {
            ops.get(name).await.map_err(refused)?;
            let records = app.catalog.audit(name, *limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                for r in &records {
                    println!(
                        "revision {} {} {} by {}",
                        r.revision,
                        r.at.format("%Y-%m-%d %H:%M:%S UTC"),
                        r.action,
                        r.who
                    );
                    for line in r.diff.lines() {
                        println!("    {line}");
                    }
                }
            }
            return Ok(exit::OK);
        }
        ExportsCommand::Create { from } => {
            let text = std::fs::read_to_string(from).with_context(|| format!("cannot read {}", from.display()))?;
            ops.create(&single_export(&text, from)?).await
        }
        ExportsCommand::Edit { name, add_table, remove_table, source, destination, at: r } => {
            let edits: Vec<Edit> = [
                add_table.clone().map(Edit::AddTable),
                remove_table.clone().map(Edit::RemoveTable),
                source.clone().map(Edit::SetSource),
                destination.clone().map(Edit::SetDestination),
            ]
            .into_iter()
            .flatten()
            .collect();
            let [edit] = edits.as_slice() else {
                return Err(
                    Usage("give exactly one of --add-table, --remove-table, --source, --destination".into()).into()
                );
            };
            ops.edit(name, edit, at(r)).await
        }
        ExportsCommand::Activate { name, at: r } => ops.activate(name, at(r), &Checks { app: &app }).await,
        ExportsCommand::Discard { name, at: r } => ops.discard(name, at(r)).await,
        ExportsCommand::Pause { name, at: r } => ops.set_paused(name, true, at(r), app.scheduler()?.as_ref()).await,
        ExportsCommand::Resume { name, at: r } => ops.set_paused(name, false, at(r), app.scheduler()?.as_ref()).await,
        ExportsCommand::Delete { name, force, at: r } => {
            ops.delete(name, *force, at(r), app.scheduler()?.as_ref()).await
        }
    };
    done(&entry.map_err(refused)?, json)
}

/// A definition as an `[[export]]` section (with `[[export.table]]`s), as a config file has it.
fn as_section(body: &str) -> Result<String> {
    let table: toml::Table = toml::from_str(body)?;
    let mut doc = toml::Table::new();
    doc.insert("export".into(), toml::Value::Array(vec![toml::Value::Table(table)]));
    Ok(toml::to_string(&doc)?)
}

/// The keys of the one `[[export]]` section a definition file holds.
fn single_export(text: &str, path: &std::path::Path) -> Result<String> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| Usage(format!("{}: not valid TOML: {e}", path.display())))?;
    match table.get("export") {
        Some(toml::Value::Array(list)) if list.len() == 1 => Ok(toml::to_string(&list[0])?),
        _ => Err(Usage(format!("{}: expected exactly one [[export]] section", path.display())).into()),
    }
}

/// `sluice apply FILE`: makes the catalog's drafts match the file's exports (created when new,
/// edited when different from the export's current definition), activating them if asked.
pub async fn apply(app: App, args: &ApplyArgs, json: bool) -> Result<u8> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| Usage(format!("{}: not valid TOML: {e}", args.file.display())))?;
    let sections = match table.get("export") {
        Some(toml::Value::Array(list)) => list.clone(),
        _ => return Err(Usage(format!("{}: no [[export]] sections", args.file.display())).into()),
    };
    // The file's exports become managed ones: checked against the sources only, not against
    // themselves as file exports (the file may well be the config file).
    let mut config = app.file_config.clone();
    config.exports.clear();
    let ops = ops(&app, &config);
    let mut plan = Vec::new();
    for section in &sections {
        let body = canonical(&toml::to_string(section)?).map_err(refused)?;
        let name = section.get("name").and_then(toml::Value::as_str).unwrap_or_default().to_string();
        let spec = config.parse_export(&body).map_err(|e| Usage(format!("export {name:?}: {e}")))?;
        let action = match app.catalog.entry(&spec.name).await? {
            None => ("create", String::new()),
            // A deleted export's name is reused: a new draft under it.
            Some(e) if e.state == sluice_core::catalog::Lifecycle::Deleted => ("create", String::new()),
            Some(e) => {
                let current = ops.working_body(&e).await.map_err(refused)?;
                if current != body {
                    ("edit", diff(&current, &body))
                } else if args.activate && e.draft_version.is_some() {
                    // The file's definition is already the draft (an earlier `apply` without
                    // --activate): what is left to do is to activate it.
                    ("activate", String::new())
                } else {
                    ("unchanged", String::new())
                }
            }
        };
        plan.push((spec.name.clone(), action.0, action.1, body));
    }
    let mut results = Vec::new();
    for (name, action, changes, body) in &plan {
        if !json {
            println!("{name}: {action}");
            for line in changes.lines() {
                println!("    {line}");
            }
        }
        if args.dry_run {
            results.push(serde_json::json!({"export": name, "action": action}));
            continue;
        }
        let entry = match *action {
            "create" => Some(ops.create(body).await.map_err(refused)?),
            "edit" => Some(ops.edit(name, &Edit::Replace(body.clone()), None).await.map_err(refused)?),
            "activate" => Some(ops.get(name).await.map_err(refused)?),
            _ => None,
        };
        let entry = match (entry, args.activate) {
            (Some(e), true) => ops.activate(&e.name, Some(e.revision), &Checks { app: &app }).await.map_err(refused)?,
            (Some(e), false) => e,
            (None, _) => ops.get(name).await.map_err(refused)?,
        };
        if !json {
            println!("  {}", describe(&entry));
        }
        results.push(serde_json::json!({"export": name, "action": action, "entry": entry}));
    }
    // Exports the store holds that the file does not: left alone (the file may hold only some
    // of a team's exports), but said, so a removal from the file is not mistaken for a delete.
    for e in app.catalog.entries().await? {
        if e.state != sluice_core::catalog::Lifecycle::Deleted && !plan.iter().any(|(n, ..)| *n == e.name) {
            if !json {
                println!(
                    "{}: not in {} (left as it is; `sluice exports delete {}` removes it)",
                    e.name,
                    args.file.display(),
                    e.name
                );
            }
            results.push(serde_json::json!({"export": e.name, "action": "not in file"}));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(exit::OK)
}
