//! Property tests: `parse` never panics and its results keep their promises,
//! on arbitrary strings and on line-structured near-Procfiles; and a valid
//! generated Procfile round-trips through rendering and parsing.

use std::collections::HashSet;

use drycc_procfile::{parse, validate_process_type, Procfile, WarningKind};
use proptest::prelude::*;

/// The lines of `text` as `parse` sees them (BOM and CR of CRLF removed).
fn lines_of(text: &str) -> Vec<&str> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    body.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// Whatever the input, the result is consistent with it.
fn check_result(text: &str) {
    let lines = lines_of(text);
    let in_range = |line: usize, column: usize| {
        let chars = line
            .checked_sub(1)
            .and_then(|i| lines.get(i))
            .map(|l| l.chars().count());
        matches!(chars, Some(n) if column >= 1 && column <= n + 1)
    };
    match parse(text) {
        Ok(p) => {
            let mut seen = HashSet::new();
            for e in &p {
                assert_eq!(validate_process_type(&e.name), Ok(()), "{e:?}");
                assert!(seen.insert(e.name.clone()), "duplicate {e:?}");
                assert!(!e.command.is_empty(), "{e:?}");
                assert!(!e.command.contains(['\n', '\0']), "{e:?}");
                assert_eq!(e.command.trim_end(), e.command, "{e:?}");
                assert!(in_range(e.line, 1), "{e:?}");
            }
            for w in &p.warnings {
                assert!(in_range(w.line, w.column), "{w:?} in {text:?}");
            }
            let again = parse(&p.to_string())
                .unwrap_or_else(|e| panic!("rendering of {p:?} does not parse: {e}"));
            assert_eq!(entries(&again), entries(&p));
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let mut last_line = 0;
            for e in &errors {
                assert!(in_range(e.line, e.column), "{e:?} in {text:?}");
                assert!(e.line >= last_line, "errors out of line order");
                last_line = e.line;
                let prefix = format!("line {}, column {}: ", e.line, e.column);
                assert!(e.to_string().starts_with(&prefix), "{e}");
            }
            assert_eq!(errors.to_string().lines().count(), errors.len());
        }
    }
}

fn entries(p: &Procfile) -> Vec<(String, String)> {
    p.iter()
        .map(|e| (e.name.clone(), e.command.clone()))
        .collect()
}

/// Lines that look more or less like Procfile lines.
fn near_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ \t\u{a0}\u{feff}\r]{0,4}",
        "[ \t]{0,3}#[^\n]{0,12}",
        "[ \t]{0,2}[a-z0-9]{1,5}:[ \t]{0,2}[^\n]{0,12}",
        "[ \t]{0,2}[a-zA-Z0-9_.\\- é日]{0,8}:[ \t]{0,2}[^\n]{0,12}",
        "[ \t]{0,2}(run|web|Web_1|-x|x-|a):[ \t]{0,2}[^\n]{0,6}",
        "[^\n]{0,20}",
    ]
}

fn near_procfile() -> impl Strategy<Value = String> {
    let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    (
        any::<bool>(),
        prop::collection::vec((near_line(), eol), 0..12),
    )
        .prop_map(|(bom, lines)| {
            let mut text = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            for (line, eol) in lines {
                text.push_str(&line);
                text.push_str(eol);
            }
            text
        })
}

fn valid_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?".prop_filter("reserved", |n| n != "run")
}

fn valid_command() -> impl Strategy<Value = String> {
    "[^\\s\\x00][^\\n\\x00]{0,30}".prop_filter("trailing whitespace", |c| c.trim_end() == c)
}

fn filler_line() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[ \t]{1,3}", "[ \t]{0,2}#[^\n]{0,12}",]
}

#[derive(Debug, Clone)]
struct Layout {
    name: String,
    command: String,
    indent: String,
    after_colon: String,
    trailing: String,
    crlf: bool,
    filler: Option<String>,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        valid_name(),
        valid_command(),
        "[ \t]{0,2}",
        "[ \t]{0,3}",
        "[ \t]{0,2}",
        any::<bool>(),
        prop::option::of(filler_line()),
    )
        .prop_map(
            |(name, command, indent, after_colon, trailing, crlf, filler)| Layout {
                name,
                command,
                indent,
                after_colon,
                trailing,
                crlf,
                filler,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn never_panics_on_arbitrary_strings(text in any::<String>()) {
        check_result(&text);
    }

    #[test]
    fn never_panics_on_line_structured_input(text in near_procfile()) {
        check_result(&text);
    }

    #[test]
    fn a_valid_procfile_round_trips(
        layouts in prop::collection::vec(layout(), 0..10),
        bom in any::<bool>(),
        final_eol in any::<bool>(),
    ) {
        let mut seen = HashSet::new();
        let layouts: Vec<Layout> =
            layouts.into_iter().filter(|l| seen.insert(l.name.clone())).collect();

        let mut text = if bom { "\u{feff}".to_owned() } else { String::new() };
        let mut expected = Vec::new();
        let mut line = 0;
        for (i, l) in layouts.iter().enumerate() {
            if let Some(filler) = &l.filler {
                text.push_str(filler);
                text.push('\n');
                line += 1;
            }
            text.push_str(&format!(
                "{}{}:{}{}{}",
                l.indent, l.name, l.after_colon, l.command, l.trailing
            ));
            line += 1;
            expected.push((l.name.clone(), l.command.clone(), line));
            if i + 1 < layouts.len() || final_eol {
                text.push_str(if l.crlf { "\r\n" } else { "\n" });
            }
        }

        let p = parse(&text).unwrap_or_else(|e| panic!("{text:?} does not parse:\n{e}"));
        let got: Vec<(String, String, usize)> =
            p.iter().map(|e| (e.name.clone(), e.command.clone(), e.line)).collect();
        prop_assert_eq!(&got, &expected);

        let indented = layouts.iter().filter(|l| !l.indent.is_empty()).count();
        let leading = p.warnings.iter()
            .filter(|w| matches!(w.kind, WarningKind::LeadingBlanks { .. }))
            .count();
        prop_assert_eq!(leading, indented);

        // The canonical rendering parses back to the same entries.
        let again = parse(&p.to_string()).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(entries(&again), entries(&p));
    }
}
