//! Errors and warnings of a parse. Both carry a 1-based line and column
//! (columns count characters, not bytes) and display as
//! `line L, column C: <message>`.

use std::fmt;

use crate::name::{NameProblem, DRYCC_MIN_TYPE_LEN};

/// One error of a Procfile, located at the offending character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters, of the offending character (or of the
    /// place where something is missing).
    pub column: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a Procfile line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A line that is neither blank, a comment, nor `<type>: <command>`.
    #[error(
        "no ':' on this line; each line must be \"<type>: <command>\", \
         a comment starting with '#', or blank"
    )]
    MissingColon,
    /// Nothing (or only blanks) before the `:`.
    #[error("missing process type before ':'; expected \"<type>: <command>\" where {NAME_RULE}")]
    EmptyName,
    /// A process type outside the rule.
    #[error("invalid process type {name:?}: {problem}; {NAME_RULE}{}", did_you_mean(.suggestion))]
    InvalidName {
        /// The name as written.
        name: String,
        /// The first problem found, at the error's column.
        problem: NameProblem,
        /// The obvious fix (`Web_1` -> `web-1`), when there is one.
        suggestion: Option<String>,
    },
    /// A reserved process type (`run`).
    #[error(
        "process type {name:?} is reserved for one-off commands (drycc run); \
         choose another name"
    )]
    ReservedName {
        /// The name as written.
        name: String,
    },
    /// Nothing but blanks after the `:`.
    #[error(
        "no command after ':'; expected \"<type>: <command>\" \
         with a command of at least one non-blank character"
    )]
    EmptyCommand {
        /// The process type as written (possibly invalid or empty itself).
        name: String,
    },
    /// A NUL character in the command: no shell can be given it.
    #[error("the command contains a NUL character, which cannot be passed to a shell")]
    NulInCommand {
        /// The process type as written.
        name: String,
    },
    /// A process type defined a second time.
    #[error(
        "duplicate process type {name:?}: already defined on line {first_line}; \
         each process type may appear only once"
    )]
    Duplicate {
        /// The process type.
        name: String,
        /// The line of its first definition.
        first_line: usize,
    },
}

const NAME_RULE: &str = "a process type is 1 to 63 lowercase letters (a-z), digits (0-9) \
     and hyphens (-), and starts and ends with a letter or digit";

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(fixed) => format!("; did you mean {fixed:?}?"),
        None => String::new(),
    }
}

/// Every error of a Procfile, in line order (never empty when returned by
/// [`parse`](crate::parse)). Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_lines(.errors))]
pub struct ParseErrors {
    errors: Vec<ParseError>,
}

fn join_lines(errors: &[ParseError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ParseErrors {
    pub(crate) fn new(errors: Vec<ParseError>) -> Self {
        Self { errors }
    }

    /// The errors, in line order.
    pub fn errors(&self) -> &[ParseError] {
        &self.errors
    }

    /// Iterates over the errors, in line order.
    pub fn iter(&self) -> std::slice::Iter<'_, ParseError> {
        self.errors.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there are no errors (never true for a value from `parse`).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors, by value.
    pub fn into_vec(self) -> Vec<ParseError> {
        self.errors
    }
}

impl IntoIterator for ParseErrors {
    type Item = ParseError;
    type IntoIter = std::vec::IntoIter<ParseError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ParseErrors {
    type Item = &'a ParseError;
    type IntoIter = std::slice::Iter<'a, ParseError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Something accepted but worth telling the user; returned, never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What was noticed.
    pub kind: WarningKind,
}

/// What a [`Warning`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A process type of 1 or 2 characters: a valid DNS label, but shorter
    /// than Drycc's own naming rule (3..63) asks.
    ShortName {
        /// The process type.
        name: String,
    },
    /// Blanks before the process type, which were ignored.
    LeadingBlanks {
        /// The process type.
        name: String,
    },
    /// A command starting with `#`: the shell sees only a comment and runs
    /// nothing, so the command was probably commented out by mistake.
    CommentedCommand {
        /// The process type.
        name: String,
    },
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortName { name } => write!(
                f,
                "process type {name:?} is shorter than {DRYCC_MIN_TYPE_LEN} characters; \
                 it is accepted here, but Drycc's own naming rule asks for \
                 {DRYCC_MIN_TYPE_LEN} to 63 characters and may refuse it"
            ),
            Self::LeadingBlanks { name } => write!(
                f,
                "blanks before process type {name:?} were ignored; remove them"
            ),
            Self::CommentedCommand { name } => write!(
                f,
                "the command of process type {name:?} starts with '#', \
                 so the shell will run nothing; is it commented out?"
            ),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.kind
        )
    }
}
