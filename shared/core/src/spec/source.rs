//! Sources in the config, of kinds core does not know. Each kind of source lives beside its
//! adapter (SQLite in `sluice-local`, Snowflake in `sluice-snowflake`): its keys, their
//! validation and how it opens. The binaries assemble the kinds they ship in one list
//! (`sluice_connect::SOURCE_KINDS`), which the config is read with.
//!
//! Why a list of kinds and not one serde enum tagged by `kind`: core would have to name every
//! adapter, and serde's tagged enums report an unknown key without the key's path; here the
//! section is checked key by key, so every problem still names `sources.<name>.<key>` and what
//! the kind takes.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::validate::Validator;
use crate::error::BoxError;
use crate::ports::{Secrets, Source};

/// A kind of source a build can read: the name `kind` takes, its keys, and how it opens.
#[async_trait]
pub trait SourceKind: Send + Sync {
    /// What `kind = "…"` says.
    fn name(&self) -> &'static str;

    /// Validates the section's keys (all but `kind`), reporting each problem to `v` under the
    /// section's key; `None` when there was one.
    fn settings(&self, section: &Section<'_>, v: &mut Validator) -> Option<Arc<dyn SourceSettings>>;

    /// Opens the source the settings describe (reading its credentials, logging in); with
    /// `session`, also asks who it is connected as (for `sluice check-connection` only: it costs
    /// queries a run does not need).
    async fn open(
        &self,
        settings: &dyn SourceSettings,
        secrets: &dyn Secrets,
        session: bool,
    ) -> Result<Opened, BoxError>;
}

/// An opened source, and who it is connected as, for `sluice check-connection`.
pub struct Opened {
    pub source: Arc<dyn Source>,
    /// The session as the source reports it (user, role, warehouse…), when it has one.
    pub session: Option<serde_json::Value>,
}

/// One source's validated settings. They hold no secret: at most where the secret is.
pub trait SourceSettings: fmt::Debug + Send + Sync + 'static {
    /// The kind's name.
    fn kind(&self) -> &'static str;

    /// For the kind's own code to get its settings back.
    fn as_any(&self) -> &dyn Any;

    /// Where the source sends its credentials, when it sends them anywhere (a URL), for the
    /// functions' allow-list of secret hosts.
    fn credential_endpoint(&self) -> Option<&str> {
        None
    }

    /// Whether the credentials come from AWS Secrets Manager (a CLI then needs AWS settings).
    fn reads_secrets_manager(&self) -> bool {
        false
    }

    /// Why `mode = "unload"` cannot work with this source (named `source` in the config), as a
    /// problem and a hint; `None` when the source unloads.
    fn unload_refusal(&self, _source: &str) -> Option<(String, String)> {
        Some((
            format!("a {} source cannot unload", self.kind()),
            "use mode = \"stream\" (the default); unload is for Snowflake sources".into(),
        ))
    }
}

/// A named source of the config: its kind and its settings.
#[derive(Clone)]
pub struct SourceSpec {
    kind: &'static dyn SourceKind,
    settings: Arc<dyn SourceSettings>,
}

impl SourceSpec {
    /// The kind's name (`"sqlite"`, `"snowflake"`).
    pub fn kind(&self) -> &'static str {
        self.kind.name()
    }

    pub fn settings(&self) -> &dyn SourceSettings {
        self.settings.as_ref()
    }

    /// The settings as the kind's own type, when the source is of that kind.
    pub fn settings_as<T: 'static>(&self) -> Option<&T> {
        self.settings.as_any().downcast_ref()
    }

    /// Opens the source.
    pub async fn open(&self, secrets: &dyn Secrets) -> Result<Arc<dyn Source>, BoxError> {
        Ok(self.kind.open(self.settings.as_ref(), secrets, false).await?.source)
    }

    /// Opens the source and asks who it is connected as.
    pub async fn open_with_session(&self, secrets: &dyn Secrets) -> Result<Opened, BoxError> {
        self.kind.open(self.settings.as_ref(), secrets, true).await
    }
}

impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.settings.fmt(f)
    }
}

/// A section of keys as a kind validates it (`[sources.<name>]`, an integration's own keys).
pub struct Section<'a> {
    /// The section's key path (`sources.<name>`), for problems.
    pub key: &'a str,
    /// Its keys, `kind` taken out.
    pub keys: toml::Table,
    /// The folder relative paths in the file resolve against.
    pub base_dir: &'a Path,
}

impl Section<'_> {
    /// The keys as the kind's raw type `T` (whose fields are all optional). Every problem names
    /// its key: one the kind does not take (`allowed`, listed in the hint with `besides`, the
    /// keys others take in the same section), one of the wrong type. All are reported, not the
    /// first only.
    pub fn parse<T: DeserializeOwned>(
        &self,
        kind: &str,
        allowed: &[&str],
        besides: &str,
        v: &mut Validator,
    ) -> Option<T> {
        let mut keys = self.keys.clone();
        let mut ok = true;
        keys.retain(|k, _| {
            let known = allowed.contains(&k);
            if !known {
                ok = false;
                v.problem(
                    format!("{}.{k}", self.key),
                    format!("not used by kind = \"{kind}\""),
                    format!("remove it; kind = \"{kind}\" takes: {}{besides}", allowed.join(", ")),
                );
            }
            known
        });
        // Each key alone: a value of the wrong type is named by its key.
        for (k, value) in &keys {
            let alone = toml::Table::from_iter([(k.clone(), value.clone())]);
            if let Err(e) = toml::Value::Table(alone).try_into::<T>() {
                ok = false;
                v.problem(format!("{}.{k}", self.key), e.message().to_string(), "");
            }
        }
        if !ok {
            return None;
        }
        match toml::Value::Table(keys).try_into::<T>() {
            Ok(raw) => Some(raw),
            Err(e) => {
                v.problem(self.key, e.message().to_string(), "");
                None
            }
        }
    }

    /// A path as written in the file, resolved against the file's folder.
    pub fn resolve(&self, raw: &str) -> PathBuf {
        let p = PathBuf::from(raw);
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }
}

/// Validates a section with the kind its `kind` names, among `kinds`.
pub(crate) fn validate(
    key: &str,
    mut keys: toml::Table,
    base_dir: &Path,
    kinds: &[&'static dyn SourceKind],
    v: &mut Validator,
) -> Option<SourceSpec> {
    let known: Vec<String> = kinds.iter().map(|k| format!("kind = {:?}", k.name())).collect();
    let name = match keys.remove("kind") {
        Some(toml::Value::String(name)) => name,
        Some(_) => {
            v.problem(format!("{key}.kind"), "not a string", format!("use {}", known.join(" or ")));
            return None;
        }
        None => {
            v.problem(format!("{key}.kind"), "missing", format!("use {}", known.join(" or ")));
            return None;
        }
    };
    let Some(kind) = kinds.iter().find(|k| k.name() == name) else {
        v.problem(
            format!("{key}.kind"),
            format!("unknown source kind {name:?}"),
            format!("use {}", known.join(" or ")),
        );
        return None;
    };
    let section = Section { key, keys, base_dir };
    let settings = kind.settings(&section, v)?;
    Some(SourceSpec { kind: *kind, settings })
}
