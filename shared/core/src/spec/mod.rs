//! Export specs: the TOML config file, parsed strictly (unknown keys are errors) and validated
//! into typed values before anything is built. Every problem names the file, the key and what to
//! do, and all problems of a file are reported at once.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::format::{FileFormat, QuoteStyle};
use crate::integrate::raw::RawIntegration;
use crate::integrate::spec::IntegrationSpec;

/// The config file's schema version this build reads.
pub const CONFIG_VERSION: u32 = 1;
/// Where the history lives when the config does not say: beside the config file.
pub const DEFAULT_HISTORY: &str = ".sluice/history.db";

mod alerts;
pub mod destination;
pub(crate) mod export;
mod format;
pub mod source;
mod table;
pub(crate) mod validate;

pub use self::alerts::{AlertSpec, Freshness, RowsBand};
pub use self::destination::{Destination, DestinationKind, DestinationSettings};
pub use self::export::*;
pub use self::source::{Opened, Section, SourceKind, SourceSettings, SourceSpec};
pub use self::validate::{is_valid_name, parse_duration, parse_size, ConfigError, Problem, Validator};
pub use crate::format::DEFAULT_MAX_FILE_SIZE;
pub use crate::layout::path_segment;
pub use crate::value::{TableName, UpperBound};

use self::alerts::RawAlerts;
use self::format::RawFormat;
use self::table::RawTable;

// ---------------------------------------------------------------------------------------------
// Validated types
// ---------------------------------------------------------------------------------------------

/// The kinds of source and destination a build has: what its config files are read with
/// (`sluice_connect::KINDS` for the binaries).
#[derive(Clone, Copy)]
pub struct Kinds {
    pub sources: &'static [&'static dyn SourceKind],
    pub destinations: &'static [&'static dyn DestinationKind],
}

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources: Vec<&str> = self.sources.iter().map(|k| k.name()).collect();
        let destinations: Vec<&str> = self.destinations.iter().map(|k| k.name()).collect();
        write!(f, "Kinds {{ sources: {sources:?}, destinations: {destinations:?} }}")
    }
}

/// The warning of a file without `[[export]]` sections.
pub const NO_EXPORTS: &str = "no exports defined in the file";

/// A validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// The folder relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// The history location as written (a path, resolved against `base_dir`).
    pub history: PathBuf,
    pub sources: BTreeMap<String, SourceSpec>,
    pub exports: Vec<ExportSpec>,
    /// `[integrations.<name>]`, sorted by name.
    pub integrations: Vec<IntegrationSpec>,
    /// Allowed but worth knowing (e.g. a format that cannot tell NULL from empty).
    pub warnings: Vec<Problem>,
    /// What the file was read with, and what definitions kept elsewhere are read with.
    pub kinds: Kinds,
}

// ---------------------------------------------------------------------------------------------
// Raw (file) types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Any TOML value, so `version = "1"` is named as what it is, not as a parse error.
    version: Option<toml::Value>,
    history: Option<String>,
    #[serde(default)]
    sources: BTreeMap<String, toml::Table>,
    #[serde(default, rename = "export")]
    exports: Vec<RawExport>,
    #[serde(default)]
    integrations: BTreeMap<String, RawIntegration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    name: String,
    source: Option<String>,
    destination: Option<String>,
    schedule: Option<String>,
    state: Option<String>,
    format: Option<RawFormat>,
    alerts: Option<RawAlerts>,
    #[serde(default, rename = "table")]
    tables: Vec<RawTable>,
}

// ---------------------------------------------------------------------------------------------
// Loading and validation
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads and validates a config file, its sources with the kinds this build has.
    pub fn load(path: &Path, kinds: Kinds) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(path, &text, kinds)
    }

    /// Validates config text as if read from `path` (relative paths resolve against its folder).
    pub fn parse(path: &Path, text: &str, kinds: Kinds) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(e) })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        let mut v = Validator::default();
        let config = v.config(raw, path, &base_dir, kinds);
        if v.problems.is_empty() {
            Ok(Config { warnings: v.warnings, ..config })
        } else {
            Err(ConfigError::Invalid { path: path.to_path_buf(), problems: v.problems })
        }
    }

    /// Validates one export's definition (the keys of an `[[export]]` section, as TOML) against
    /// this config's sources, as if it were written in the file: how a definition kept in the
    /// state store (the catalog) becomes a runnable export.
    pub fn parse_export(&self, body: &str) -> Result<ExportSpec, ConfigError> {
        let raw: RawExport =
            toml::from_str(body).map_err(|e| ConfigError::Parse { path: self.path.clone(), source: Box::new(e) })?;
        let mut v = Validator::default();
        let declared: BTreeSet<String> = self.sources.keys().cloned().collect();
        let spec = v.export("export", raw, &declared, &self.base_dir, self.kinds);
        if let Some(spec) = &spec {
            v.unload_needs(spec, &self.sources);
        }
        match spec {
            Some(spec) if v.problems.is_empty() => Ok(spec),
            _ => Err(ConfigError::Invalid { path: self.path.clone(), problems: v.problems }),
        }
    }

    pub fn export(&self, name: &str) -> Result<&ExportSpec, ConfigError> {
        self.exports.iter().find(|e| e.name == name).ok_or_else(|| ConfigError::UnknownExport {
            path: self.path.clone(),
            name: name.to_string(),
            known: match self.exports.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ") {
                none if none.is_empty() => "none (`sluice exports list` shows the managed ones)".into(),
                known => known,
            },
        })
    }

    pub fn integration(&self, name: &str) -> Result<&IntegrationSpec, ConfigError> {
        self.integrations.iter().find(|i| i.name == name).ok_or_else(|| ConfigError::UnknownIntegration {
            path: self.path.clone(),
            name: name.to_string(),
            known: match self.integrations.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ") {
                k if k.is_empty() => "none (add an [integrations.<name>] section, see docs/integrations.md)".into(),
                k => k,
            },
        })
    }

    /// The integrations that deliver `export`'s manifests.
    pub fn integrations_of<'a>(&'a self, export: &'a str) -> impl Iterator<Item = &'a IntegrationSpec> + 'a {
        self.integrations.iter().filter(move |i| i.export == export)
    }

    /// The history location with relative paths resolved.
    pub fn history_path(&self) -> PathBuf {
        resolve(&self.base_dir, &self.history.to_string_lossy())
    }
}

fn resolve(base: &Path, raw: &str) -> PathBuf {
    let p = PathBuf::from(raw);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

impl Validator {
    fn config(&mut self, raw: RawConfig, path: &Path, base_dir: &Path, kinds: Kinds) -> Config {
        match raw.version {
            Some(toml::Value::Integer(v)) if v == i64::from(CONFIG_VERSION) => {}
            Some(toml::Value::Integer(other)) => self.problem(
                "version",
                format!("version {other} is not supported"),
                format!("this build reads version = {CONFIG_VERSION}"),
            ),
            Some(other) => self.problem(
                "version",
                format!("{other} is not a version number"),
                format!("write version = {CONFIG_VERSION}, a number without quotes"),
            ),
            None => self.problem("version", "missing", format!("add `version = {CONFIG_VERSION}` at the top")),
        }

        let mut sources = BTreeMap::new();
        // Declared names, valid or not: an export naming a source whose definition has a problem
        // gets that one problem, not a second "no source named" one.
        let declared: BTreeSet<String> = raw.sources.keys().cloned().collect();
        for (name, src) in raw.sources {
            let key = format!("sources.{name}");
            if !is_valid_name(&name) {
                self.problem(&key, "invalid source name", "use 1-64 characters of a-z, 0-9 and _");
            }
            if let Some(spec) = source::validate(&key, src, base_dir, kinds.sources, self) {
                sources.insert(name, spec);
            }
        }

        if raw.exports.is_empty() {
            // Allowed: exports may all be managed in the state store (`sluice exports`). A
            // caller that can read the catalog drops this warning when it has exports
            // (NO_EXPORTS names it).
            self.warning(
                "export",
                NO_EXPORTS,
                "add an [[export]] section (see docs/configuration.md), or manage exports with `sluice exports create` or `sluice apply`",
            );
        }
        let mut names = BTreeSet::new();
        let mut exports = Vec::new();
        let declared_exports: Vec<String> = raw.exports.iter().map(|e| e.name.clone()).collect();
        for (i, e) in raw.exports.into_iter().enumerate() {
            let key = format!("export[{i}]");
            if !names.insert(e.name.clone()) {
                self.problem(
                    format!("{key}.name"),
                    format!("duplicate export name {:?}", e.name),
                    "export names must be unique in the file",
                );
            }
            if let Some(spec) = self.export(&key, e, &declared, base_dir, kinds) {
                self.unload_needs(&spec, &sources);
                exports.push(spec);
            }
        }

        let integrations = self.integrations(raw.integrations, &exports, &declared_exports);

        Config {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            history: PathBuf::from(raw.history.unwrap_or_else(|| DEFAULT_HISTORY.to_string())),
            sources,
            exports,
            integrations,
            warnings: Vec::new(),
            kinds,
        }
    }

    /// `mode = "unload"` is Snowflake's `COPY INTO @stage`: it needs a Snowflake source with a
    /// stage, and a CSV format (the one file format both Sluice and `COPY INTO` describe).
    fn unload_needs(&mut self, export: &ExportSpec, sources: &BTreeMap<String, SourceSpec>) {
        for t in export.tables.iter().filter(|t| t.mode == TableMode::Unload) {
            let key = format!("export.{}.table.{}.mode", export.name, t.name);
            if let Some((problem, hint)) =
                sources.get(&export.source).and_then(|s| s.settings().unload_refusal(&export.source))
            {
                self.problem(&key, problem, hint);
            }
            match &export.format {
                FileFormat::Csv(f) if f.quote_style == QuoteStyle::Always => self.problem(
                    &key,
                    "Snowflake's unload cannot quote every value",
                    "use format.quote_style = \"needed\" or mode = \"stream\"",
                ),
                FileFormat::Csv(_) => {}
                FileFormat::JsonLines(_) => {
                    self.problem(&key, "unload writes CSV only", "use format.kind = \"csv\" or mode = \"stream\"")
                }
            }
        }
    }

    fn export(
        &mut self,
        key: &str,
        raw: RawExport,
        sources: &BTreeSet<String>,
        base_dir: &Path,
        kinds: Kinds,
    ) -> Option<ExportSpec> {
        let before = self.problems.len();
        if !is_valid_name(&raw.name) {
            self.problem(
                format!("{key}.name"),
                format!("invalid export name {:?}", raw.name),
                "use 1-64 characters of a-z, 0-9 and _",
            );
        }
        let key = format!("export.{}", raw.name);
        let source = match raw.source {
            Some(s) if sources.contains(&s) => s,
            Some(s) => {
                let known = sources.iter().cloned().collect::<Vec<_>>().join(", ");
                self.problem(
                    format!("{key}.source"),
                    format!("no source named {s:?}"),
                    format!("define [sources.{s}] or use one of: {known}"),
                );
                s
            }
            None => {
                self.problem(format!("{key}.source"), "missing", "name a source defined under [sources]");
                String::new()
            }
        };
        let destination = match raw.destination.as_deref() {
            None | Some("") => {
                let forms: Vec<&str> = kinds.destinations.iter().map(|k| k.form()).collect();
                self.problem(format!("{key}.destination"), "missing", format!("give {}", forms.join(" or ")));
                None
            }
            Some(d) => destination::parse(&format!("{key}.destination"), d, base_dir, kinds.destinations, self),
        };
        // A problem, not a warning: `run --due` and the stack's rules both act on it, and an
        // export whose schedule never comes round would silently never run.
        let schedule = raw.schedule.as_deref().map(str::trim).map(str::to_string);
        if let Some(schedule) = &schedule {
            if let Err(why) = crate::schedule::check(schedule) {
                self.problem(
                    format!("{key}.schedule"),
                    why.0,
                    "write an EventBridge schedule: rate(15 minutes), rate(1 hour) or cron(0 6 * * ? *)",
                );
            }
        }
        let state = match raw.state.as_deref() {
            None | Some("active") => ExportState::Active,
            Some("draft") => ExportState::Draft,
            Some("paused") => ExportState::Paused,
            Some(other) => {
                self.problem(format!("{key}.state"), format!("unknown state {other:?}"), "use draft, active or paused");
                ExportState::Draft
            }
        };
        let format = self.format(&format!("{key}.format"), raw.format.unwrap_or_default());
        let alerts = self.alerts(&format!("{key}.alerts"), raw.alerts.unwrap_or_default());

        if raw.tables.is_empty() {
            self.problem(format!("{key}.table"), "no tables", "add at least one [[export.table]] with a name");
        }
        let mut tables = Vec::new();
        let mut seen = BTreeSet::new();
        for t in raw.tables {
            let tkey = format!("{key}.table.{}", t.name);
            if !seen.insert(path_segment(&t.name)) {
                self.problem(
                    &tkey,
                    "table listed twice (names are compared case-insensitively)",
                    "list each table once per export",
                );
            }
            if let Some(spec) = self.table(&tkey, t) {
                tables.push(spec);
            }
        }

        (self.problems.len() == before).then_some(ExportSpec {
            name: raw.name,
            source,
            destination: destination?,
            schedule,
            state,
            format: format?,
            tables,
            alerts,
        })
    }
}

impl crate::trust::SecretHosts {
    /// Each source whose credentials would go to a host the list does not allow.
    pub fn check_sources(&self, config: &Config) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, source) in &config.sources {
            if let Some(endpoint) = source.settings().credential_endpoint().filter(|e| !self.allows(e)) {
                problems.push(self.refusal(&format!("source {name:?}"), endpoint));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Compression;
    use std::time::Duration;

    /// A kind of source for these tests of what core validates (the real kinds live beside
    /// their adapters, and their tests there): `path`, resolved against the config's folder.
    struct PathKind;

    #[derive(Debug)]
    struct PathSettings(PathBuf);

    impl SourceSettings for PathSettings {
        fn kind(&self) -> &'static str {
            "sqlite"
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[derive(serde::Deserialize)]
    struct RawPath {
        path: String,
    }

    #[async_trait::async_trait]
    impl SourceKind for PathKind {
        fn name(&self) -> &'static str {
            "sqlite"
        }
        fn settings(&self, section: &Section<'_>, v: &mut Validator) -> Option<std::sync::Arc<dyn SourceSettings>> {
            let raw: RawPath = section.parse("sqlite", &["path"], "", v)?;
            Some(std::sync::Arc::new(PathSettings(section.resolve(&raw.path))))
        }
        async fn open(
            &self,
            _: &dyn SourceSettings,
            _: &dyn crate::ports::Secrets,
            _: bool,
        ) -> Result<Opened, crate::BoxError> {
            Err("not opened in these tests".into())
        }
    }

    static PATH_KIND: PathKind = PathKind;

    /// A destination kind for these tests: a path, resolved against the config's folder.
    struct DirKind;

    #[derive(Debug)]
    struct Dir(PathBuf);

    impl fmt::Display for Dir {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0.display())
        }
    }

    impl DestinationSettings for Dir {
        fn kind(&self) -> &'static str {
            "folder"
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn is_local(&self) -> bool {
            true
        }
    }

    impl DestinationKind for DirKind {
        fn name(&self) -> &'static str {
            "folder"
        }
        fn form(&self) -> &'static str {
            "a local folder"
        }
        fn claims(&self, raw: &str) -> bool {
            !raw.contains("://")
        }
        fn parse(
            &self,
            _: &str,
            raw: &str,
            base_dir: &Path,
            _: &mut Validator,
        ) -> Option<std::sync::Arc<dyn DestinationSettings>> {
            Some(std::sync::Arc::new(Dir(base_dir.join(raw))))
        }
    }

    static DIR_KIND: DirKind = DirKind;

    const TEST_KINDS: Kinds = Kinds { sources: &[&PATH_KIND], destinations: &[&DIR_KIND] };

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/cfg/sluice.toml"), text, TEST_KINDS)
    }

    const MINIMAL: &str = r#"
version = 1
[sources.db]
kind = "sqlite"
path = "sample.db"
[[export]]
name = "contacts"
source = "db"
destination = "out"
  [[export.table]]
  name = "contacts"
  incremental = { strategy = "timestamp", column = "updated_at", lag = "5m" }
"#;

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_the_reference_defaults() {
        let c = parse(MINIMAL).unwrap();
        let source = c.sources["db"].settings_as::<PathSettings>().unwrap();
        assert_eq!(source.0, PathBuf::from("/cfg/sample.db"), "relative paths resolve against the file's folder");
        let e = &c.exports[0];
        assert_eq!(e.destination.to_string(), "/cfg/out");
        assert!(e.destination.is_local());
        assert_eq!(c.history_path(), PathBuf::from("/cfg/.sluice/history.db"));
        let FileFormat::Csv(f) = &e.format else { panic!() };
        assert_eq!(f.delimiter, b'|');
        assert!(f.header && f.empty_field_as_null);
        assert_eq!(f.quote, Some(b'"'));
        assert_eq!(f.compression, Compression::Gzip { level: 6 });
        assert_eq!(f.max_file_size, DEFAULT_MAX_FILE_SIZE);
        let Incremental::Timestamp(t) = &e.tables[0].incremental else { panic!() };
        assert_eq!(t.upper_bound, UpperBound::Now { lag: Duration::from_secs(300) });
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_key_and_line() {
        let err =
            parse(&MINIMAL.replace("destination = \"out\"", "destination = \"out\"\ndestinaton = 1")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("destinaton") && msg.contains("line"), "{msg}");
    }

    #[test]
    fn duplicate_and_invalid_names_are_all_reported() {
        let text = format!("{MINIMAL}\n[[export]]\nname = \"contacts\"\nsource = \"db\"\ndestination = \"o\"\n[[export.table]]\nname=\"t\"\nincremental={{strategy=\"full\"}}\n[[export]]\nname = \"Bad-Name\"\nsource = \"db\"\ndestination = \"o\"\n[[export.table]]\nname=\"t\"\nincremental={{strategy=\"full\"}}\n");
        let p = problems(&text);
        assert!(p.iter().any(|p| p.problem.contains("duplicate export name")), "{p:?}");
        assert!(p.iter().any(|p| p.problem.contains("invalid export name")), "{p:?}");
    }

    #[test]
    fn empty_table_list_is_an_error_with_a_hint() {
        let text = MINIMAL.split("  [[export.table]]").next().unwrap();
        let p = problems(text);
        assert_eq!(p[0].key, "export.contacts.table");
        assert!(p[0].hint.contains("[[export.table]]"));
    }

    #[test]
    fn the_check_strategy_needs_a_key_and_takes_columns_or_all() {
        let with = |inc: &str| MINIMAL.replace("strategy = \"timestamp\", column = \"updated_at\", lag = \"5m\"", inc);
        let p = problems(&with("strategy = \"check\""));
        assert!(p.iter().any(|p| p.key.ends_with("incremental.key") && p.problem == "missing"), "{p:?}");
        let p = problems(&with("strategy = \"check\", key = [\"id\"], column = \"updated_at\", columns = 3"));
        assert!(p.iter().any(|p| p.key.ends_with(".column")), "{p:?}");
        assert!(p.iter().any(|p| p.key.ends_with(".columns") && p.problem.contains("invalid value 3")), "{p:?}");
        let p = problems(&with("strategy = \"timestamp\", column = \"updated_at\", deletes = true"));
        assert!(p.iter().any(|p| p.key.ends_with(".deletes") && p.hint.contains("check")), "{p:?}");
        let c = parse(&with("strategy = \"check\", key = [\"id\"], columns = [\"email\", \"stage\"], deletes = true"))
            .unwrap();
        let Incremental::Check(check) = &c.exports[0].tables[0].incremental else { panic!("check") };
        assert_eq!(check.key, ["id"]);
        assert_eq!(check.columns.as_deref(), Some(&["email".to_string(), "stage".to_string()][..]));
        assert!(check.deletes);
        let c = parse(&with("strategy = \"check\", key = [\"id\"], columns = \"all\"")).unwrap();
        assert!(
            matches!(&c.exports[0].tables[0].incremental, Incremental::Check(c) if c.columns.is_none() && !c.deletes)
        );
        let p = problems(&with("strategy = \"check\", key = [\"id\", \"id\"]"));
        assert!(p.iter().any(|p| p.key.ends_with(".key")), "{p:?}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let p = problems(
            &MINIMAL
                .replace("lag = \"5m\"", "lag = \"5 minutes\"")
                .replace("[[export]]", "[[export]]\nformat = { delimiter = \"||\", compression = \"lz4\" }"),
        );
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"export.contacts.format.delimiter"), "{keys:?}");
        assert!(keys.contains(&"export.contacts.format.compression"), "{keys:?}");
        assert!(keys.contains(&"export.contacts.table.contacts.incremental.lag"), "{keys:?}");
    }

    #[test]
    fn unknown_source_lists_known_ones() {
        let p = problems(&MINIMAL.replace("source = \"db\"", "source = \"nope\""));
        assert!(p[0].hint.contains("db"), "{p:?}");
    }

    #[test]
    fn a_source_with_a_bad_kind_is_one_problem_not_two() {
        let p = problems(&MINIMAL.replace("kind = \"sqlite\"", "kind = \"postgres\""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "sources.db.kind");
        assert!(p[0].hint.contains("kind = \"sqlite\""), "the kinds this build has: {p:?}");
    }

    #[test]
    fn an_integration_kinds_keys_are_its_own_and_every_problem_names_its_key() {
        let with =
            |keys: &str| format!("{MINIMAL}\n[integrations.hook]\nkind = \"webhook\"\nexport = \"contacts\"\n{keys}\n");
        assert!(parse(&with("url = \"https://hooks.example.com/x\"\nbatch_size = 10")).is_ok());
        // A HubSpot key on a webhook and a value of the wrong type: both, each by its key (the
        // values of the kind are checked once its keys read).
        let p = problems(&with("url = 5\nendpoint = \"https://x\"\nmethod = \"GET\""));
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"integrations.hook.endpoint"), "{p:?}");
        assert!(keys.contains(&"integrations.hook.url"), "{p:?}");
        let stray = p.iter().find(|p| p.key == "integrations.hook.endpoint").unwrap();
        assert_eq!(stray.problem, "not used by kind = \"webhook\"");
        assert!(stray.hint.contains("url, method, headers, body"), "{stray:?}");
        // A typo of a common key is refused by name too.
        let p = problems(&with("url = \"https://hooks.example.com/x\"\nbatchsize = 10"));
        assert_eq!(p[0].key, "integrations.hook.batchsize", "{p:?}");
    }

    #[test]
    fn a_destination_no_kind_of_the_build_takes_is_named() {
        // The test kinds write to folders only: an s3:// URL is no kind's.
        let p = problems(&MINIMAL.replace("destination = \"out\"", "destination = \"s3://b/exports\""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "export.contacts.destination");
        assert!(p[0].problem.contains("cannot write to \"s3://b/exports\""), "{p:?}");
        assert!(p[0].hint.contains("a local folder"), "{p:?}");
    }

    #[test]
    fn a_key_the_kind_does_not_take_is_named_with_what_it_takes() {
        let p = problems(&MINIMAL.replace("path = \"sample.db\"", "path = \"sample.db\"\naccount = \"x\""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "sources.db.account");
        assert_eq!(p[0].problem, "not used by kind = \"sqlite\"");
        assert!(p[0].hint.contains("takes: path"), "{p:?}");
    }

    #[test]
    fn ambiguous_null_is_a_warning() {
        let c = parse(&MINIMAL.replace("[[export]]", "[[export]]\nformat = { empty_field_as_null = false }")).unwrap();
        assert!(c.warnings.iter().any(|w| w.key.ends_with("format.null")), "{:?}", c.warnings);
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("500KB"), Some(500_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
    }

    #[test]
    fn table_names_split_into_quoted_parts() {
        assert_eq!(TableName::parse("ANALYTICS.CONTACTS").unwrap().parts, ["ANALYTICS", "CONTACTS"]);
        assert!(TableName::parse("a..b").is_none());
        assert_eq!(path_segment("ANALYTICS.Contacts List"), "analytics.contacts_list");
    }
}
