//! The console's pages and the changes they make. Every change is shown first (what it will
//! change, with the definition's diff where there is one) and made only when confirmed; each
//! is a `control::Action`, refused with the permission it needs when the console lacks it.

use anyhow::Result;
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use std::fmt::Write;

use sluice_core::catalog::{canonical, diff, CatalogEntry, CatalogError, Edit, Exports, Lifecycle};
use sluice_core::control::Action;
use sluice_core::ports::{AlertRecord, AlertState, RunRecord};
use sluice_core::spec::{Config, ExportSpec};
use sluice_core::status::{export_status, status_of_all, ExportStatus, Stores};

use super::html::{button, esc, page, seg, state, table};
use super::{Console, Form, Page};
use crate::output;

/// Runs listed on an export's page.
const RUNS_SHOWN: usize = 100;
const AUDIT_SHOWN: usize = 50;

impl Console {
    fn ops<'a>(&'a self, config: &'a Config) -> Exports<'a> {
        Exports { catalog: self.app.catalog.as_ref(), config, who: self.who().to_string() }
    }

    /// The file's exports with the catalog's runnable ones merged in, read now (a change made
    /// a moment ago shows at once).
    async fn runnable(&self) -> Result<Config, CatalogError> {
        let (config, _, _) = self.ops(&self.app.file_config).with_runnable().await?;
        Ok(config)
    }

    fn frame(&self, title: &str, body: &str) -> Page {
        Page::html(page(title, &self.grants_text(), body))
    }

    fn note(&self, q: &Form) -> String {
        match (q.get("done"), q.get("error")) {
            (Some(d), _) => format!("<div class=\"box done\">{}</div>", esc(d)),
            (_, Some(e)) => format!("<div class=\"box refused\">{}</div>", esc(e)),
            _ => String::new(),
        }
    }
}

fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", output::age(now - t))
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(output::when).unwrap_or_else(|| "-".into())
}

/// What an export has wrong, for the list's filter and column.
fn problems(s: &ExportStatus, alerts: &[AlertRecord]) -> Vec<&'static str> {
    let mut out = Vec::new();
    if s.tables.iter().any(|t| t.last_result.as_deref() == Some("failed")) {
        out.push("failing");
    }
    if alerts.iter().any(|a| a.key == "freshness" && a.state == AlertState::Firing) {
        out.push("stale");
    }
    if alerts.iter().any(|a| a.state == AlertState::Firing) {
        out.push("alerting");
    }
    if s.integrations.iter().any(|i| i.undelivered.unwrap_or(0) > 0) {
        out.push("undelivered");
    }
    out
}

pub async fn get(c: &Console, p: &[&str], q: &Form) -> Result<Page> {
    match p {
        [] => list(c, q).await,
        ["new"] => Ok(new_form(c, q)),
        ["exports", name] => export_page(c, name, q).await,
        ["exports", name, "edit"] => edit_form(c, name, q).await,
        ["exports", name, "runs", run] => run_page(c, name, run).await,
        _ => Ok(c
            .frame("Not found", "<h1>Not found</h1><p><a href=\"/\">All exports</a></p>")
            .status(StatusCode::NOT_FOUND)),
    }
}

/// Every export: state, source, tables, destination, schedule and next run, last run, freshness,
/// alerts and undelivered manifests; filtered by `state` and `problem`.
async fn list(c: &Console, q: &Form) -> Result<Page> {
    let now = Utc::now();
    let config = c.runnable().await?;
    let app = &c.app;
    let open = |export: &ExportSpec| app.store(export).ok();
    let stores = Stores {
        history: app.history.as_ref(),
        ledger: app.ledger.as_ref(),
        catalog: app.catalog.as_ref(),
        destination: Some(&open),
    };
    let all = status_of_all(&stores, &config, now).await?;
    let (want_state, want_problem) =
        (q.get("state").filter(|s| !s.is_empty()), q.get("problem").filter(|s| !s.is_empty()));
    let mut rows = Vec::new();
    for s in &all {
        let alerts = app.alerts.alerts(&s.export).await?;
        let wrong = problems(s, &alerts);
        if want_state.is_some_and(|w| w != s.state) || want_problem.is_some_and(|w| !wrong.contains(&w)) {
            continue;
        }
        let spec = config.exports.iter().find(|e| e.name == s.export);
        let tables: Vec<&str> = s.tables.iter().map(|t| t.table.as_str()).collect();
        let shown = match tables.len() {
            0 => "-".to_string(),
            n if n <= 3 => tables.join(", "),
            n => format!("{} and {} more", tables[..3].join(", "), n - 3),
        };
        let last = s.tables.iter().filter_map(|t| t.last_finished.map(|f| (f, t))).max_by_key(|(f, _)| *f);
        let last_run = match last {
            Some((finished, t)) => format!(
                "{} {} rows, {}",
                state(t.last_result.as_deref().unwrap_or("-")),
                output::count(s.tables.iter().filter(|x| x.last_run == t.last_run).map(|x| x.rows).sum()),
                esc(&age(finished, now))
            ),
            None => "<span class=\"muted\">never</span>".into(),
        };
        let fresh = match alerts.iter().find(|a| a.key == "freshness") {
            Some(a) if a.state == AlertState::Firing => state("stale"),
            _ if last.is_some() => state("fresh"),
            _ => "-".into(),
        };
        let open_alerts = alerts.iter().filter(|a| a.state == AlertState::Firing).count();
        let undelivered: usize = s.integrations.iter().filter_map(|i| i.undelivered).sum();
        rows.push(vec![
            format!("<a href=\"/exports/{}\">{}</a>", seg(&s.export), esc(&s.export)),
            state(&s.state),
            esc(spec.map_or("-", |e| e.source.as_str())),
            esc(&shown),
            esc(if s.destination.is_empty() { "-" } else { &s.destination }),
            esc(&s
                .schedule
                .clone()
                .or_else(|| s.orchestrations.first().map(|o| o.schedule.clone()))
                .unwrap_or_else(|| "-".into())),
            esc(&when(s.next_run)),
            last_run,
            fresh,
            if open_alerts > 0 { format!("<span class=\"bad\">{open_alerts}</span>") } else { "0".into() },
            undelivered.to_string(),
        ]);
    }
    let mut body = format!("<h1>Exports</h1>{}", c.note(q));
    body.push_str("<nav class=\"filters\">State: <a href=\"/\">all</a>");
    for s in ["draft", "active", "paused"] {
        let _ = write!(body, "<a href=\"/?state={s}\">{s}</a>");
    }
    body.push_str(" · Problem: ");
    for p in ["failing", "stale", "alerting", "undelivered"] {
        let _ = write!(body, "<a href=\"/?problem={p}\">{p}</a>");
    }
    body.push_str("</nav>");
    if rows.is_empty() {
        body.push_str("<p class=\"muted\">No exports match. <a href=\"/new\">Create one</a>.</p>");
    } else {
        let _ = write!(body, "<p class=\"muted\">{}</p>", output::counted(rows.len() as u64, "export", "exports"));
        body.push_str(&table(
            &[
                "Export",
                "State",
                "Source",
                "Tables",
                "Destination",
                "Schedule",
                "Next run",
                "Last run",
                "Freshness",
                "Alerts",
                "Undelivered",
            ],
            &rows,
            &[9, 10],
        ));
    }
    Ok(c.frame("Exports", &body))
}

/// The create form: a definition as `sluice exports create` takes it.
fn new_form(c: &Console, q: &Form) -> Page {
    let source = c.app.file_config.sources.keys().next().cloned().unwrap_or_else(|| "db".into());
    let example = format!(
        "name = \"my_export\"\nsource = \"{source}\"\ndestination = \"out/my_export\"\n\n[[table]]\nname = \"contacts\"\nincremental = {{ strategy = \"timestamp\", column = \"updated_at\" }}\n"
    );
    let body = format!(
        "<h1>New export</h1>{note}<p>The definition, as <code>sluice exports create</code> takes it (sources: {sources}). \
         It is created as a draft; nothing runs until it is activated.</p>\
         <form method=\"post\" action=\"/exports\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <textarea name=\"definition\" rows=\"16\">{def}</textarea><p><button class=\"primary\" type=\"submit\">Review</button></p></form>",
        note = c.note(q),
        sources = esc(&c.app.file_config.sources.keys().cloned().collect::<Vec<_>>().join(", ")),
        csrf = esc(c.csrf()),
        def = esc(q.get("definition").unwrap_or(&example)),
    );
    c.frame("New export", &body)
}

async fn edit_form(c: &Console, name: &str, q: &Form) -> Result<Page> {
    let ops = c.ops(&c.app.file_config);
    let entry = match ops.get(name).await {
        Ok(e) => e,
        Err(e) => return Ok(refused(c, StatusCode::NOT_FOUND, &e.to_string())),
    };
    let body_text = ops.working_body(&entry).await?;
    let body = format!(
        "<h1>Edit {n}</h1><p>Switch its source, add or remove <code>[[table]]</code> sections, change its format or \
         destination; the change becomes a draft, which runs once activated.</p>\
         <form method=\"post\" action=\"/exports/{s}/edit\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"revision\" value=\"{rev}\">\
         <textarea name=\"definition\" rows=\"20\">{def}</textarea><p><button class=\"primary\" type=\"submit\">Review</button> \
         <a href=\"/exports/{s}\">Cancel</a></p></form>",
        n = esc(name),
        s = seg(name),
        csrf = esc(c.csrf()),
        rev = entry.revision,
        def = esc(q.get("definition").unwrap_or(&body_text)),
    );
    Ok(c.frame(&format!("Edit {name}"), &body))
}

/// One export: state and versions, the draft's diff, tables, alerts, orchestrations, runs,
/// deliveries with their failures, the audit trail, and the actions its state allows.
async fn export_page(c: &Console, name: &str, q: &Form) -> Result<Page> {
    let now = Utc::now();
    let app = &c.app;
    let config = c.runnable().await?;
    let entry = app.catalog.entry(name).await?.filter(|e| e.state != Lifecycle::Deleted);
    let spec = config.exports.iter().find(|e| e.name == name);
    if entry.is_none() && spec.is_none() {
        return Ok(refused(c, StatusCode::NOT_FOUND, &format!("no export named {name:?}")));
    }
    let csrf = c.csrf();
    let base = format!("/exports/{}", seg(name));
    let shown_state = match (&entry, spec) {
        (Some(e), _) => e.state.as_str(),
        (None, Some(s)) => s.state.as_str(),
        (None, None) => "-",
    };
    let mut body = format!("<h1>{} {}</h1>{}", esc(name), state(shown_state), c.note(q));

    // Actions the export's state allows.
    let mut actions = Vec::new();
    if let Some(e) = &entry {
        let rev = e.revision.to_string();
        let r = [("revision", rev.as_str())];
        actions.push(format!("<a href=\"{base}/edit\">Edit</a>"));
        if e.draft_version.is_some() {
            actions.push(button(&format!("{base}/activate"), "Activate", csrf, &r, "primary"));
            if e.active_version.is_some() {
                actions.push(button(&format!("{base}/discard"), "Discard draft", csrf, &r, ""));
            }
        }
        match e.state {
            Lifecycle::Active => actions.push(button(&format!("{base}/pause"), "Pause", csrf, &r, "")),
            Lifecycle::Paused => actions.push(button(&format!("{base}/resume"), "Resume", csrf, &r, "")),
            _ => {}
        }
        actions.push(button(&format!("{base}/delete"), "Delete", csrf, &r, "danger"));
    } else {
        actions.push("<span class=\"muted\">Defined in the config file: change it there.</span>".into());
    }
    if spec.is_some_and(|s| s.state != sluice_core::spec::ExportState::Draft) {
        actions.push(button(&format!("{base}/run"), "Run now", csrf, &[], ""));
    }
    let _ = write!(body, "<div class=\"actions\">{}</div>", actions.join(" "));

    // Versions and the definition.
    if let Some(e) = &entry {
        let v = |o: Option<u64>| o.map_or("-".to_string(), |v| format!("v{v}"));
        let _ = write!(
            body,
            "<p class=\"muted\">Active {}, draft {}, revision {}; last changed {} by {}.</p>",
            v(e.active_version),
            v(e.draft_version),
            e.revision,
            esc(&output::when(e.updated_at)),
            esc(&e.updated_by)
        );
        let active = match e.active_version {
            Some(version) => app.catalog.definition(name, version).await?.map(|d| d.body),
            None => None,
        };
        let draft = match e.draft_version {
            Some(version) => app.catalog.definition(name, version).await?.map(|d| d.body),
            None => None,
        };
        match (&active, &draft) {
            (Some(a), Some(d)) => {
                let _ = write!(
                    body,
                    "<h2>Draft v{} against active v{}</h2>{}",
                    e.draft_version.unwrap_or(0),
                    e.active_version.unwrap_or(0),
                    super::html::diff(&diff(a, d))
                );
            }
            (None, Some(d)) => {
                let _ = write!(body, "<h2>Draft definition</h2><pre>{}</pre>", esc(d));
            }
            (Some(a), None) => {
                let _ = write!(body, "<h2>Definition</h2><pre>{}</pre>", esc(a));
            }
            _ => {}
        }
    }

    // Tables and deliveries, from the status every surface shows.
    if let Some(spec) = spec {
        let open = |export: &ExportSpec| app.store(export).ok();
        let stores = Stores {
            history: app.history.as_ref(),
            ledger: app.ledger.as_ref(),
            catalog: app.catalog.as_ref(),
            destination: Some(&open),
        };
        let s = export_status(&stores, &config, spec, entry.as_ref(), now).await?;
        let _ = write!(
            body,
            "<p>Source <b>{}</b> → <b>{}</b>; format {}; schedule {}; next run {}.</p>",
            esc(&spec.source),
            esc(&s.destination),
            esc(&spec.format.describe().kind),
            esc(&s.schedule.clone().unwrap_or_else(|| {
                match s
                    .orchestrations
                    .iter()
                    .map(|o| format!("{} ({})", o.schedule, o.orchestration))
                    .collect::<Vec<_>>()
                {
                    o if o.is_empty() => "-".into(),
                    o => o.join(", "),
                }
            })),
            esc(&when(s.next_run))
        );
        let rows: Vec<Vec<String>> = s
            .tables
            .iter()
            .map(|t| {
                vec![
                    esc(&t.table),
                    t.last_result.as_deref().map(state).unwrap_or_else(|| "-".into()),
                    esc(&when(t.last_finished)),
                    output::count(t.rows),
                    esc(&t.watermark.as_ref().map(|w| w.to_string()).unwrap_or_else(|| "-".into())),
                    if t.late_rows > 0 { format!("<span class=\"bad\">{}</span>", t.late_rows) } else { "0".into() },
                    t.last_error
                        .as_deref()
                        .map(|e| format!("<span class=\"bad\">{}</span>", esc(e)))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        body.push_str("<h2>Tables</h2>");
        body.push_str(&table(
            &["Table", "Last result", "Finished", "Rows", "Watermark", "Late rows", "Error"],
            &rows,
            &[3, 5],
        ));

        body.push_str("<h2>Deliveries</h2>");
        if s.integrations.is_empty() {
            body.push_str("<p class=\"muted\">No integration delivers this export.</p>");
        }
        let rows: Vec<Vec<String>> = s
            .integrations
            .iter()
            .map(|i| {
                let replay = match (&i.failures_key, i.failed) {
                    (Some(key), 1..) => button(
                        &format!("{base}/replay"),
                        "Replay failures",
                        csrf,
                        &[("integration", i.integration.as_str()), ("failures", key.as_str())],
                        "",
                    ),
                    _ => String::new(),
                };
                vec![
                    esc(&i.integration),
                    esc(&i.kind),
                    i.state.as_deref().map(state).unwrap_or_else(|| "-".into()),
                    output::count(i.rows),
                    output::count(i.delivered),
                    if i.failed > 0 { format!("<span class=\"bad\">{}</span>", i.failed) } else { "0".into() },
                    format!("{} {}", esc(i.failures_key.as_deref().unwrap_or("")), replay),
                    i.undelivered.map_or("-".into(), |n| n.to_string()),
                    esc(i.error.as_deref().unwrap_or("")),
                ]
            })
            .collect();
        if !rows.is_empty() {
            body.push_str(&table(
                &[
                    "Integration",
                    "Kind",
                    "Latest",
                    "Rows",
                    "Delivered",
                    "Failed",
                    "Failures file",
                    "Undelivered",
                    "Error",
                ],
                &rows,
                &[3, 4, 5, 7],
            ));
        }
    }

    // Alerts.
    let alerts: Vec<AlertRecord> =
        app.alerts.alerts(name).await?.into_iter().filter(|a| a.state != AlertState::Watching).collect();
    body.push_str("<h2>Alerts</h2>");
    if alerts.is_empty() {
        body.push_str("<p class=\"muted\">None.</p>");
    } else {
        let rows: Vec<Vec<String>> = alerts
            .iter()
            .map(|a| {
                vec![
                    esc(&a.key),
                    state(a.state.as_str()),
                    esc(&output::when(a.since)),
                    esc(&when(a.resolved_at)),
                    format!("{}<br><span class=\"muted\">{}</span>", esc(&a.what), esc(&a.why)),
                    a.run_id
                        .as_ref()
                        .map(|r| format!("<a href=\"{base}/runs/{}\">{}</a>", seg(r), esc(r)))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        body.push_str(&table(&["Alert", "State", "Since", "Resolved", "What", "Run"], &rows, &[]));
    }

    // Orchestrations (managed exports).
    if let Some(e) = &entry {
        body.push_str("<h2>Orchestrations</h2>");
        let rows: Vec<Vec<String>> = e
            .orchestrations
            .iter()
            .map(|o| {
                let status = sluice_core::status::OrchestrationStatus::of(e, o, now);
                let path = format!("{base}/orchestrations/{}", seg(&o.name));
                let toggle = if o.paused {
                    button(&format!("{path}/resume"), "Resume", csrf, &[], "")
                } else {
                    button(&format!("{path}/pause"), "Pause", csrf, &[], "")
                };
                vec![
                    esc(&o.name),
                    esc(&o.schedule),
                    state(&status.state),
                    esc(&when(status.next_run)),
                    esc(&o.created_by),
                    format!("{toggle} {}", button(&format!("{path}/delete"), "Delete", csrf, &[], "danger")),
                ]
            })
            .collect();
        if !rows.is_empty() {
            body.push_str(&table(&["Name", "Schedule", "State", "Next run", "Created by", ""], &rows, &[]));
        }
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{base}/orchestrations\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             Bind to a schedule: <input type=\"text\" name=\"name\" placeholder=\"name\" size=\"12\"> \
             <input type=\"text\" name=\"schedule\" placeholder=\"rate(1 hour)\" size=\"24\"> \
             <button type=\"submit\">Review</button></form>",
            esc(csrf)
        );
    }

    // Runs.
    let runs: Vec<RunRecord> = app.history.runs(name, RUNS_SHOWN).await?;
    body.push_str("<h2>Runs</h2>");
    if runs.is_empty() {
        body.push_str("<p class=\"muted\">No run yet.</p>");
    } else {
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                let took =
                    r.finished_at.map(|f| output::duration_ms((f - r.started_at).num_milliseconds().max(0) as u64));
                vec![
                    format!("<a href=\"{base}/runs/{}\">{}</a>", seg(&r.run_id), esc(&r.run_id)),
                    esc(&r.table),
                    state(r.state.as_str()),
                    esc(&if r.backfill { format!("backfill {}", r.window) } else { r.window.to_string() }),
                    output::count(r.rows),
                    output::bytes(r.bytes),
                    esc(&took.unwrap_or_else(|| "-".into())),
                    r.error.as_deref().map(|e| format!("<span class=\"bad\">{}</span>", esc(e))).unwrap_or_default(),
                ]
            })
            .collect();
        body.push_str(&table(
            &["Run", "Table", "Result", "Window", "Rows", "Bytes", "Took", "Error"],
            &rows,
            &[4, 5, 6],
        ));
    }

    // Audit trail.
    if entry.is_some() {
        let audit = app.catalog.audit(name, AUDIT_SHOWN).await?;
        body.push_str("<h2>Audit trail</h2>");
        let rows: Vec<Vec<String>> = audit
            .iter()
            .map(|a| {
                vec![
                    esc(&output::when(a.at)),
                    esc(&a.who),
                    esc(&a.action),
                    a.revision.to_string(),
                    super::html::diff(&a.diff),
                ]
            })
            .collect();
        body.push_str(&table(&["When", "Who", "Action", "Revision", "What changed"], &rows, &[3]));
    }
    Ok(c.frame(name, &body))
}

/// One run: each table's record and manifest, with its parts.
async fn run_page(c: &Console, name: &str, run_id: &str) -> Result<Page> {
    let app = &c.app;
    let config = c.runnable().await?;
    let records: Vec<RunRecord> =
        app.history.runs(name, 5000).await?.into_iter().filter(|r| r.run_id == run_id).collect();
    if records.is_empty() {
        return Ok(refused(c, StatusCode::NOT_FOUND, &format!("export {name:?} has no run {run_id:?} in its history")));
    }
    let store = config.exports.iter().find(|e| e.name == name).and_then(|e| app.store(e).ok());
    let mut body = format!("<h1>Run {} of <a href=\"/exports/{}\">{}</a></h1>", esc(run_id), seg(name), esc(name));
    for r in &records {
        let _ = write!(
            body,
            "<h2>{} {}</h2><p>Window {}; {} rows, {}, {}; started {}{}.</p>",
            esc(&r.table),
            state(r.state.as_str()),
            esc(&r.window.to_string()),
            output::count(r.rows),
            output::counted(u64::from(r.parts), "part", "parts"),
            output::bytes(r.bytes),
            esc(&output::when(r.started_at)),
            r.error.as_deref().map(|e| format!("; <span class=\"bad\">{}</span>", esc(e))).unwrap_or_default()
        );
        let manifest = match &store {
            Some(s) => s.get(&r.manifest_key).await.ok().flatten(),
            None => None,
        };
        let Some(bytes) = manifest else {
            let _ = write!(
                body,
                "<p class=\"muted\">No manifest at {} (the run did not commit, or its files expired).</p>",
                esc(&r.manifest_key)
            );
            continue;
        };
        match serde_json::from_slice::<sluice_core::manifest::Manifest>(&bytes) {
            Ok(m) => {
                let _ = write!(
                    body,
                    "<p>Manifest <code>{}</code>; columns: {}.</p>",
                    esc(&r.manifest_key),
                    esc(&m.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "))
                );
                let rows: Vec<Vec<String>> = m
                    .parts
                    .iter()
                    .map(|p| {
                        vec![
                            esc(&p.key),
                            output::count(p.rows),
                            output::bytes(p.bytes),
                            esc(p.sha256.as_deref().unwrap_or("-")),
                        ]
                    })
                    .collect();
                body.push_str(&table(&["Part", "Rows", "Bytes", "SHA-256"], &rows, &[1, 2]));
            }
            Err(e) => {
                let _ = write!(
                    body,
                    "<p class=\"bad\">The manifest {} does not read: {}</p>",
                    esc(&r.manifest_key),
                    esc(&e.to_string())
                );
            }
        }
    }
    Ok(c.frame(&format!("Run {run_id}"), &body))
}

fn refused(c: &Console, status: StatusCode, why: &str) -> Page {
    c.frame(
        "Refused",
        &format!("<h1>Refused</h1><div class=\"box refused\">{}</div><p><a href=\"/\">All exports</a></p>", esc(why)),
    )
    .status(status)
}

/// The change a POST asks for, from its path and form.
fn action_of(p: &[&str], form: &Form) -> Option<Action> {
    let revision = form.get("revision").and_then(|r| r.parse().ok());
    let s = |v: &str| v.to_string();
    Some(match p {
        ["exports"] => Action::Create { definition: s(form.get("definition")?) },
        ["exports", e, "edit"] => {
            Action::Edit { export: s(e), edit: Edit::Replace(s(form.get("definition")?)), revision }
        }
        ["exports", e, "activate"] => Action::Activate { export: s(e), revision },
        ["exports", e, "discard"] => Action::Discard { export: s(e), revision },
        ["exports", e, "pause"] => Action::Pause { export: s(e), paused: true, revision },
        ["exports", e, "resume"] => Action::Pause { export: s(e), paused: false, revision },
        ["exports", e, "delete"] => Action::Delete { export: s(e), force: form.get("force") == Some("true"), revision },
        ["exports", e, "run"] => Action::RunNow { export: s(e) },
        ["exports", e, "replay"] => Action::Replay {
            export: s(e),
            integration: s(form.get("integration")?),
            failures: s(form.get("failures")?),
        },
        ["exports", e, "orchestrations"] => Action::Orchestrate {
            export: s(e),
            name: s(form.get("name")?.trim()),
            schedule: s(form.get("schedule")?.trim()),
            destination: None,
        },
        ["exports", e, "orchestrations", o, "pause"] => {
            Action::PauseOrchestration { export: s(e), name: s(o), paused: true }
        }
        ["exports", e, "orchestrations", o, "resume"] => {
            Action::PauseOrchestration { export: s(e), name: s(o), paused: false }
        }
        ["exports", e, "orchestrations", o, "delete"] => Action::DeleteOrchestration { export: s(e), name: s(o) },
        _ => return None,
    })
}

pub async fn post(c: &std::sync::Arc<Console>, p: &[&str], form: &Form) -> Result<Page> {
    let Some(action) = action_of(p, form) else {
        return Ok(refused(
            c,
            StatusCode::BAD_REQUEST,
            "the form is missing a field, or names no change the console makes",
        ));
    };
    if let Some(why) = c.refusal(&action) {
        return Ok(refused(c, StatusCode::FORBIDDEN, &why));
    }
    if form.get("confirm") != Some("yes") {
        return confirm(c, p, form, &action).await;
    }
    // A deleted export has no page any more: back to the list.
    let deleted = matches!(action, Action::Delete { .. });
    let back = |e: Option<&str>| match e {
        Some(e) if !deleted => format!("/exports/{}", seg(e)),
        _ => "/".to_string(),
    };
    match perform(c, &action).await {
        Ok((export, done)) => Ok(Page::see_other(format!("{}?done={}", back(export.as_deref()), seg(&done)))),
        Err(why) => Ok(refused(c, StatusCode::CONFLICT, &why)),
    }
}

/// What the change will do, with a button that makes it.
async fn confirm(c: &Console, p: &[&str], form: &Form, action: &Action) -> Result<Page> {
    let ops = c.ops(&c.app.file_config);
    let name = action.export().unwrap_or_default();
    let entry: Option<CatalogEntry> = match action.export() {
        Some(n) => c.app.catalog.entry(n).await?,
        None => None,
    };
    let version = |v: Option<u64>| v.map_or("none".to_string(), |v| format!("v{v}"));
    let what = match action {
        Action::Create { definition } => match canonical(definition) {
            Ok(text) => format!("<p>Creates a <b>draft</b> export from this definition; nothing runs until it is activated.</p><pre>{}</pre>", esc(&text)),
            Err(e) => return Ok(refused(c, StatusCode::BAD_REQUEST, &e.to_string())),
        },
        Action::Edit { .. } => {
            let Some(e) = &entry else { return Ok(refused(c, StatusCode::NOT_FOUND, &format!("no managed export {name:?}"))) };
            let before = ops.working_body(e).await?;
            let Action::Edit { edit: Edit::Replace(after), .. } = action else { unreachable!("edits from the console replace") };
            match canonical(after) {
                Ok(after) if after == before => {
                    return Ok(refused(c, StatusCode::BAD_REQUEST, "the definition is unchanged: nothing to save"))
                }
                Ok(after) => format!(
                    "<p>Saves this change as a <b>draft</b> (the next version); {}.</p>{}",
                    match e.active_version {
                        Some(v) => format!("active version v{v} keeps running until the draft is activated"),
                        None => "nothing runs until it is activated".to_string(),
                    },
                    super::html::diff(&diff(&before, &after))
                ),
                Err(e) => return Ok(refused(c, StatusCode::BAD_REQUEST, &e.to_string())),
            }
        }
        Action::Activate { .. } => {
            let e = entry.as_ref();
            let draft = e.and_then(|e| e.draft_version);
            let active = e.and_then(|e| e.active_version);
            let d = match (draft, active) {
                (Some(d), Some(a)) => {
                    let before = c.app.catalog.definition(name, a).await?.map(|x| x.body).unwrap_or_default();
                    let after = c.app.catalog.definition(name, d).await?.map(|x| x.body).unwrap_or_default();
                    super::html::diff(&diff(&before, &after))
                }
                _ => String::new(),
            };
            format!(
                "<p>Checks draft {} against its source and destination, then makes it the version that runs (replacing {}); its orchestrations run it from then on.</p>{d}",
                version(draft),
                version(active)
            )
        }
        Action::Discard { .. } => format!(
            "<p>Drops draft {}; version {} stays the one that runs.</p>",
            version(entry.as_ref().and_then(|e| e.draft_version)),
            version(entry.as_ref().and_then(|e| e.active_version))
        ),
        Action::Pause { paused: true, .. } => "<p>Pauses the export: its orchestrations stop running it (their rules are disabled) until it is resumed. Nothing is deleted.</p>".into(),
        Action::Pause { paused: false, .. } => "<p>Resumes the export: its running orchestrations run it again on their schedules.</p>".into(),
        Action::Delete { .. } => {
            let n = entry.as_ref().map_or(0, |e| e.orchestrations.len());
            format!(
                "<p>Deletes the export: nothing runs it any more{}. Its versions, runs, files and audit trail are kept, and its name can be used again.</p>",
                if n > 0 { format!("; its {n} orchestration(s) are removed with it") } else { String::new() }
            )
        }
        Action::Orchestrate { name: o, schedule, .. } => format!(
            "<p>Binds the export to the schedule <code>{}</code> as orchestration <b>{}</b>: it runs on it while both are running (next run as the schedule says).</p>",
            esc(schedule),
            esc(o)
        ),
        Action::PauseOrchestration { name: o, paused, .. } => format!(
            "<p>{} orchestration <b>{}</b>.</p>",
            if *paused { "Pauses" } else { "Resumes" },
            esc(o)
        ),
        Action::DeleteOrchestration { name: o, .. } => format!("<p>Removes orchestration <b>{}</b> and its schedule rule.</p>", esc(o)),
        Action::RunNow { .. } => "<p>Runs the export now, here: each table's rows since its last committed run, then the deliveries of its integrations.</p>".into(),
        Action::Replay { integration, failures, .. } => format!(
            "<p>Sends the records of <code>{}</code> to integration <b>{}</b> again; those that fail again go to a retry file beside it.</p>",
            esc(failures),
            esc(integration)
        ),
        Action::Status | Action::Show { .. } | Action::Audit { .. } | Action::Orchestrations => String::new(),
    };
    let mut fields: Vec<(&str, &str)> = form
        .pairs()
        .iter()
        .filter(|(k, _)| k != "csrf" && k != "confirm")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    fields.push(("confirm", "yes"));
    // The confirmation says its orchestrations go with it: that is deleting with force.
    if matches!(action, Action::Delete { .. }) && entry.as_ref().is_some_and(|e| !e.orchestrations.is_empty()) {
        fields.retain(|(k, _)| *k != "force");
        fields.push(("force", "true"));
    }
    let path = format!("/{}", p.iter().map(|s| seg(s)).collect::<Vec<_>>().join("/"));
    let label = super::capitalized(action.name());
    let class =
        if matches!(action, Action::Delete { .. } | Action::DeleteOrchestration { .. }) { "danger" } else { "primary" };
    let cancel = match action.export() {
        Some(e) => format!("/exports/{}", seg(e)),
        None => "/".into(),
    };
    let body = format!(
        "<h1>{} {}?</h1><div class=\"box\">{what}</div><p>{} <a href=\"{cancel}\">Cancel</a></p>",
        esc(&label),
        esc(name),
        button(&path, &label, c.csrf(), &fields, class)
    );
    Ok(c.frame(&format!("{label} {name}"), &body))
}

/// Makes the change; the export it concerns and what to say, or why not.
async fn perform(c: &std::sync::Arc<Console>, action: &Action) -> Result<(Option<String>, String), String> {
    let app = &c.app;
    let ops = c.ops(&app.file_config);
    let scheduler = app.scheduler().map_err(|e| format!("{e:#}"))?;
    let err = |e: CatalogError| e.to_string();
    let entry = match action {
        Action::Create { definition } => ops.create(definition).await.map_err(err)?,
        Action::Edit { export, edit, revision } => ops.edit(export, edit, *revision).await.map_err(err)?,
        Action::Activate { export, revision } => {
            ops.activate(export, *revision, &crate::exports::checks(app)).await.map_err(err)?
        }
        Action::Discard { export, revision } => ops.discard(export, *revision).await.map_err(err)?,
        Action::Delete { export, force, revision } => {
            ops.delete(export, *force, *revision, scheduler.as_ref()).await.map_err(err)?
        }
        Action::Pause { export, paused, revision } => {
            ops.set_paused(export, *paused, *revision, scheduler.as_ref()).await.map_err(err)?
        }
        Action::Orchestrate { export, name, schedule, destination } => {
            ops.orchestrate(export, name, schedule, destination.as_deref(), scheduler.as_ref()).await.map_err(err)?
        }
        Action::PauseOrchestration { export, name, paused } => {
            ops.set_orchestration_paused(export, name, *paused, scheduler.as_ref()).await.map_err(err)?
        }
        Action::DeleteOrchestration { export, name } => {
            ops.unorchestrate(export, name, scheduler.as_ref()).await.map_err(err)?
        }
        Action::RunNow { export } => {
            let config = c.runnable().await.map_err(err)?;
            let spec = config
                .exports
                .iter()
                .find(|e| &e.name == export && e.state != sluice_core::spec::ExportState::Draft)
                .ok_or_else(|| format!("export {export:?} cannot run: it is a draft (activate it first)"))?;
            // On a task of its own: a browser that goes away (a tab closed, a proxy's timeout)
            // drops the request, and must not stop a run half way.
            let (console, spec) = (c.clone(), spec.clone());
            let run = tokio::spawn(async move {
                crate::commands::run_now(&console.app, &spec).await.map_err(|e| format!("{e:#}"))
            });
            let said = run.await.map_err(|e| format!("the run stopped: {e}"))??;
            return Ok((Some(export.clone()), said));
        }
        Action::Replay { export, integration, failures } => {
            // The file must be this integration's, of this export's runs: the form says which.
            let spec = app.config.integration(integration).map_err(|e| e.to_string())?;
            // (a retry file is named `<integration>.jsonl.retry-<tag>.jsonl`)
            let of = sluice_core::layout::RunFolder::of_failures(failures).map(|(_, name)| name);
            let mine = of.is_some_and(|n| n == *integration || n.starts_with(&format!("{integration}.jsonl.retry-")));
            if &spec.export != export || !mine {
                return Err(format!(
                    "{failures:?} is not a failures file of integration {integration:?} of export {export:?}"
                ));
            }
            let (console, integration, failures) = (c.clone(), integration.clone(), failures.clone());
            let replay = tokio::spawn(async move {
                crate::integrate::replay(&console.app, &integration, &failures).await.map_err(|e| format!("{e:#}"))
            });
            let said = replay.await.map_err(|e| format!("the replay stopped: {e}"))??;
            return Ok((Some(export.clone()), said));
        }
        Action::Status | Action::Show { .. } | Action::Audit { .. } | Action::Orchestrations => {
            return Err("not a change".into())
        }
    };
    let v = entry.draft_version.or(entry.active_version).map(|v| format!(" (v{v})")).unwrap_or_default();
    Ok((
        Some(entry.name.clone()),
        format!("{}: done{v}; the export is {}.", super::capitalized(action.name()), entry.state.as_str()),
    ))
}
