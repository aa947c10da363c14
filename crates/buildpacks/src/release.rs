//! The one part of `bin/release`'s YAML the platform uses: the
//! `default_process_types` mapping of process type to command. A small
//! parser for that shape (block mapping, or `{}`), so no YAML library is
//! needed; other top-level keys (`addons`, `config_vars`) are skipped.

use std::collections::BTreeMap;

/// The `default_process_types` of a release document; types that fail to
/// parse are reported as errors with their line number.
pub fn default_process_types(yaml: &str) -> Result<BTreeMap<String, String>, String> {
    let mut types = BTreeMap::new();
    let mut inside = false;
    for (index, raw) in yaml.lines().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if !indented {
            inside = false;
            if let Some(rest) = line.strip_prefix("default_process_types:") {
                let rest = rest.trim();
                match rest {
                    "" => inside = true,
                    "{}" | "~" | "null" => {}
                    _ => {
                        return Err(format!(
                            "line {}: default_process_types must be a block mapping",
                            index + 1
                        ))
                    }
                }
            }
            continue;
        }
        if !inside {
            continue;
        }
        let line = line.trim();
        let (name, command) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected `type: command`", index + 1))?;
        let name = unquote(name.trim());
        let command = unquote(command.trim());
        if name.is_empty() {
            return Err(format!("line {}: a process type needs a name", index + 1));
        }
        types.insert(name, command);
    }
    Ok(types)
}

/// A `#` starts a comment at the start of a line or after a blank, outside
/// quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous == ' ' || previous == '\t' => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    if bytes.len() >= 2 {
        let (first, last) = (bytes[0], bytes[bytes.len() - 1]);
        if first == b'\'' && last == b'\'' {
            return text[1..text.len() - 1].replace("''", "'");
        }
        if first == b'"' && last == b'"' {
            return text[1..text.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\\\", "\\");
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_mapping_with_other_keys() {
        let yaml = "---\naddons: []\nconfig_vars:\n  A: b\ndefault_process_types:\n  web: python3 app.py --port $PORT\n  worker: 'sh -c \"echo hi\"' # trailing comment\n";
        let types = default_process_types(yaml).unwrap();
        assert_eq!(types.len(), 2);
        assert_eq!(types["web"], "python3 app.py --port $PORT");
        assert_eq!(types["worker"], "sh -c \"echo hi\"");
    }

    #[test]
    fn empty_and_missing() {
        assert!(default_process_types("default_process_types: {}\n")
            .unwrap()
            .is_empty());
        assert!(default_process_types("addons: []\n").unwrap().is_empty());
        assert!(default_process_types("").unwrap().is_empty());
    }

    #[test]
    fn mapping_ends_at_the_next_top_level_key() {
        let yaml = "default_process_types:\n  web: a\naddons:\n  - x: y\n";
        let types = default_process_types(yaml).unwrap();
        assert_eq!(types, BTreeMap::from([("web".into(), "a".into())]));
    }

    #[test]
    fn colons_in_commands_and_hashes_in_words() {
        let yaml = "default_process_types:\n  web: \"node server.js --url=http://x:1/#a\"\n  w2: echo a#b\n";
        let types = default_process_types(yaml).unwrap();
        assert_eq!(types["web"], "node server.js --url=http://x:1/#a");
        assert_eq!(types["w2"], "echo a#b");
    }

    #[test]
    fn bad_shapes_are_errors_with_lines() {
        let error = default_process_types("default_process_types:\n  just words\n").unwrap_err();
        assert!(error.starts_with("line 2:"), "{error}");
        let error = default_process_types("default_process_types: web\n").unwrap_err();
        assert!(error.contains("block mapping"), "{error}");
    }
}
