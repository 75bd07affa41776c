//! The modules of `sluice-core` import each other without a cycle, so each can be read, tested
//! and replaced from the bottom up: values and ports first, then the strategies, formats and
//! kinds built on them, then the runner and the delivery engine that drive them.
//!
//! The graph is read from the source: every `crate::…`, `super::…` and `self::…` path outside a
//! `#[cfg(test)]` module is an edge from the file's module to the deepest module the path names
//! (a folder's `mod.rs` re-exporting its children depends on them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path (`integrate::spec`), from its file under `src/`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test module (tests may reach anywhere).
fn without_tests(code: &str) -> &str {
    match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => &code[..at],
        None => code,
    }
}

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    Crate,
    Super,
    Own,
}

/// The paths after each `crate::`, `super::` or `self::` (with `{a, b::c}` groups expanded), as
/// segments.
fn paths(code: &str) -> Vec<(Root, Vec<String>)> {
    let mut out = Vec::new();
    for (root, kind) in [("crate::", Root::Crate), ("super::", Root::Super), ("self::", Root::Own)] {
        let mut rest = code;
        while let Some(at) = rest.find(root) {
            // `super::` inside `crate::a::super::` does not occur; a word before it (`self_super::`) would.
            let before = rest[..at].chars().last();
            rest = &rest[at + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            expand(rest, Vec::new(), kind, &mut out);
        }
    }
    out
}

fn expand(text: &str, prefix: Vec<String>, kind: Root, out: &mut Vec<(Root, Vec<String>)>) {
    let mut segments = prefix;
    let mut rest = text;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top(&group[..end]) {
                expand(item.trim(), segments.clone(), kind, out);
            }
            return;
        }
        let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        segments.push(rest[..len].to_string());
        rest = &rest[len..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out.push((kind, segments));
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// The deepest known module a path names; an item the crate root re-exports (`crate::BoxError`)
/// names the module it comes from.
fn target(modules: &BTreeSet<String>, reexports: &BTreeMap<String, String>, segments: &[String]) -> Option<String> {
    if let [item, ..] = segments {
        if let Some(from) = reexports.get(item) {
            return Some(from.clone());
        }
    }
    (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find(|m| modules.contains(m))
}

/// What `lib.rs` re-exports (`pub use error::{BoxError, …}`): item name to module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
        for (_, segments) in paths(&format!("crate::{}", line.trim_end_matches(';'))) {
            if let [module @ .., item] = segments.as_slice() {
                out.insert(item.clone(), module.join("::"));
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeSet<String> = all.iter().map(|f| module_of(&src, f)).filter(|m| !m.is_empty()).collect();
    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &all {
        let module = module_of(&src, file);
        if module.is_empty() {
            continue; // lib.rs only declares the modules
        }
        let code = std::fs::read_to_string(file).unwrap();
        // `super::` of a folder's `mod.rs` is the folder's parent, of a file its folder.
        let mut parent: Vec<String> = module.split("::").map(String::from).collect();
        parent.pop();
        let own: Vec<String> = module.split("::").map(String::from).collect();
        for (kind, segments) in paths(without_tests(&code)) {
            let full: Vec<String> = match kind {
                Root::Crate => segments,
                Root::Super => parent.iter().cloned().chain(segments).collect(),
                Root::Own => own.iter().cloned().chain(segments).collect(),
            };
            if let Some(to) = target(&modules, &reexports, &full) {
                // A module may name its own children (`integrate` → `integrate::spec`) and a child
                // its ancestors' items; only edges between different modules count.
                if to != module {
                    edges.entry(module.clone()).or_default().insert(to);
                }
            }
        }
        edges.entry(module).or_default();
    }
    edges
}

/// A cycle of the graph, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|n| n == next).unwrap();
                    let mut found = stack[at..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                0 => {
                    if let Some(found) = visit(next, edges, state, stack) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(found) = visit(node, edges, &mut state, &mut Vec::new()) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn the_reader_finds_edges_through_groups_and_super() {
    let code = "use crate::{a::{B, c::D}, e};\nuse super::f::G;\npub use self::k::L;\nfn x() { crate::h::i(); }\n";
    let found: Vec<String> = paths(code).into_iter().map(|(s, p)| format!("{s:?}:{}", p.join("::"))).collect();
    assert_eq!(found, ["Crate:a::B", "Crate:a::c::D", "Crate:e", "Crate:h::i", "Super:f::G", "Own:k::L"]);
    let lib = "pub mod error;\npub use error::{BoxError, Error};\n";
    let reexports = root_reexports(lib);
    assert_eq!(reexports.get("BoxError").map(String::as_str), Some("error"));
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default();
    assert_eq!(cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&edges), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

#[test]
fn core_modules_import_each_other_without_a_cycle() {
    let edges = graph();
    assert!(edges.len() > 20, "the reader found only {} modules", edges.len());
    if let Some(found) = cycle(&edges) {
        let listing: Vec<String> = edges
            .iter()
            .map(|(m, to)| format!("  {m} -> {}", to.iter().cloned().collect::<Vec<_>>().join(", ")))
            .collect();
        panic!("import cycle in sluice-core: {}\n{}", found.join(" -> "), listing.join("\n"));
    }
}

/// The ports depend on values only, so an adapter crate compiles against them without the
/// runner, the delivery engine or the config.
#[test]
fn the_ports_depend_on_value_types_only() {
    let edges = graph();
    let allowed = [
        "error",
        "value",
        "manifest",
        "strategy",
        "format::csv::options",
        "format::description",
        "format::compression",
    ];
    for (module, to) in &edges {
        if module == "ports" || module.starts_with("ports::") {
            for t in to {
                let ok = t == "ports" || t.starts_with("ports::") || allowed.contains(&t.as_str());
                assert!(ok, "{module} imports {t}: ports may import only {allowed:?}");
            }
        }
    }
}
