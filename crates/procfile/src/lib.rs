//! The Procfile grammar of Drycc: a tiny, pure parser (no I/O).
//!
//! ```
//! let procfile = drycc_procfile::parse("web: bundle exec puma -p $PORT\nworker: rake jobs:work\n")?;
//! assert_eq!(procfile.get("worker"), Some("rake jobs:work"));
//! assert_eq!(procfile.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["web", "worker"]);
//! # Ok::<(), drycc_procfile::ParseErrors>(())
//! ```
//!
//! # Grammar
//!
//! *Blanks* are spaces and tabs. *Columns* are 1-based and count characters
//! (not bytes) from the start of the line.
//!
//! - **Text.** A UTF-8 byte order mark at the very start is ignored (it does
//!   not count as a column). Lines end with LF or CRLF; a lone CR is not a line
//!   ending. The last line needs no line ending.
//! - **Ignored lines.** A line containing only whitespace is ignored. A line
//!   whose first non-blank character is `#` is a comment and is ignored.
//!   Nothing else is a comment: `//` lines are errors, and a `#` after the
//!   command is part of the command (the shell treats it as a comment).
//! - **Entries.** Every other line is `<type>: <command>`, one entry per line.
//!   The type is everything between the first non-blank character and the
//!   first `:`; the command is everything after that `:` and the blanks that
//!   follow it, verbatim (`web: echo foo: bar` runs `echo foo: bar`), with its
//!   trailing whitespace trimmed. No blank is needed after the `:`
//!   (`web:rails s` is `rails s`).
//! - **Leading blanks** before the type are accepted and ignored, with a
//!   [`WarningKind::LeadingBlanks`] warning. This follows Heroku's CNB
//!   Procfile spec ("a key MAY begin with zero or more spaces") and its
//!   implementation, which accepts them with a warning; Heroku's classic regex
//!   and dokku's procfile-util accept them too, while foreman and honcho
//!   silently skip such lines, which hides mistakes.
//! - **Process type** (`<type>`): a DNS label, `[a-z0-9]` and inner `-`,
//!   1 to 63 characters ([`MAX_TYPE_LEN`]), matching the CNB spec and
//!   Kubernetes. Drycc's own naming rule asks for 3 to 63 characters: types of
//!   1 or 2 characters are *accepted* with a [`WarningKind::ShortName`]
//!   warning rather than refused, so Procfiles written for Heroku keep
//!   parsing. `run` is reserved for one-off commands ([`RESERVED_TYPES`]).
//!   Blanks between the type and the `:` (`web : cmd`) are characters of the
//!   type, hence an error.
//! - **Command**: at least one non-blank character. A command starting with
//!   `#` is accepted with a [`WarningKind::CommentedCommand`] warning (the
//!   shell would run nothing). A NUL character in the command is an error (no
//!   shell can receive it).
//! - **Uniqueness.** Each type may appear once.
//!
//! # Errors
//!
//! [`parse`] reads the whole text and returns every error of it at once
//! ([`ParseErrors`], in line order), each naming the line and the column of
//! the offending character and saying what is allowed:
//!
//! | input | error, at |
//! |---|---|
//! | `web echo` (no `:`) | [`MissingColon`](ParseErrorKind::MissingColon), after the leading name-like characters (column 4), else the first non-blank |
//! | `: cmd` | [`EmptyName`](ParseErrorKind::EmptyName), the `:` |
//! | `web.1: cmd`, `-web: cmd`, `web-: cmd`, `my web: cmd` | [`InvalidName`](ParseErrorKind::InvalidName), the first offending character |
//! | a 64-character type | [`InvalidName`](ParseErrorKind::InvalidName) (too long), the 64th character |
//! | `Web_1: cmd` | [`InvalidName`](ParseErrorKind::InvalidName) with the suggestion `did you mean "web-1"?` |
//! | `run: cmd` | [`ReservedName`](ParseErrorKind::ReservedName), the type |
//! | `web:` | [`EmptyCommand`](ParseErrorKind::EmptyCommand), just after the `:` |
//! | `web` twice | [`Duplicate`](ParseErrorKind::Duplicate) on the second line, naming the first |
//!
//! Uppercase letters and `_` are errors, unlike the CNB implementation (which
//! rewrites them with a warning) and foreman/honcho (which accept them): the
//! type becomes part of process and Kubernetes object names, so it must be
//! written as it will be used. A suggestion is offered whenever lowercasing
//! ASCII letters, turning `_` into `-` and trimming blanks and end hyphens
//! gives a valid type.
//!
//! An empty Procfile (no entries) is not an error; see [`Procfile::is_empty`].
//!
//! [`parse`] never panics, whatever its input.
//!
//! # Commands as words
//!
//! [`words::split_and_expand`] turns a command into program arguments by the
//! quoting rules of `sh`, for runtimes that start a command without a shell
//! (container images); see its module for what is honoured and refused.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod error;
mod name;
pub mod words;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

pub use error::{ParseError, ParseErrorKind, ParseErrors, Warning, WarningKind};
pub use name::{
    validate_process_type, NameProblem, DRYCC_MIN_TYPE_LEN, MAX_TYPE_LEN, RESERVED_TYPES,
};

/// One `<type>: <command>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The process type (valid, unique within its Procfile).
    pub name: String,
    /// The command, verbatim, trailing whitespace trimmed; never empty.
    pub command: String,
    /// The 1-based line it was defined on.
    pub line: usize,
}

/// A parsed Procfile: its entries in file order, and the warnings of the
/// parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Procfile {
    entries: Vec<Entry>,
    /// Things accepted but worth telling the user, in line order.
    pub warnings: Vec<Warning>,
}

impl Procfile {
    /// The entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The command of a process type.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entry(name).map(|e| e.command.as_str())
    }

    /// The entry of a process type.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Iterates over the entries, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// The process types, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the Procfile defines no process type (only comments and blank
    /// lines, or nothing at all).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `type -> command` map stored with a build.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|e| (e.name.clone(), e.command.clone()))
            .collect()
    }
}

impl<'a> IntoIterator for &'a Procfile {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// Renders the canonical text, one `<type>: <command>` line per entry, which
/// parses back to the same entries.
impl fmt::Display for Procfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{}: {}", e.name, e.command)?;
        }
        Ok(())
    }
}

impl FromStr for Procfile {
    type Err = ParseErrors;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text)
    }
}

const BLANKS: [char; 2] = [' ', '\t'];
const BOM: char = '\u{feff}';

/// Parses the text of a Procfile (see the [crate docs](crate) for the
/// grammar). Returns the entries in file order with the warnings, or every
/// error of the text.
pub fn parse(text: &str) -> Result<Procfile, ParseErrors> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let mut parser = Parser::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        parser.line(index + 1, line);
    }
    parser.finish()
}

#[derive(Default)]
struct Parser<'t> {
    entries: Vec<Entry>,
    warnings: Vec<Warning>,
    errors: Vec<ParseError>,
    /// Valid types seen so far, with their first line.
    seen: HashMap<&'t str, usize>,
}

impl<'t> Parser<'t> {
    fn error(&mut self, line: usize, column: usize, kind: ParseErrorKind) {
        self.errors.push(ParseError { line, column, kind });
    }

    fn warn(&mut self, line: usize, column: usize, kind: WarningKind) {
        self.warnings.push(Warning { line, column, kind });
    }

    fn line(&mut self, line_no: usize, line: &'t str) {
        let rest = line.trim_start_matches(BLANKS);
        if rest.chars().all(char::is_whitespace) || rest.starts_with('#') {
            return;
        }
        // Blanks are ASCII, so their byte count is their character count.
        let indent = line.len() - rest.len();
        let name_col = indent + 1;

        let Some((name, after)) = rest.split_once(':') else {
            // Point after what looks like a type (`web echo` -> the blank),
            // where the `:` was expected; else at the start of the entry.
            let name_like = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .count();
            self.error(line_no, name_col + name_like, ParseErrorKind::MissingColon);
            return;
        };
        let colon_col = name_col + name.chars().count();
        let command_start = after.trim_start_matches(BLANKS);
        let command = command_start.trim_end();
        let command_col = colon_col + 1 + (after.len() - command_start.len());

        let name_ok = self.check_name(line_no, name_col, name);

        let command_ok = if command.is_empty() {
            let kind = ParseErrorKind::EmptyCommand {
                name: name.to_owned(),
            };
            self.error(line_no, colon_col + 1, kind);
            false
        } else if let Some(offset) = command.chars().position(|c| c == '\0') {
            let kind = ParseErrorKind::NulInCommand {
                name: name.to_owned(),
            };
            self.error(line_no, command_col + offset, kind);
            false
        } else {
            true
        };

        if !name_ok {
            return;
        }
        // A type is recorded even when its command is bad, so its duplicate
        // is reported in the same pass rather than after the first fix.
        if let Some(&first_line) = self.seen.get(name) {
            let kind = ParseErrorKind::Duplicate {
                name: name.to_owned(),
                first_line,
            };
            self.error(line_no, name_col, kind);
            return;
        }
        self.seen.insert(name, line_no);
        if !command_ok {
            return;
        }

        if indent > 0 {
            let kind = WarningKind::LeadingBlanks {
                name: name.to_owned(),
            };
            self.warn(line_no, 1, kind);
        }
        if name.chars().count() < DRYCC_MIN_TYPE_LEN {
            let kind = WarningKind::ShortName {
                name: name.to_owned(),
            };
            self.warn(line_no, name_col, kind);
        }
        if command.starts_with('#') {
            let kind = WarningKind::CommentedCommand {
                name: name.to_owned(),
            };
            self.warn(line_no, command_col, kind);
        }
        self.entries.push(Entry {
            name: name.to_owned(),
            command: command.to_owned(),
            line: line_no,
        });
    }

    /// Reports what is wrong with `name`, if anything; true when it is valid.
    fn check_name(&mut self, line_no: usize, name_col: usize, name: &str) -> bool {
        if name.is_empty() {
            // The offending character is the `:` itself.
            self.error(line_no, name_col, ParseErrorKind::EmptyName);
            return false;
        }
        if let Some((offset, problem)) = name::find_problem(name) {
            let kind = ParseErrorKind::InvalidName {
                name: name.to_owned(),
                problem,
                suggestion: name::suggest(name),
            };
            self.error(line_no, name_col + offset, kind);
            return false;
        }
        if name::is_reserved(name) {
            let kind = ParseErrorKind::ReservedName {
                name: name.to_owned(),
            };
            self.error(line_no, name_col, kind);
            return false;
        }
        true
    }

    fn finish(self) -> Result<Procfile, ParseErrors> {
        if self.errors.is_empty() {
            Ok(Procfile {
                entries: self.entries,
                warnings: self.warnings,
            })
        } else {
            Err(ParseErrors::new(self.errors))
        }
    }
}
