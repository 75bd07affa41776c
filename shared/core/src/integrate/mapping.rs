//! From a row to the JSON properties an API receives: renamed, dropped, typed and with constant
//! fields, as the integration's `properties` say. A value that cannot take its type fails its
//! record alone (it goes to the failures file with the reason); it never fails the batch.

use crate::error::Invalid;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Number, Value};
use std::sync::Arc;

use super::read::Row;
use crate::value::Column;

/// A mapping resolved against one manifest's columns.
#[derive(Debug, Clone)]
pub struct Mapper {
    props: Vec<(Arc<str>, Source)>,
    nulls: Nulls,
    /// The `_sluice_op` column, when its deletes cannot be sent (see `refusing_deletes`).
    refused_deletes: Option<usize>,
}

#[derive(Debug, Clone)]
enum Source {
    Column { index: usize, column: String, kind: ValueType },
    Constant(Value),
}

/// Finds a column by name: exactly, else ignoring ASCII case (Snowflake upper-cases names).
fn find(columns: &[Column], name: &str) -> Option<usize> {
    columns
        .iter()
        .position(|c| c.name == name)
        .or_else(|| columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)))
}

/// The type `auto` gives a column, from the type its source declares.
fn auto_type(source_type: &str) -> ValueType {
    let t = source_type.to_ascii_lowercase();
    if t.contains("bool") {
        ValueType::Bool
    } else if ["int", "number", "numeric", "decimal", "real", "float", "double", "fixed"].iter().any(|n| t.contains(n))
    {
        ValueType::Number
    } else {
        ValueType::String
    }
}

impl Mapper {
    /// Resolves column names; a name the manifest does not have is an error listing those it has.
    pub fn new(mapping: &Mapping, columns: &[Column]) -> Result<Mapper, Invalid> {
        let listing = || columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
        let props = match &mapping.properties {
            Some(props) => props
                .iter()
                .map(|p| match &p.source {
                    PropertySource::Constant(v) => Ok((p.name.clone(), Source::Constant(v.clone()))),
                    PropertySource::Column { column, kind } => match find(columns, column) {
                        Some(index) => Ok((
                            p.name.clone(),
                            Source::Column { index, column: columns[index].name.clone(), kind: *kind },
                        )),
                        None => Err(format!(
                            "property {:?} maps column {column:?}, which the export does not have; its columns are: {}",
                            p.name,
                            listing()
                        )),
                    },
                })
                .collect::<Result<Vec<_>, String>>()?,
            None => {
                for d in &mapping.drop {
                    if find(columns, d).is_none() {
                        return Err(format!(
                            "drop names column {d:?}, which the export does not have; its columns are: {}",
                            listing()
                        )
                        .into());
                    }
                }
                columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !mapping.drop.iter().any(|d| d.eq_ignore_ascii_case(&c.name)))
                    .map(|(index, c)| {
                        (c.name.clone(), Source::Column { index, column: c.name.clone(), kind: ValueType::Auto })
                    })
                    .collect()
            }
        };
        let props = props
            .into_iter()
            .map(|(name, s): (String, Source)| (Arc::<str>::from(name), s))
            .map(|(name, s)| match s {
                Source::Column { index, column, kind: ValueType::Auto } => {
                    let kind = auto_type(&columns[index].source_type);
                    (
                        name,
                        Source::Column {
                            index,
                            column,
                            kind: if kind == ValueType::String { ValueType::Auto } else { kind },
                        },
                    )
                }
                other => (name, other),
            })
            .collect();
        Ok(Mapper { props, nulls: mapping.nulls, refused_deletes: None })
    }

    /// Rows whose column `op` (a `check` table's `_sluice_op`) says `delete` cannot be sent.
    pub fn refusing_deletes(self, op: Option<usize>) -> Mapper {
        Mapper { refused_deletes: op, ..self }
    }

    pub fn is_refused_delete(&self, row: &Row) -> bool {
        self.refused_deletes.and_then(|i| row.get(i)).and_then(Value::as_str) == Some("delete")
    }

    /// Whether the mapping sends property `name`.
    pub fn has(&self, name: &str) -> bool {
        self.props.iter().any(|(n, _)| &**n == name)
    }

    /// The properties of one row, or why the row cannot be sent.
    pub fn map(&self, row: &Row) -> Result<Properties, Invalid> {
        let mut out = Vec::with_capacity(self.props.len());
        for (name, source) in &self.props {
            let value = match source {
                Source::Constant(v) => v.clone(),
                Source::Column { index, column, kind } => {
                    let raw = row.get(*index).unwrap_or(&Value::Null);
                    if raw.is_null() {
                        if self.nulls == Nulls::Omit {
                            continue;
                        }
                        Value::Null
                    } else {
                        convert(raw, *kind).map_err(|why| format!("column {column:?}: {why}"))?
                    }
                }
            };
            out.push((name.clone(), value));
        }
        Ok(Properties(out))
    }
}

/// A value as text: strings as they are, anything else as its JSON.
pub(crate) fn text_of(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

fn number(text: &str) -> Option<Number> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(u.into());
    }
    t.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Reads the timestamps sources write: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f][±hh:mm]`, with `T` or a
/// space, or a bare date (midnight). Timestamps without an offset are taken as UTC.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for f in
        ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f %:z", "%Y-%m-%d %H:%M:%S%.f%z"]
    {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

fn convert(raw: &Value, kind: ValueType) -> Result<Value, String> {
    match kind {
        // Auto on a text column: JSON lines values pass as they are, CSV text stays text.
        ValueType::Auto => Ok(raw.clone()),
        ValueType::String => Ok(Value::String(text_of(raw).into_owned())),
        ValueType::Number => match raw {
            Value::Number(_) => Ok(raw.clone()),
            other => {
                let text = text_of(other);
                number(&text).map(Value::Number).ok_or_else(|| format!("{text:?} is not a number"))
            }
        },
        ValueType::Bool => match raw {
            Value::Bool(_) => Ok(raw.clone()),
            other => {
                let text = text_of(other);
                match text.trim().to_ascii_lowercase().as_str() {
                    "true" | "t" | "1" | "yes" | "y" => Ok(Value::Bool(true)),
                    "false" | "f" | "0" | "no" | "n" => Ok(Value::Bool(false)),
                    _ => Err(format!("{text:?} is not a boolean")),
                }
            }
        },
        ValueType::Datetime | ValueType::Date => {
            let text = text_of(raw);
            let d = parse_datetime(&text).ok_or_else(|| format!("{text:?} is not a date or timestamp"))?;
            Ok(Value::String(if kind == ValueType::Date {
                d.format("%Y-%m-%d").to_string()
            } else {
                d.to_rfc3339_opts(SecondsFormat::Millis, true)
            }))
        }
    }
}

/// A row as the failures file keeps it: column → value, numbers and booleans typed from the
/// column's declared type (a CSV part holds them as text), so the file reads as what was
/// exported and a retry sends what the first attempt did. A value that does not take its type
/// (the reason its mapping may have failed) stays as it was.
pub fn typed_row(columns: &[Column], row: &Row) -> serde_json::Map<String, Value> {
    columns
        .iter()
        .zip(row.iter())
        .map(|(c, raw)| {
            let typed = match auto_type(&c.source_type) {
                ValueType::String => raw.clone(),
                kind => convert(raw, kind).unwrap_or_else(|_| raw.clone()),
            };
            (c.name.clone(), typed)
        })
        .collect()
}

/// A record's properties in the mapping's order. Names are shared by every record of a
/// delivery (one allocation per name, not per record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties(pub Vec<(Arc<str>, Value)>);

impl Properties {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (&**n, v))
    }

    /// As a JSON object (for tests and messages).
    pub fn to_json(&self) -> Value {
        Value::Object(self.iter().map(|(n, v)| (n.to_string(), v.clone())).collect())
    }

    /// From a JSON object's members.
    pub fn from_json(v: Value) -> Properties {
        match v {
            Value::Object(o) => Properties(o.into_iter().map(|(k, v)| (Arc::from(k), v)).collect()),
            _ => Properties::default(),
        }
    }
}

impl serde::Serialize for Properties {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(n, v)| (&**n, v)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The properties sent, in order; `None` sends every column under its own name.
    pub properties: Option<Vec<Property>>,
    /// Columns left out when every column is sent.
    pub drop: Vec<String>,
    pub nulls: Nulls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub source: PropertySource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropertySource {
    Column { column: String, kind: ValueType },
    Constant(serde_json::Value),
}

/// How a column's text becomes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// From the column's declared type: numbers for numeric types, booleans for BOOLEAN, else text.
    Auto,
    String,
    Number,
    Bool,
    /// An ISO 8601 UTC timestamp with milliseconds (`2024-01-01T00:41:38.000Z`).
    Datetime,
    /// `YYYY-MM-DD`.
    Date,
}

/// What a NULL becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// JSON `null`.
    Keep,
    /// The property is left out (HubSpot's default: a null would clear the contact's value).
    Omit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<Column> {
        [
            ("ID", "NUMBER(38,0)"),
            ("EMAIL", "TEXT"),
            ("SCORE", "REAL"),
            ("ACTIVE", "BOOLEAN"),
            ("UPDATED_AT", "TIMESTAMP_NTZ(9)"),
        ]
        .iter()
        .map(|(n, t)| Column { name: n.to_string(), source_type: t.to_string() })
        .collect()
    }

    fn row() -> Row {
        vec!["42".into(), "a@example.com".into(), "7.5".into(), "true".into(), "2024-01-01 00:41:38.123456789".into()]
    }

    #[test]
    fn every_column_passes_by_default_typed_from_its_declared_type() {
        let m = Mapping { properties: None, drop: vec!["active".into()], nulls: Nulls::Keep };
        let out = Mapper::new(&m, &columns()).unwrap().map(&row()).unwrap();
        assert_eq!(
            out.to_json(),
            serde_json::json!({"ID": 42, "EMAIL": "a@example.com", "SCORE": 7.5, "UPDATED_AT": "2024-01-01 00:41:38.123456789"})
        );
    }

    #[test]
    fn properties_rename_type_and_add_constants() {
        let col = |c: &str, kind| PropertySource::Column { column: c.into(), kind };
        let m = Mapping {
            properties: Some(vec![
                Property { name: "email".into(), source: col("email", ValueType::Auto) },
                Property { name: "id".into(), source: col("ID", ValueType::String) },
                Property { name: "seen".into(), source: col("UPDATED_AT", ValueType::Datetime) },
                Property { name: "day".into(), source: col("UPDATED_AT", ValueType::Date) },
                Property { name: "on".into(), source: col("ACTIVE", ValueType::Auto) },
                Property { name: "source".into(), source: PropertySource::Constant("sluice".into()) },
            ]),
            drop: vec![],
            nulls: Nulls::Omit,
        };
        let mapper = Mapper::new(&m, &columns()).unwrap();
        let out = mapper.map(&row()).unwrap();
        assert_eq!(
            out.to_json(),
            serde_json::json!({"email": "a@example.com", "id": "42", "seen": "2024-01-01T00:41:38.123Z", "day": "2024-01-01", "on": true, "source": "sluice"})
        );
        let mut nulls = row();
        nulls[1] = Value::Null;
        assert!(mapper.map(&nulls).unwrap().get("email").is_none(), "nulls = omit leaves the property out");
    }

    #[test]
    fn a_value_that_cannot_take_its_type_fails_the_record_with_the_column_named() {
        let m = Mapping {
            properties: Some(vec![Property {
                name: "score".into(),
                source: PropertySource::Column { column: "EMAIL".into(), kind: ValueType::Number },
            }]),
            drop: vec![],
            nulls: Nulls::Keep,
        };
        let err = Mapper::new(&m, &columns()).unwrap().map(&row()).unwrap_err();
        assert_eq!(err, "column \"EMAIL\": \"a@example.com\" is not a number");
    }

    #[test]
    fn an_unknown_column_is_refused_with_the_columns_listed() {
        let m = Mapping { properties: None, drop: vec!["nope".into()], nulls: Nulls::Keep };
        let err = Mapper::new(&m, &columns()).unwrap_err();
        assert!(err.contains("\"nope\"") && err.contains("ID, EMAIL, SCORE"), "{err}");
    }

    #[test]
    fn timestamps_in_the_shapes_sources_write_are_read() {
        for t in [
            "2024-01-01T00:41:38Z",
            "2024-01-01 00:41:38",
            "2024-01-01 02:41:38+02:00",
            "2024-01-01T00:41:38.000000000",
        ] {
            assert_eq!(parse_datetime(t).unwrap().to_rfc3339(), "2024-01-01T00:41:38+00:00", "{t}");
        }
        assert!(parse_datetime("yesterday").is_none());
    }
}
