//! The layers of the crate, kept: every `crate::...` and `super::...`
//! path of every source file is an arrow from the file's module to the one
//! it names, and each arrow must point down the layer order (below), and
//! the sibling modules of a folder must not name each other in a circle.
//! A folder's `mod.rs` may name its own children (it declares them).
//! The `super::` of an inline module (`mod tests`) is read as its file's,
//! which can only add an arrow to the file's own folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom. A module may use those of lower rank only; the modules
/// of the base layer may use each other, without a cycle.
const LAYERS: &[(&str, &[&str])] = &[
    ("root", &["main", "server", "layers"]),
    ("http", &["http"]),
    ("loops", &["loops"]),
    ("service", &["service"]),
    ("reconciler", &["reconciler"]),
    ("desired", &["desired"]),
    (
        "base",
        &[
            "context",
            "engines",
            "events",
            "git",
            "isolation",
            "role",
            "settings",
        ],
    ),
];

fn rank(top: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&top))
        .map(|position| LAYERS.len() - position)
}

/// A module as the arrows see it: the top-level module and, inside a
/// folder, the child of that folder (deeper modules count as that child).
type Unit = Vec<String>;

struct Source {
    /// The module path of the file (`["http", "api", "pods"]`).
    module: Vec<String>,
    text: String,
}

fn sources(root: &Path) -> Vec<Source> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under src");
                let mut module: Vec<String> = relative
                    .with_extension("")
                    .iter()
                    .map(|part| part.to_string_lossy().into_owned())
                    .collect();
                if module.last().is_some_and(|last| last == "mod") {
                    module.pop();
                }
                let text = std::fs::read_to_string(&path).expect("read source");
                found.push(Source { module, text });
            }
        }
    }
    found
}

/// The text without comments (doc links are no arrows).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path after `start` (`crate::`, `super::`) in `code`, as
/// segments, with `use` groups (`a::{b, c::d}`) spread out.
fn paths(code: &str, start: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(start) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + start.len()..];
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        // `use super::*` of an inline test module names its own file.
        if rest.starts_with('*') {
            continue;
        }
        let mut prefix = vec![start.trim_end_matches("::").to_string()];
        found.extend(path_from(rest, &mut prefix));
    }
    found
}

fn path_from(text: &str, prefix: &mut Vec<String>) -> Vec<Vec<String>> {
    let mut text = text;
    loop {
        let ident: String = text.chars().take_while(|c| is_ident(*c)).collect();
        if !ident.is_empty() {
            prefix.push(ident.clone());
            text = &text[ident.len()..];
            if let Some(after) = text.strip_prefix("::") {
                text = after;
                continue;
            }
            return vec![prefix.clone()];
        }
        if let Some(group) = text.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let mut all = Vec::new();
            let mut depth = 0;
            let mut item_start = 0;
            let inner = &group[..end];
            for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = inner[item_start..i].trim();
                        item_start = i + 1;
                        if !item.is_empty() && item != "self" && item != "*" {
                            all.extend(path_from(item, &mut prefix.clone()));
                        }
                    }
                    _ => {}
                }
            }
            if all.is_empty() {
                all.push(prefix.clone());
            }
            return all;
        }
        return vec![prefix.clone()];
    }
}

/// The unit a path names, from the file's module and the existing files.
fn unit_of(path: &[String], module: &[String], folders: &BTreeSet<Vec<String>>) -> Option<Unit> {
    let mut absolute: Vec<String> = Vec::new();
    let mut segments = path.iter().peekable();
    match segments.next().map(String::as_str) {
        Some("crate") => {}
        Some("super") => {
            absolute = module.to_vec();
            absolute.pop();
            while segments.peek().is_some_and(|s| *s == "super") {
                segments.next();
                absolute.pop();
            }
        }
        _ => return None,
    }
    absolute.extend(segments.cloned());
    let top = absolute.first()?.clone();
    rank(&top)?;
    let mut unit = vec![top.clone()];
    if folders.contains(&vec![top.clone()]) {
        if let Some(child) = absolute.get(1) {
            if folders.contains(&vec![top.clone(), child.clone()]) {
                unit.push(child.clone());
            }
        }
    }
    Some(unit)
}

fn unit_of_module(module: &[String], folders: &BTreeSet<Vec<String>>) -> Unit {
    let mut unit = vec![module[0].clone()];
    if module.len() > 1 && folders.contains(&module[..2].to_vec()) {
        unit.push(module[1].clone());
    }
    unit
}

/// Every arrow between units (within a unit there are none).
fn arrows(root: &Path) -> BTreeMap<Unit, BTreeSet<Unit>> {
    let sources = sources(root);
    // Modules that exist: each file's path and each of its prefixes.
    let mut folders: BTreeSet<Vec<String>> = BTreeSet::new();
    for source in &sources {
        for len in 1..=source.module.len() {
            folders.insert(source.module[..len].to_vec());
        }
    }
    let mut arrows: BTreeMap<Unit, BTreeSet<Unit>> = BTreeMap::new();
    for source in &sources {
        let from = unit_of_module(&source.module, &folders);
        let code = code(&source.text);
        for path in paths(&code, "crate::")
            .into_iter()
            .chain(paths(&code, "super::"))
        {
            let Some(to) = unit_of(&path, &source.module, &folders) else {
                continue;
            };
            // A folder's own module declares its children.
            let declares = to.len() == 2 && from.len() == 1 && to[0] == from[0];
            if to != from && !declares {
                arrows.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    arrows
}

fn cycle(arrows: &BTreeMap<Unit, BTreeSet<Unit>>) -> Option<Vec<Unit>> {
    fn visit(
        unit: &Unit,
        arrows: &BTreeMap<Unit, BTreeSet<Unit>>,
        path: &mut Vec<Unit>,
        done: &mut BTreeSet<Unit>,
    ) -> Option<Vec<Unit>> {
        if let Some(at) = path.iter().position(|u| u == unit) {
            let mut found = path[at..].to_vec();
            found.push(unit.clone());
            return Some(found);
        }
        if done.contains(unit) {
            return None;
        }
        path.push(unit.clone());
        for next in arrows.get(unit).into_iter().flatten() {
            if let Some(found) = visit(next, arrows, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(unit.clone());
        None
    }
    let mut done = BTreeSet::new();
    for unit in arrows.keys() {
        if let Some(found) = visit(unit, arrows, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn name(unit: &Unit) -> String {
    unit.join("::")
}

/// The arrows that do not point to a lower layer.
fn upwards(arrows: &BTreeMap<Unit, BTreeSet<Unit>>) -> Vec<String> {
    let base = rank("context");
    let mut upwards = Vec::new();
    for (from, targets) in arrows {
        for to in targets {
            let (Some(a), Some(b)) = (rank(&from[0]), rank(&to[0])) else {
                continue;
            };
            if from[0] != to[0] && a <= b && !(Some(a) == base && Some(b) == base) {
                upwards.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    upwards
}

#[test]
fn every_arrow_points_down_the_layers() {
    let arrows = arrows(&src());
    assert!(
        arrows.contains_key(&vec!["http".to_string(), "api".to_string()]),
        "the walk found the handlers"
    );
    let upwards = upwards(&arrows);
    assert!(
        upwards.is_empty(),
        "arrows against the layer order (http -> loops -> service -> reconciler -> desired -> base): {upwards:#?}"
    );
}

#[test]
fn the_arrows_show_the_layers() {
    for (from, targets) in arrows(&src()) {
        let names: Vec<String> = targets.iter().map(name).collect();
        println!("{} -> {}", name(&from), names.join(", "));
    }
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let arrows = arrows(&src());
    if let Some(found) = cycle(&arrows) {
        let names: Vec<String> = found.iter().map(name).collect();
        panic!("an import cycle: {}", names.join(" -> "));
    }
}

#[test]
fn the_checks_see_groups_upward_arrows_and_cycles() {
    let code =
        "use crate::service::{self, access::{app_for, Access}, Service};\nuse super::{x, y::z};";
    let found = paths(code, "crate::");
    assert!(found.contains(&vec![
        "crate".into(),
        "service".into(),
        "access".into(),
        "app_for".into()
    ]));
    assert!(found.contains(&vec!["crate".into(), "service".into(), "Service".into()]));
    let supers = paths(code, "super::");
    assert_eq!(supers.len(), 2, "{supers:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    };
    write("service/mod.rs", "mod a; mod b;");
    write("service/a.rs", "use super::b::Thing;");
    write(
        "service/b.rs",
        "use super::a::Other; use crate::http::Shared;",
    );
    write("http/mod.rs", "use crate::service::a;");
    let arrows = arrows(dir.path());
    assert_eq!(upwards(&arrows), ["service::b -> http"]);
    let found = cycle(&arrows).expect("a and b name each other");
    for sibling in ["a", "b"] {
        let unit = vec!["service".to_string(), sibling.to_string()];
        assert!(found.contains(&unit), "{found:?}");
    }
}
