//! One test (or a few) per sentence of the grammar in the crate docs and in
//! the spec (process-model.md, "Procfile grammar").

mod common;

use common::*;
use drycc_procfile::*;
use std::collections::BTreeMap;

// "One entry a line: `<type>: <command>`."

#[test]
fn one_entry_per_line_in_file_order() {
    let p = ok("web: bin/web\nworker: bin/worker\nclock: bin/clock\n");
    assert_eq!(
        pairs(&p),
        [
            ("web", "bin/web"),
            ("worker", "bin/worker"),
            ("clock", "bin/clock")
        ]
    );
    assert_eq!(p.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(p.warnings.is_empty());
}

#[test]
fn last_line_needs_no_line_ending() {
    assert_eq!(pairs(&ok("web: bin/web")), [("web", "bin/web")]);
}

// "`<type>` is a DNS label: `[a-z0-9]` and inner `-`, 1..63 characters."

#[test]
fn type_accepts_lowercase_digits_and_inner_hyphens() {
    let p = ok("web-2: a\n0worker: b\nsidekiq-low-prio: c\nw--x: d\n123: e\n");
    assert_eq!(
        p.names().collect::<Vec<_>>(),
        ["web-2", "0worker", "sidekiq-low-prio", "w--x", "123"]
    );
    assert!(p.warnings.is_empty());
}

#[test]
fn type_of_63_characters_is_accepted_and_64_is_too_long() {
    let name63 = "a".repeat(63);
    assert_eq!(ok(&format!("{name63}: x")).names().next(), Some(&*name63));

    let name64 = "a".repeat(64);
    let err = one_error(&format!("{name64}: x"));
    assert_eq!((err.line, err.column), (1, 64));
    let (_, problem, suggestion) = invalid_name(&err);
    assert_eq!(problem, &NameProblem::TooLong { len: 64 });
    assert_eq!(suggestion, None);
    assert!(err.to_string().contains("at most 63"), "{err}");
}

#[test]
fn type_must_not_start_or_end_with_a_hyphen() {
    let err = one_error("-web: x");
    assert_eq!((err.line, err.column), (1, 1));
    assert_eq!(invalid_name(&err).1, &NameProblem::LeadingHyphen);

    let err = one_error("web-: x");
    assert_eq!((err.line, err.column), (1, 4));
    assert_eq!(invalid_name(&err).1, &NameProblem::TrailingHyphen);

    let err = one_error("-: x");
    assert_eq!(invalid_name(&err).1, &NameProblem::LeadingHyphen);
}

#[test]
fn type_with_a_dot_or_a_blank_inside_points_at_it() {
    let err = one_error("web.1: x");
    assert_eq!((err.line, err.column), (1, 4));
    assert_eq!(invalid_name(&err).1, &NameProblem::InvalidChar('.'));
    assert_eq!(invalid_name(&err).2, None);

    let err = one_error("my web: x");
    assert_eq!((err.line, err.column), (1, 3));
    assert_eq!(invalid_name(&err).1, &NameProblem::InvalidChar(' '));
}

#[test]
fn blanks_between_type_and_colon_are_an_error_with_a_suggestion() {
    let err = one_error("web  : x");
    assert_eq!((err.line, err.column), (1, 4));
    assert_eq!(invalid_name(&err).2, Some("web"));
}

#[test]
fn error_message_says_what_is_allowed() {
    let text = one_error("web.1: x").to_string();
    assert!(text.contains("lowercase letters (a-z)"), "{text}");
    assert!(text.contains("digits (0-9)"), "{text}");
    assert!(text.contains("hyphens (-)"), "{text}");
    assert!(text.contains("1 to 63"), "{text}");
}

// "Drycc's own rule asks 3..63; accept both and document the choice."

#[test]
fn types_of_one_or_two_characters_are_accepted_with_a_warning() {
    let p = ok("a: x\nab: y\nabc: z\n");
    assert_eq!(p.names().collect::<Vec<_>>(), ["a", "ab", "abc"]);
    assert_eq!(p.warnings.len(), 2);
    assert_eq!(
        p.warnings[0],
        Warning {
            line: 1,
            column: 1,
            kind: WarningKind::ShortName { name: "a".into() }
        }
    );
    assert_eq!((p.warnings[1].line, p.warnings[1].column), (2, 1));
    let text = p.warnings[1].to_string();
    assert!(
        text.starts_with("line 2, column 1: process type \"ab\" is shorter than 3"),
        "{text}"
    );
}

// "`run` is reserved (one-off commands)."

#[test]
fn run_is_reserved() {
    let err = one_error("web: x\nrun: bash\n");
    assert_eq!((err.line, err.column), (2, 1));
    assert_eq!(
        err.kind,
        ParseErrorKind::ReservedName { name: "run".into() }
    );
    assert!(err.to_string().contains("one-off"), "{err}");
    // Only the exact word is reserved.
    assert_eq!(
        ok("runner: x\nrun-once: y\n").names().collect::<Vec<_>>(),
        ["runner", "run-once"]
    );
}

#[test]
fn uppercase_run_suggests_nothing_reserved() {
    let err = one_error("RUN: x");
    assert_eq!(invalid_name(&err).2, None);
}

// "Everything after the first `:` and following blanks is the command,
// verbatim (`web: echo foo: bar` runs `echo foo: bar`)."

#[test]
fn command_is_everything_after_the_first_colon() {
    assert_eq!(ok("web: echo foo: bar").get("web"), Some("echo foo: bar"));
    assert_eq!(ok("web::x").get("web"), Some(":x"));
}

#[test]
fn blanks_after_the_colon_are_optional_and_skipped() {
    assert_eq!(ok("web:rails s").get("web"), Some("rails s"));
    assert_eq!(ok("web: \t  rails s").get("web"), Some("rails s"));
    assert_eq!(ok("web:\trails s").get("web"), Some("rails s"));
}

#[test]
fn command_is_verbatim_inside() {
    let cmd = r#"sh -c "echo  $FOO" >/dev/null 2>&1 && x='a # b' # trailing"#;
    assert_eq!(ok(&format!("web: {cmd}")).get("web"), Some(cmd));
}

#[test]
fn trailing_whitespace_of_the_command_is_trimmed() {
    assert_eq!(ok("web: rails s \t \n").get("web"), Some("rails s"));
    assert_eq!(ok("web: rails s\u{a0}\u{3000}").get("web"), Some("rails s"));
}

// "Blank lines and lines whose first non-blank character is `#` are ignored."

#[test]
fn blank_lines_are_ignored() {
    let p = ok("\n\n   \n\t\nweb: x\n \t \n\n");
    assert_eq!(pairs(&p), [("web", "x")]);
    assert_eq!(p.entry("web").map(|e| e.line), Some(5));
}

#[test]
fn comment_lines_are_ignored_even_indented() {
    let p = ok("# a comment\n#web: not me\n   # indented\n\t#tab\nweb: x # not a comment\n");
    assert_eq!(pairs(&p), [("web", "x # not a comment")]);
    assert!(p.warnings.is_empty());
}

#[test]
fn a_comment_is_not_an_entry_even_with_an_invalid_name() {
    assert!(ok("# Web_1: nope\n#: nope\n#").is_empty());
}

// "CRLF line endings are accepted."

#[test]
fn crlf_line_endings_are_accepted() {
    let p = ok("web: bin/web\r\nworker: bin/worker\r\n\r\n# c\r\n");
    assert_eq!(pairs(&p), [("web", "bin/web"), ("worker", "bin/worker")]);
}

#[test]
fn mixed_line_endings_are_accepted() {
    let p = ok("web: a\r\nworker: b\nclock: c\r\n");
    assert_eq!(p.get("worker"), Some("b"));
    assert_eq!(p.get("clock"), Some("c"));
}

#[test]
fn a_lone_cr_is_not_a_line_ending() {
    // Old Mac line endings: one line, whose command keeps the CR.
    let p = ok("web: a\rworker: b");
    assert_eq!(pairs(&p), [("web", "a\rworker: b")]);
}

#[test]
fn crlf_errors_count_lines_and_columns_without_the_cr() {
    let err = one_error("web: x\r\nworker:\r\n");
    assert_eq!((err.line, err.column), (2, 8));
}

// "A UTF-8 BOM is ignored."

#[test]
fn a_bom_at_the_start_is_ignored() {
    let p = ok("\u{feff}web: x\n");
    assert_eq!(pairs(&p), [("web", "x")]);
    // It does not count as a column.
    let err = one_error("\u{feff}Web: x");
    assert_eq!((err.line, err.column), (1, 1));
}

#[test]
fn a_bom_elsewhere_is_an_ordinary_character() {
    let err = one_error("web: x\n\u{feff}worker: y");
    assert_eq!((err.line, err.column), (2, 1));
    assert_eq!(invalid_name(&err).1, &NameProblem::InvalidChar('\u{feff}'));
}

// Leading blanks before the type (our decision, see the crate docs).

#[test]
fn leading_blanks_are_ignored_with_a_warning() {
    let p = ok("  web: x\n\tworker: y\n");
    assert_eq!(pairs(&p), [("web", "x"), ("worker", "y")]);
    assert_eq!(
        p.warnings,
        [
            Warning {
                line: 1,
                column: 1,
                kind: WarningKind::LeadingBlanks { name: "web".into() }
            },
            Warning {
                line: 2,
                column: 1,
                kind: WarningKind::LeadingBlanks {
                    name: "worker".into()
                }
            },
        ]
    );
}

#[test]
fn columns_after_leading_blanks_count_the_blanks() {
    let err = one_error("   Web: x");
    assert_eq!((err.line, err.column), (1, 4));
}

// "`web:` (empty command) ... errors that name the line number and column."

#[test]
fn empty_command_is_an_error_just_after_the_colon() {
    let err = one_error("web:");
    assert_eq!((err.line, err.column), (1, 5));
    assert_eq!(
        err.kind,
        ParseErrorKind::EmptyCommand { name: "web".into() }
    );
    let err = one_error("worker: \t \r\n");
    assert_eq!((err.line, err.column), (1, 8));
    assert!(err.to_string().contains("no command"), "{err}");
}

// "`: cmd` (empty name)"

#[test]
fn empty_name_is_an_error_at_the_colon() {
    let err = one_error(": rails s");
    assert_eq!((err.line, err.column), (1, 1));
    assert_eq!(err.kind, ParseErrorKind::EmptyName);
    let err = one_error("web: x\n  : rails s");
    assert_eq!((err.line, err.column), (2, 3));
}

#[test]
fn a_lone_colon_reports_both_missing_parts() {
    let all = errors(":");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].kind, ParseErrorKind::EmptyName);
    assert!(matches!(all[1].kind, ParseErrorKind::EmptyCommand { .. }));
    assert_eq!(all[1].column, 2);
}

// "a line with no colon"

#[test]
fn a_line_without_colon_is_an_error() {
    let err = one_error("web: x\nweb rails s\n");
    assert_eq!((err.line, err.column), (2, 4));
    assert_eq!(err.kind, ParseErrorKind::MissingColon);
    let text = err.to_string();
    assert!(text.contains("<type>: <command>"), "{text}");

    // Nothing name-like: the error points at the start of the entry.
    let err = one_error("  &&&&&");
    assert_eq!((err.line, err.column), (1, 3));
}

// "A duplicate name: error naming both lines."

#[test]
fn a_duplicate_type_names_both_lines() {
    let err = one_error("web: a\nworker: b\nweb: c\n");
    assert_eq!((err.line, err.column), (3, 1));
    assert_eq!(
        err.kind,
        ParseErrorKind::Duplicate {
            name: "web".into(),
            first_line: 1
        }
    );
    let text = err.to_string();
    assert!(text.starts_with("line 3, column 1: "), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn a_duplicate_is_found_even_when_the_first_command_is_missing() {
    let all = errors("web:\nweb: x\n");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(matches!(
        all[1].kind,
        ParseErrorKind::Duplicate { first_line: 1, .. }
    ));
}

// "Uppercase letters or `_` in a name are errors that suggest the fixed name
// (`Web_1` -> `web-1`)."

#[test]
fn uppercase_and_underscore_suggest_the_fixed_name() {
    let err = one_error("web: a\nworker: b\nWeb_1: c\n");
    assert_eq!((err.line, err.column), (3, 1));
    let (name, problem, suggestion) = invalid_name(&err);
    assert_eq!(name, "Web_1");
    assert_eq!(problem, &NameProblem::Uppercase('W'));
    assert_eq!(suggestion, Some("web-1"));
    let text = err.to_string();
    assert!(
        text.starts_with("line 3, column 1: invalid process type \"Web_1\": "),
        "{text}"
    );
    assert!(text.ends_with("did you mean \"web-1\"?"), "{text}");
}

#[test]
fn underscore_alone_points_at_it() {
    let err = one_error("worker_2: x");
    assert_eq!((err.line, err.column), (1, 7));
    assert_eq!(invalid_name(&err).1, &NameProblem::Underscore);
    assert_eq!(invalid_name(&err).2, Some("worker-2"));
}

#[test]
fn no_suggestion_when_the_fix_is_not_obvious() {
    assert_eq!(invalid_name(&one_error("Web.1: x")).2, None);
    assert_eq!(invalid_name(&one_error("wéb: x")).2, None);
    let long = format!("W{}", "a".repeat(63));
    assert_eq!(invalid_name(&one_error(&format!("{long}: x"))).2, None);
}

#[test]
fn hyphens_at_either_end_suggest_the_trimmed_name() {
    assert_eq!(invalid_name(&one_error("-Foo_Bar-: x")).2, Some("foo-bar"));
}

// "Collect all errors of the file, not just the first."

#[test]
fn all_errors_are_collected_and_displayed_one_per_line() {
    let err = parse("Web: a\nok-one: b\nno colon\nworker:\nok-one: c\n").unwrap_err();
    let located: Vec<(usize, usize)> = err.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(located, [(1, 1), (3, 3), (4, 8), (5, 1)]);
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("line 1, column 1: invalid process type \"Web\""));
    assert!(lines[1].starts_with("line 3, column 3: no ':'"));
    assert!(lines[2].starts_with("line 4, column 8: no command"));
    assert!(lines[3].starts_with("line 5, column 1: duplicate process type \"ok-one\""));
}

// "An empty Procfile (no entries) is not an error."

#[test]
fn an_empty_procfile_is_not_an_error() {
    for text in ["", "\n", "\u{feff}", "# only a comment\n\n", "\r\n\r\n"] {
        let p = ok(text);
        assert!(p.is_empty(), "{text:?}");
        assert_eq!(p.len(), 0);
        assert!(p.warnings.is_empty());
    }
}

// "Never panic; handle non-ASCII (columns count characters, not bytes)."

#[test]
fn columns_count_characters_not_bytes() {
    let err = one_error("wéb: x");
    assert_eq!((err.line, err.column), (1, 2));
    assert_eq!(invalid_name(&err).1, &NameProblem::InvalidChar('é'));

    // After a multi-byte name the colon column is counted in characters.
    let all = errors("日本:");
    assert_eq!(all[0].column, 1);
    assert_eq!(all[1].column, 4);
}

#[test]
fn non_ascii_commands_are_kept_verbatim() {
    let p = ok("web: echo 'héllo, 世界' 🚀\n");
    assert_eq!(p.get("web"), Some("echo 'héllo, 世界' 🚀"));
}

#[test]
fn a_nul_in_the_command_is_an_error_at_its_column() {
    let err = one_error("web:  a\0b");
    assert_eq!((err.line, err.column), (1, 8));
    assert!(matches!(err.kind, ParseErrorKind::NulInCommand { .. }));
}

#[test]
fn a_commented_out_command_is_accepted_with_a_warning() {
    let p = ok("web: # bin/web");
    assert_eq!(p.get("web"), Some("# bin/web"));
    assert_eq!(p.warnings.len(), 1);
    assert_eq!((p.warnings[0].line, p.warnings[0].column), (1, 6));
    assert!(matches!(
        p.warnings[0].kind,
        WarningKind::CommentedCommand { .. }
    ));
}

// Helpers.

#[test]
fn helpers_get_iter_to_map_display_and_from_str() {
    let p: Procfile = "worker: b\nweb: a\n".parse().unwrap();
    assert_eq!(p.get("web"), Some("a"));
    assert_eq!(p.get("nope"), None);
    assert_eq!(p.entry("worker").map(|e| e.line), Some(1));
    assert_eq!(p.len(), 2);
    assert!(!p.is_empty());
    assert_eq!(
        p.to_map(),
        BTreeMap::from([("web".into(), "a".into()), ("worker".into(), "b".into())])
    );
    assert_eq!((&p).into_iter().count(), 2);
    assert_eq!(p.entries()[0].name, "worker");
    assert_eq!(p.to_string(), "worker: b\nweb: a\n");
    assert_eq!(pairs(&ok(&p.to_string())), pairs(&p));
    assert!(Procfile::default().is_empty());
}

#[test]
fn parse_errors_accessors() {
    let err = parse("A: x\nB: y").unwrap_err();
    assert_eq!(err.len(), 2);
    assert!(!err.is_empty());
    assert_eq!(err.errors().len(), 2);
    assert_eq!((&err).into_iter().count(), 2);
    assert_eq!(err.into_iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn validate_process_type_applies_the_same_rule() {
    assert_eq!(validate_process_type("web"), Ok(()));
    assert_eq!(validate_process_type("a"), Ok(()));
    assert_eq!(validate_process_type(""), Err(ParseErrorKind::EmptyName));
    assert_eq!(
        validate_process_type("run"),
        Err(ParseErrorKind::ReservedName { name: "run".into() })
    );
    assert_eq!(
        validate_process_type("Web_1"),
        Err(ParseErrorKind::InvalidName {
            name: "Web_1".into(),
            problem: NameProblem::Uppercase('W'),
            suggestion: Some("web-1".into()),
        })
    );
    assert!(validate_process_type(&"a".repeat(64)).is_err());
}
