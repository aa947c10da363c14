//! Cases taken from public Procfile corpora, rewritten as our own tests:
//! Heroku's CNB Procfile spec and tests (heroku/buildpacks-procfile),
//! dokku/procfile-util fixtures, foreman's and honcho's parser tests.
//!
//! Where our grammar deliberately differs from theirs (they accept uppercase,
//! `_`, leading `-`, `//` comments, or skip unparsable lines), the test asserts
//! our behaviour and a comment says what theirs is.

mod common;

use common::*;
use drycc_procfile::{NameProblem, ParseError, ParseErrorKind, WarningKind};

fn suggestion(err: &ParseError) -> Option<&str> {
    match &err.kind {
        ParseErrorKind::InvalidName { suggestion, .. } => suggestion.as_deref(),
        other => panic!("expected InvalidName, got {other:?}"),
    }
}

/// heroku/buildpacks-procfile: SPEC.md, src/procfile.rs tests, tests/fixtures.
mod heroku_cnb {
    use super::*;

    #[test]
    fn single_and_multiple_processes() {
        assert_eq!(pairs(&ok("web: rails s")), [("web", "rails s")]);
        assert_eq!(
            pairs(&ok("web: rails s\nworker: rake sidekiq")),
            [("web", "rails s"), ("worker", "rake sidekiq")]
        );
    }

    #[test]
    fn empty_file_has_no_processes() {
        // CNB adds an "Empty file" warning; we expose `is_empty()` instead
        // and let the caller decide (a build without types falls back to the
        // detected default).
        let p = ok("");
        assert!(p.is_empty());
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn nonsense_is_an_error() {
        let err = one_error("&&&&&");
        assert_eq!(err.kind, ParseErrorKind::MissingColon);
        assert_eq!((err.line, err.column), (1, 1));
    }

    #[test]
    fn missing_command_and_missing_name_are_errors() {
        assert!(matches!(
            one_error("web:").kind,
            ParseErrorKind::EmptyCommand { .. }
        ));
        assert_eq!(one_error(": rails -s").kind, ParseErrorKind::EmptyName);
    }

    #[test]
    fn key_must_not_start_or_end_with_a_hyphen() {
        let err = one_error("-key: echo 'done'");
        assert_eq!(err.column, 1);
        let err = one_error("key-: echo 'done'");
        assert_eq!(err.column, 4);
    }

    #[test]
    fn one_and_two_character_keys() {
        // CNB accepts them silently; we accept them with a warning because
        // Drycc's own naming rule asks for 3 to 63 characters.
        for text in ["a: echo 'done'", "aa: echo 'done'"] {
            let p = ok(text);
            assert_eq!(p.len(), 1);
            assert!(matches!(
                p.warnings.as_slice(),
                [w] if matches!(w.kind, WarningKind::ShortName { .. })
            ));
        }
    }

    #[test]
    fn strictly_valid_key() {
        let p = ok("iamastrictly-validkey: echo 'done'");
        assert_eq!(p.get("iamastrictly-validkey"), Some("echo 'done'"));
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn uppercase_key_is_an_error_with_the_lowercase_suggestion() {
        // CNB lowercases the key and warns; we refuse it (the type becomes
        // part of process names) and suggest the fix.
        let err = one_error("IamAvalidKeyButNotStrictly: echo 'done'");
        assert_eq!(err.column, 1);
        assert_eq!(suggestion(&err), Some("iamavalidkeybutnotstrictly"));
    }

    #[test]
    fn invalid_key_points_at_the_offending_character() {
        // CNB rewrites `_` to `-` first, then points at the `.` (column 5);
        // `_` is an error for us too, so we point at it (column 3). No
        // suggestion: fixing `_` still leaves the dots.
        let err = one_error("is_w.e.b: echo hello");
        assert_eq!((err.line, err.column), (1, 3));
        assert_eq!(suggestion(&err), None);
    }

    #[test]
    fn max_key_length_is_63() {
        let text = format!("\n# 63 chars\n{}: fonz\n", "a".repeat(63));
        assert_eq!(ok(&text).len(), 1);
        let text = format!("\n# 64 chars\n{}: fonz\n", "a".repeat(64));
        let err = one_error(&text);
        assert_eq!((err.line, err.column), (3, 64));
    }

    #[test]
    fn comments_may_be_preceded_by_spaces() {
        assert!(ok("# I am a comment").is_empty());
        assert!(ok(" # Comment with spaces").is_empty());
        // Not a comment: `#` is not the first visible character, and the line
        // has no `:`.
        assert_eq!(
            one_error("I am not a comment # <--").kind,
            ParseErrorKind::MissingColon
        );
    }

    #[test]
    fn not_yaml_with_leading_and_trailing_whitespace() {
        // Like the `not_yaml_procfile` fixture: invalid YAML, valid Procfile.
        // CNB accepts the indented key with one warning; so do we.
        let p = ok("# Looks like YAML, but is not.\n\n   web: echo foo: bar   \n");
        assert_eq!(pairs(&p), [("web", "echo foo: bar")]);
        assert_eq!(p.warnings.len(), 1);
        assert!(matches!(
            p.warnings[0].kind,
            WarningKind::LeadingBlanks { .. }
        ));
    }

    #[test]
    fn complex_command_is_kept_verbatim() {
        // Compound commands, both quote styles, nested quotes, interpolation.
        let cmd = r#"echo 'this is the "web" process!' && echo "\"PORT\" is set to: '${PORT}'""#;
        let p = ok(&format!("# compound command\nweb: {cmd}\n"));
        assert_eq!(p.get("web"), Some(cmd));
    }

    #[test]
    fn web_and_worker_fixture() {
        let p = ok(
            "web: echo 'this is the web process!'\nworker: echo 'this is the worker process!'\n",
        );
        assert_eq!(p.names().collect::<Vec<_>>(), ["web", "worker"]);
    }

    #[test]
    fn spec_key_and_value_separated_by_colon_and_zero_or_more_spaces() {
        assert_eq!(ok("web:rails s").get("web"), Some("rails s"));
        assert_eq!(ok("web: \t rails s").get("web"), Some("rails s"));
    }

    #[test]
    fn spec_value_must_contain_a_non_whitespace_character() {
        assert!(matches!(
            one_error("web:    \t").kind,
            ParseErrorKind::EmptyCommand { .. }
        ));
    }

    #[test]
    fn spec_duplicate_key_is_an_error() {
        // CNB keeps the last value with a warning; we refuse duplicates,
        // naming both lines, as dokku and honcho do.
        let err = one_error("web: a\nweb: b");
        assert_eq!(
            err.kind,
            ParseErrorKind::Duplicate {
                name: "web".into(),
                first_line: 1
            }
        );
    }

    #[test]
    fn classic_optional_colon_is_an_error() {
        // Heroku's classic regex `^[[:space:]]*([a-zA-Z0-9_-]+):?\s+(.*)`
        // made the colon optional; the CNB spec and we require it.
        let err = one_error("web rails s");
        assert_eq!((err.kind, err.column), (ParseErrorKind::MissingColon, 4));
    }

    #[test]
    fn crlf_is_converted() {
        // The classic Ruby parser converted CRLF to LF before matching.
        let p = ok("web: rails s\r\nworker: rake sidekiq\r\n");
        assert_eq!(pairs(&p), [("web", "rails s"), ("worker", "rake sidekiq")]);
    }
}

/// dokku/procfile-util: fixtures/*.Procfile, test.bats, PROCFILE_FORMAT.md.
mod dokku {
    use super::*;

    #[test]
    fn comments_fixture() {
        // Banner comments, commented-out entries (some with invalid names),
        // `#` without a following space, a name starting with a digit.
        let text = "\
################
#  DEVELOPMENT #
################

# the threaded worker
cron: node worker.js
wor-ker: node worker.js
# -wor-ker2: node worker.js
# -wor-ker_2: node worker.js
custom: echo -n
2custom: echo -n
# -3custom-: echo -n
release: touch /app/release.test

# web: bundle exec rails server
#dj2: bundle exec script/delayed_job -i 2 run
#dj10: bundle exec script/delayed_job -i 10 run
";
        let p = ok(text);
        assert_eq!(
            p.names().collect::<Vec<_>>(),
            ["cron", "wor-ker", "custom", "2custom", "release"]
        );
        assert_eq!(p.get("custom"), Some("echo -n"));
        assert_eq!(p.entry("release").map(|e| e.line), Some(13));
    }

    #[test]
    fn inline_comment_stays_in_the_command() {
        // procfile-util strips ` # ...` from the command; we keep the command
        // verbatim (the shell ignores the comment anyway).
        let p = ok("worker: node worker.js # testing inline comment");
        assert_eq!(
            p.get("worker"),
            Some("node worker.js # testing inline comment")
        );
    }

    #[test]
    fn blanks_before_the_colon_are_an_error() {
        // The comments fixture has `web   : node web.js`; procfile-util's
        // tests expect it to be accepted as `web`. Blanks are not type
        // characters for us (nor for the CNB spec): error, with the fix.
        let err = one_error("web   : node web.js # testing inline comment");
        assert_eq!((err.line, err.column), (1, 4));
        assert_eq!(suggestion(&err), Some("web"));
    }

    #[test]
    fn forwardslash_comments_are_not_comments() {
        // procfile-util ignores `//` lines and strips ` // ...` after the
        // command; for us only `#` starts a comment, and the command is
        // verbatim.
        let text = "// ignore this\nweb: python web.py\n# this too\nworker-2: node worker.js // testing inline forwardslash comment";
        let err = one_error(text);
        assert_eq!((err.line, err.column), (1, 1));
        assert_eq!(err.kind, ParseErrorKind::MissingColon);

        let p = ok(&text.replacen("// ignore this", "# ignore this", 1));
        assert_eq!(
            p.get("worker-2"),
            Some("node worker.js // testing inline forwardslash comment")
        );
        assert_eq!(p.get("web"), Some("python web.py"));
    }

    #[test]
    fn port_fixture_keeps_variables() {
        let p = ok("web: node web.js --port $PORT\nworker: node worker.js\n");
        assert_eq!(p.get("web"), Some("node web.js --port $PORT"));
        assert_eq!(p.names().collect::<Vec<_>>(), ["web", "worker"]);
    }

    #[test]
    fn strict_fixture_without_final_newline() {
        let p = ok("# comment\n#comment\nweb: python app.py\n\n#  comment\nworker: python worker.py\n\nworker-2: python worker.py 2\n\nworker-3: python worker.py 3");
        assert_eq!(
            p.names().collect::<Vec<_>>(),
            ["web", "worker", "worker-2", "worker-3"]
        );
        assert_eq!(p.get("worker-3"), Some("python worker.py 3"));
    }

    #[test]
    fn v1_fixture_underscore_is_an_error() {
        // procfile-util's lax mode accepts `worker_2`; its strict mode (DNS
        // labels) refuses it, like us. We also suggest the fix.
        let text = "# comment\nweb: python app.py\n\nworker_2: python worker.py 2\n";
        let err = one_error(text);
        assert_eq!((err.line, err.column), (4, 7));
        assert_eq!(suggestion(&err), Some("worker-2"));
    }

    #[test]
    fn strict_single_invalid_fixture() {
        let err = one_error("we_b: worker.js\n");
        assert_eq!((err.line, err.column), (1, 3));
        assert_eq!(suggestion(&err), Some("we-b"));
    }

    #[test]
    fn lax_class_allows_a_leading_hyphen_we_do_not() {
        // Lax `[A-Za-z0-9_-]+` accepts `-wor-ker2`.
        let err = one_error("-wor-ker2: node worker.js");
        assert_eq!(err.column, 1);
        assert_eq!(suggestion(&err), Some("wor-ker2"));
    }

    #[test]
    fn names_over_63_characters_are_errors() {
        let err = one_error(&format!("{}: x", "w".repeat(70)));
        match err.kind {
            ParseErrorKind::InvalidName { problem, .. } => {
                assert_eq!(problem, NameProblem::TooLong { len: 70 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_must_be_unique() {
        let err = one_error("web: a\nworker: b\n\nweb: c\n");
        assert_eq!(err.line, 4);
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn comment_in_place_of_a_command_is_a_warning() {
        // procfile-util: "comment specified in place of command" (an error).
        // For us the command is verbatim, so it is accepted, with a warning.
        let p = ok("web: # node web.js");
        assert!(matches!(
            p.warnings.as_slice(),
            [w] if matches!(w.kind, WarningKind::CommentedCommand { .. })
        ));
    }

    #[test]
    fn no_entries_is_not_an_error_here() {
        // procfile-util: "no entries found in Procfile" (an error).
        assert!(ok("# nothing\n\n").is_empty());
    }

    #[test]
    fn entries_keep_file_order() {
        // procfile-util sorts entries by name; we keep file order.
        let p = ok("worker: b\nrelease: c\nweb: a\n");
        assert_eq!(p.names().collect::<Vec<_>>(), ["worker", "release", "web"]);
    }
}

/// ddollar/foreman: spec/foreman/procfile_spec.rb, spec/spec_helper.rb.
mod foreman {
    use super::*;

    #[test]
    fn spec_helper_procfile() {
        // write_procfile: a blank line between entries, a tab after `:`.
        let p = ok("alpha: ./alpha\n\nbravo:\t./bravo\nfoo-bar: ./foo-bar\n");
        assert_eq!(
            pairs(&p),
            [
                ("alpha", "./alpha"),
                ("bravo", "./bravo"),
                ("foo-bar", "./foo-bar")
            ]
        );
        assert_eq!(p.get("unicorn"), None);
    }

    #[test]
    fn underscore_names_are_errors_here() {
        // foreman's `^([A-Za-z0-9_]+):\s*(.+)$` accepts `foo_bar` next to
        // `foo-bar`; we refuse `_`. The suggestion is the plain fix, even if
        // it would then collide with `foo-bar` (reported after the fix).
        let err = one_error("foo-bar: ./foo-bar\nfoo_bar: ./foo_bar\n");
        assert_eq!((err.line, err.column), (2, 4));
        assert_eq!(suggestion(&err), Some("foo-bar"));
    }

    #[test]
    fn non_matching_lines_are_errors_not_skipped() {
        // foreman silently skips every line its regex does not match.
        let all = errors("alpha: ./alpha\nthis is not an entry\n  +bravo: ./bravo\n");
        let located: Vec<(usize, usize)> = all.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(located, [(2, 5), (3, 3)]);
    }

    #[test]
    fn empty_procfile_is_empty_not_an_error() {
        // foreman raises EmptyFileError; here the caller checks is_empty().
        assert!(ok("\n").is_empty());
    }

    #[test]
    fn crlf_is_accepted() {
        // foreman replaces "\r\n" by "\n" before parsing.
        assert_eq!(
            pairs(&ok("alpha: ./alpha\r\nbravo: ./bravo\r\n")),
            [("alpha", "./alpha"), ("bravo", "./bravo")]
        );
    }

    #[test]
    fn writes_name_colon_command_lines_that_parse_back() {
        // foreman's to_s: "foo: ./foo\nbar: ./bar".
        let p = ok("foo: ./foo\nbar: ./bar");
        assert_eq!(p.to_string(), "foo: ./foo\nbar: ./bar\n");
        assert_eq!(pairs(&ok(&p.to_string())), pairs(&p));
    }
}

/// nickstenning/honcho: tests/test_environ.py (parse_procfile cases).
mod honcho {
    use super::*;

    #[test]
    fn simple() {
        assert_eq!(pairs(&ok("web: command\n")), [("web", "command")]);
        assert_eq!(
            pairs(&ok("foo: python foo.py\nbar: python bar.py\n")),
            [("foo", "python foo.py"), ("bar", "python bar.py")]
        );
    }

    #[test]
    fn no_newline_at_eof() {
        assert_eq!(pairs(&ok("web: command")), [("web", "command")]);
    }

    #[test]
    fn commented_entry() {
        assert!(ok("#commented: command\n").is_empty());
    }

    #[test]
    fn invalid_characters_are_errors() {
        // honcho skips `+foo: command` silently; we report it.
        let err = one_error("+foo: command\n");
        assert_eq!(err.column, 1);
        assert_eq!(suggestion(&err), None);
    }

    #[test]
    fn hyphen_and_underscore_name() {
        // honcho accepted `-foo_bar`; we refuse the leading `-` (column 1)
        // and suggest the DNS-label form.
        let err = one_error("-foo_bar: command\n");
        assert_eq!(err.column, 1);
        assert_eq!(suggestion(&err), Some("foo-bar"));
    }

    #[test]
    fn shell_metacharacters_are_verbatim() {
        let cmd = r#"sh -c "echo $FOOBAR" >/dev/null 2>&1"#;
        assert_eq!(ok(&format!("web: {cmd}\n")).get("web"), Some(cmd));
    }

    #[test]
    fn order_is_kept() {
        let p = ok("one: onecommand\ntwo: twocommand\nthree: twocommand\nfour: fourcommand\n");
        assert_eq!(
            p.names().collect::<Vec<_>>(),
            ["one", "two", "three", "four"]
        );
    }

    #[test]
    fn names_must_be_unique() {
        // honcho asserts "process names must be unique within a Procfile".
        assert!(matches!(
            one_error("foo: echo 123\nfoo: echo 123\n").kind,
            ParseErrorKind::Duplicate { first_line: 1, .. }
        ));
    }

    #[test]
    fn unicode_name_is_an_error_at_the_right_column() {
        // honcho's environ tests refuse Unicode keys; so do we, counting
        // columns in characters.
        let err = one_error("ṀẎṾẠṚ: value\n");
        assert_eq!(err.column, 1);
        let err = one_error("myvär: value\n");
        assert_eq!(err.column, 4);
    }

    #[test]
    fn unicode_command_is_verbatim() {
        assert_eq!(ok("web: echo ⋃ñᴉ—☪ó∂ǝ\n").get("web"), Some("echo ⋃ñᴉ—☪ó∂ǝ"));
    }

    #[test]
    fn dedented_text_with_indentation_warns() {
        // honcho's tests dedent their Procfiles first; indented input is
        // accepted here with a warning.
        let p = ok("    web: command\n    worker: other\n");
        assert_eq!(p.len(), 2);
        assert_eq!(p.warnings.len(), 2);
    }
}
