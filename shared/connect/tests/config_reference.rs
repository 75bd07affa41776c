//! The configuration reference (docs/configuration.md) is checked against the code: every TOML
//! example in it is a valid config (read with the kinds of source the binaries ship), and every
//! key the parser accepts, core's and each source kind's, is documented.

use std::path::Path;

use sluice_connect::parse_config;

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reference() -> String {
    doc("configuration.md")
}

/// The TOML blocks of a document.
fn toml_blocks(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed toml block");
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

/// The keys of the file's raw (serde) structs, read from the source so a new key cannot be
/// added without this test seeing it.
fn accepted_keys(src: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut in_raw = false;
    let mut rename: Option<String> = None;
    let mut skip_next = false;
    for line in src.lines() {
        let t = line.trim();
        let raw = ["struct Raw", "pub(crate) struct Raw", "pub(super) struct Raw"];
        if raw.iter().any(|r| t.starts_with(r)) && t.ends_with('{') {
            in_raw = true;
            continue;
        }
        if in_raw && t == "}" {
            in_raw = false;
            continue;
        }
        if !in_raw {
            continue;
        }
        if t.starts_with("#[serde(flatten)]") {
            // The rest of the section, read by another raw struct: not a key itself.
            skip_next = true;
            continue;
        }
        if let Some(r) = t.split("rename = \"").nth(1) {
            rename = r.split('"').next().map(str::to_string);
            continue;
        }
        if let Some((name, _)) = t.split_once(':') {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            if !name.starts_with('#') && !name.starts_with("//") {
                let name = name.trim_start_matches("pub(crate) ").trim_start_matches("pub(super) ");
                keys.push(rename.take().unwrap_or_else(|| name.to_string()));
            }
        }
    }
    keys
}

#[test]
fn every_toml_example_in_the_reference_is_a_valid_config() {
    let doc = reference();
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed toml block");
        parse_config(Path::new("/tmp/docs/sluice.toml"), &body[..end])
            .unwrap_or_else(|e| panic!("example {} is not a valid config: {e}\n{}", blocks + 1, &body[..end]));
        blocks += 1;
        rest = &body[end..];
    }
    assert!(blocks > 0, "the reference shows at least one complete example");
}

#[test]
fn every_accepted_key_is_documented() {
    let doc = reference();
    let keys: Vec<_> = [
        include_str!("../../core/src/spec/mod.rs"),
        include_str!("../../core/src/spec/format.rs"),
        include_str!("../../core/src/spec/table.rs"),
        include_str!("../../core/src/spec/alerts.rs"),
        include_str!("../../local/src/sqlite_kind.rs"),
        include_str!("../../snowflake/src/config.rs"),
    ]
    .into_iter()
    .flat_map(accepted_keys)
    .collect();
    assert!(keys.len() > 20, "found only {keys:?}");
    for key in keys {
        assert!(doc.contains(&format!("`{key}`")), "docs/configuration.md does not document `{key}`");
    }
}

#[test]
fn every_integration_key_is_documented_and_the_examples_are_valid() {
    let doc = doc("integrations.md");
    let keys: Vec<_> = [
        include_str!("../../core/src/integrate/raw.rs"),
        include_str!("../../core/src/integrate/kinds/webhook/spec.rs"),
        include_str!("../../core/src/integrate/kinds/hubspot/spec.rs"),
    ]
    .into_iter()
    .flat_map(accepted_keys)
    .collect();
    assert!(keys.len() > 15, "found only {keys:?}");
    for key in keys {
        assert!(doc.contains(&format!("`{key}`")), "docs/integrations.md does not document `{key}`");
    }
    // The examples are sections of a file: they are checked inside one with their export.
    let base = "version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"db.sqlite\"\n\
                [[export]]\nname = \"crm_updates\"\nsource = \"db\"\ndestination = \"out\"\n\
                [[export.table]]\nname = \"contacts\"\nincremental = { strategy = \"full\" }\n";
    let blocks = toml_blocks(&doc);
    assert!(!blocks.is_empty());
    for b in blocks {
        let config = parse_config(Path::new("/tmp/docs/sluice.toml"), &format!("{base}{b}"))
            .unwrap_or_else(|e| panic!("an example in docs/integrations.md is not valid: {e}\n{b}"));
        assert!(!config.integrations.is_empty());
    }
}
