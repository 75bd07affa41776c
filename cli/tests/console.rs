//! `sluice console` as a person uses it, in a real headless Chromium: create a draft, add a
//! table, activate, bind an orchestration, pause and resume, see a failed run's alert, replay a
//! delivery's failures, delete; an action refused for the wrong permission. And its local web
//! security from outside a browser: the Host check, the CSRF token and origin, no CORS, the
//! access token beyond loopback.
//!
//! With SLUICE_SCREENSHOTS=<folder> set, the main pages are saved there (docs/console/).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sluice_testkit::api::{FakeApi, Shape};
use sluice_testkit::browser::Browser;
use sluice_testkit::moto::http_request;
use sluice_testkit::{create_contacts, insert_contacts};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// A running console; stopped when dropped.
struct Console {
    child: Child,
    url: String,
    /// The link it printed.
    link: String,
}

impl Console {
    fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Console {
        let mut cmd = Command::new(BIN);
        let listen = if args.contains(&"--listen") { vec![] } else { vec!["--listen", "127.0.0.1:0"] };
        cmd.arg("--config").arg(config).arg("console").args(listen).args(args);
        cmd.env_remove("SLUICE_CONFIG").env_remove("SLUICE_HISTORY").env_remove("SLUICE_CONSOLE_TOKEN");
        cmd.env("HOOK_TOKEN", "t0ken").envs(env.iter().copied());
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = cmd.stdout(Stdio::piped()).stderr(log.reopen().unwrap()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = match line.split_whitespace().nth(1) {
            // With a token the printed link carries it: the address is what comes before.
            Some(u) => u.split("/?").next().unwrap_or(u).trim_end_matches('/').to_string(),
            None => panic!("the console did not start: {}", std::fs::read_to_string(log.path()).unwrap_or_default()),
        };
        let link = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        Console { child, url, link }
    }

    fn endpoint(&self) -> &str {
        &self.url
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A source with contacts and deals, a file export `filed` delivered to `api` by `hook`.
fn workspace(api: &FakeApi) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = create_contacts(&dir.path().join("source.db"));
    insert_contacts(&db, 1, 20, "2025-06-01 00:00:00");
    db.execute_batch("CREATE TABLE deals (id INTEGER PRIMARY KEY, amount INTEGER, updated_at TEXT); INSERT INTO deals VALUES (1, 5, '2025-06-01 00:00:00');").unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\nhistory = \"history.db\"\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n\
             [[export]]\nname = \"filed\"\nsource = \"db\"\ndestination = \"out/filed\"\n\n\
             [[export.table]]\nname = \"contacts\"\nincremental = {{ strategy = \"full\" }}\n\n\
             [integrations.hook]\nkind = \"webhook\"\nexport = \"filed\"\nurl = \"{}/in\"\ntoken = \"env:HOOK_TOKEN\"\n",
            api.url
        ),
    )
    .unwrap();
    (dir, config)
}

const CRM: &str = "name = \"crm\"\nsource = \"db\"\ndestination = \"out/crm\"\n\n[[table]]\nname = \"contacts\"\nincremental = { strategy = \"timestamp\", column = \"updated_at\" }\n";

fn shoot(b: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("SLUICE_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        b.screenshot(&Path::new(&dir).join(format!("{name}.png")));
    }
}

#[test]
fn a_person_manages_an_export_end_to_end_in_a_browser_and_is_refused_what_they_may_not_do() {
    let api = FakeApi::start(Shape::Webhook);
    api.reject_records_where("id", "3");
    let (dir, config) = workspace(&api);
    let console = Console::start(&config, &[], &[]);
    let b = Browser::start();
    let url = |path: &str| format!("{}{path}", console.url);

    // The list: the file's export, no managed one yet.
    b.goto(&url("/"));
    let t = b.wait_text("filed");
    assert!(t.contains("filed"), "{t}");

    // Create a draft.
    b.click_button("New export");
    b.fill("textarea[name=definition]", CRM);
    b.click_button("Review");
    let t = b.wait_text("Creates a draft export");
    assert!(t.contains("Creates a draft export") && t.contains("crm"), "{t}");
    b.click_button("Create");
    assert!(
        b.url().ends_with("/exports/crm?done=Create%3A%20done%20%28v1%29%3B%20the%20export%20is%20draft."),
        "{}",
        b.url()
    );
    let t = b.wait_text("Create: done (v1); the export is draft.");
    assert!(t.contains("Create: done (v1); the export is draft."), "{t}");

    // Add a table: the review shows the diff, the save a new draft.
    b.click_button("Edit");
    b.fill(
        "textarea[name=definition]",
        &format!("{CRM}\n[[table]]\nname = \"deals\"\nincremental = {{ strategy = \"full\" }}\n"),
    );
    b.click_button("Review");
    let t = b.wait_text("Saves this change as a draft");
    assert!(t.contains("Saves this change as a draft") && t.contains("+ name = \"deals\""), "{t}");
    b.click_button("Edit");
    let t = b.wait_text("Edit: done (v2)");
    assert!(t.contains("Edit: done (v2)"), "{t}");

    // Activate, after seeing what it does.
    b.click_button("Activate");
    let t = b.wait_text("Checks draft v2 against its source and destination");
    assert!(t.contains("Checks draft v2 against its source and destination"), "{t}");
    shoot(&b, "confirm-activate");
    b.click_button("Activate");
    let t = b.wait_text("Activate: done (v2); the export is active.");
    assert!(t.contains("Activate: done (v2); the export is active."), "{t}");

    // Bind an orchestration.
    b.fill("input[name=name]", "hourly");
    b.fill("input[name=schedule]", "rate(1 hour)");
    b.click_button("Review");
    let t = b.wait_text("Binds the export to the schedule rate(1 hour) as orchestration hourly");
    assert!(t.contains("Binds the export to the schedule rate(1 hour) as orchestration hourly"), "{t}");
    b.click_button("Create an orchestration");
    let t = b.wait_text("hourly");
    assert!(t.contains("hourly") && t.contains("rate(1 hour)") && t.contains("running"), "{t}");

    // Pause and resume.
    b.click_button("Pause");
    b.click_button("Pause");
    let t = b.wait_text("the export is paused");
    assert!(t.contains("the export is paused") && t.contains("export paused"), "{t}");
    b.click_button("Resume");
    b.click_button("Resume");
    let t = b.wait_text("the export is active");
    assert!(t.contains("the export is active"), "{t}");

    // A run that fails: the page says why, and the export's page shows the alert.
    let db = dir.path().join("source.db");
    std::fs::rename(&db, dir.path().join("away.db")).unwrap();
    b.click_button("Run now");
    b.click_button("Run now");
    let t = b.wait_text("FAILED");
    assert!(t.contains("FAILED") && t.contains("source.db"), "{t}");
    std::fs::rename(dir.path().join("away.db"), &db).unwrap();
    b.goto(&url("/exports/crm"));
    let t = b.wait_text("failed_run");
    assert!(t.contains("failed_run") && t.contains("firing"), "{t}");
    b.goto(&url("/?problem=alerting"));
    let t = b.wait_text("crm");
    assert!(t.contains("crm") && !t.contains("filed"), "{t}");
    b.goto(&url("/exports/crm"));
    b.click_button("Run now");
    b.click_button("Run now");
    let t = b.wait_text("succeeded: 21 rows");
    assert!(t.contains("succeeded: 21 rows"), "{t}");
    let t = b.wait_text("resolved");
    assert!(t.contains("resolved"), "the alert resolved: {t}");
    shoot(&b, "export");

    // A delivery's rejected record, replayed once the API takes it.
    b.goto(&url("/exports/filed"));
    b.click_button("Run now");
    b.click_button("Run now");
    let t = b.wait_text("a delivery failed");
    assert!(t.contains("a delivery failed") && t.contains("Replay failures"), "{t}");
    api.accept_all();
    b.click_button("Replay failures");
    let t = b.wait_text("Sends the records of");
    assert!(t.contains("Sends the records of"), "{t}");
    b.click_button("Replay failures");
    let t = b.wait_text("1 record delivered");
    assert!(t.contains("1 record delivered"), "{t}");
    b.goto(&url("/"));
    shoot(&b, "exports");

    // Another console with the operate permission only: creating is refused, naming why.
    let operator = Console::start(&config, &["--grant", "operate"], &[]);
    b.goto(&format!("{}/new", operator.url));
    b.click_button("Review");
    let t = b.wait_text("Create needs the configure permission");
    assert!(t.contains("Create needs the configure permission") && t.contains("--grant operate"), "{t}");
    drop(operator);

    // Delete, back to the list without it.
    b.goto(&url("/exports/crm"));
    b.click_button("Delete");
    let t = b.wait_text("Deletes the export");
    assert!(t.contains("Deletes the export") && t.contains("orchestration(s) are removed"), "{t}");
    b.click_button("Delete");
    assert!(!b.url().contains("/exports/"), "{}: {}", b.url(), b.text());
    let t = b.wait_text("Delete: done");
    assert!(t.contains("Delete: done") && !t.contains("crm\n"), "{t}");
}

fn status(response: &str) -> u16 {
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn the_console_refuses_foreign_hosts_forged_forms_and_strangers_and_allows_no_other_origin() {
    let api = FakeApi::start(Shape::Webhook);
    let (_dir, config) = workspace(&api);
    let c = Console::start(&config, &[], &[]);
    let ep = c.endpoint();
    let page = http_request(ep, "GET", "/", &[], "").unwrap();
    assert_eq!(status(&page), 200, "{page}");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).map(|s| s[..32].to_string());
    // The list page has no form; the create form has one.
    let form = http_request(ep, "GET", "/new", &[], "").unwrap();
    let csrf = csrf.or_else(|| form.split("name=\"csrf\" value=\"").nth(1).map(|s| s[..32].to_string())).unwrap();
    for h in ["content-security-policy: default-src 'none'", "x-frame-options: DENY", "server-timing: app;dur="] {
        assert!(page.contains(h), "missing {h}: {page}");
    }

    // DNS rebinding: a page elsewhere reaching the console under its own host name.
    let raw = raw(ep, "GET / HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&raw), 421, "{raw}");
    assert!(raw.contains("--allow-host"), "{raw}");

    // A change without the token, with a forged one, or from another origin: refused, nothing made.
    let form = "definition=name+%3D+%22x%22";
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let no_token = http_request(ep, "POST", "/exports", &[form_type], form).unwrap();
    assert_eq!(status(&no_token), 403, "{no_token}");
    let forged =
        http_request(ep, "POST", "/exports", &[form_type], &format!("{form}&csrf=00000000000000000000000000000000"))
            .unwrap();
    assert_eq!(status(&forged), 403);
    let cross = http_request(
        ep,
        "POST",
        "/exports",
        &[form_type, ("Origin", "https://attacker.example"), ("Sec-Fetch-Site", "cross-site")],
        &format!("{form}&csrf={csrf}"),
    )
    .unwrap();
    assert_eq!(status(&cross), 403, "{cross}");
    let ok = http_request(ep, "POST", "/exports", &[form_type], &format!("{form}&csrf={csrf}")).unwrap();
    assert_eq!(status(&ok), 200, "the same form with the token is shown for review: {ok}");
    // No response lets another origin read it.
    for r in [&page, &no_token, &cross, &ok] {
        assert!(!r.to_ascii_lowercase().contains("access-control-allow"), "{r}");
    }
    drop(c);

    // Beyond loopback: refused without a token; with one, every request must carry it.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["console", "--listen", "0.0.0.0:0"])
        .env_remove("SLUICE_CONSOLE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SLUICE_CONSOLE_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = "a-long-enough-console-token-42";
    let c = Console::start(&config, &["--listen", "0.0.0.0:0"], &[("SLUICE_CONSOLE_TOKEN", token)]);
    assert!(c.link.ends_with(&format!("/?token={token}")), "the printed link carries the token: {}", c.link);
    let ep = c.endpoint();
    assert_eq!(status(&http_request(ep, "GET", "/", &[], "").unwrap()), 401);
    let bearer = format!("Bearer {token}");
    assert_eq!(status(&http_request(ep, "GET", "/", &[("Authorization", &bearer)], "").unwrap()), 200);
    // The printed link carries the token once: it sets the cookie and loads the page without it.
    let linked = http_request(ep, "GET", &format!("/?token={token}"), &[], "").unwrap();
    assert_eq!(status(&linked), 303, "{linked}");
    assert!(linked.contains("set-cookie: sluice_console=") && linked.contains("HttpOnly; SameSite=Strict"), "{linked}");
    assert!(linked.contains("location: /\r\n"), "{linked}");
    let cookie = format!("sluice_console={token}");
    assert_eq!(status(&http_request(ep, "GET", "/", &[("Cookie", &cookie)], "").unwrap()), 200);
    let wrong = http_request(ep, "GET", "/?token=not-the-token-at-all", &[], "").unwrap();
    assert_eq!(status(&wrong), 401, "a wrong token in the link sets nothing: {wrong}");
    assert!(!wrong.contains("set-cookie"), "{wrong}");
}

/// A raw request, Host line and all, as written.
fn raw(endpoint: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
