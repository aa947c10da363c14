//! The process type rule: a DNS label (`[a-z0-9]`, inner `-`, 1..=63
//! characters), `run` reserved, plus the "did you mean" fixer.

use std::fmt;

use crate::error::ParseErrorKind;

/// The longest process type accepted, in characters (a DNS label).
pub const MAX_TYPE_LEN: usize = 63;

/// The shortest process type Drycc's own naming rule asks for. Shorter types
/// (1 or 2 characters) are accepted by [`parse`](crate::parse) with a
/// [`WarningKind::ShortName`](crate::WarningKind::ShortName) warning.
pub const DRYCC_MIN_TYPE_LEN: usize = 3;

/// Process types that a Procfile may not define: `run` names one-off commands
/// (`drycc run`), which never come from the Procfile.
pub const RESERVED_TYPES: &[&str] = &["run"];

/// What is wrong with a non-empty process type, at one character.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// An ASCII uppercase letter (the fix is its lowercase form).
    Uppercase(char),
    /// An underscore (the fix is `-`).
    Underscore,
    /// Any other character outside `[a-z0-9-]`, blanks and non-ASCII included.
    InvalidChar(char),
    /// The type starts with `-`.
    LeadingHyphen,
    /// The type ends with `-`.
    TrailingHyphen,
    /// The type is longer than [`MAX_TYPE_LEN`] characters.
    TooLong {
        /// Its length, in characters.
        len: usize,
    },
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uppercase(c) => write!(f, "uppercase letter {c:?} is not allowed"),
            Self::Underscore => f.write_str("'_' is not allowed"),
            Self::InvalidChar(c) => write!(f, "character {c:?} is not allowed"),
            Self::LeadingHyphen => f.write_str("it must not start with '-'"),
            Self::TrailingHyphen => f.write_str("it must not end with '-'"),
            Self::TooLong { len } => write!(
                f,
                "it is {len} characters long, at most {MAX_TYPE_LEN} are allowed"
            ),
        }
    }
}

/// The first problem of a non-empty name: its 0-based character offset and
/// what is wrong there. Character problems are reported before length, so the
/// column points at the leftmost offending character.
pub(crate) fn find_problem(name: &str) -> Option<(usize, NameProblem)> {
    let len = name.chars().count();
    for (i, c) in name.chars().enumerate() {
        let problem = match c {
            'a'..='z' | '0'..='9' => None,
            '-' if i == 0 => Some(NameProblem::LeadingHyphen),
            '-' if i + 1 == len => Some(NameProblem::TrailingHyphen),
            '-' => None,
            'A'..='Z' => Some(NameProblem::Uppercase(c)),
            '_' => Some(NameProblem::Underscore),
            _ => Some(NameProblem::InvalidChar(c)),
        };
        if let Some(problem) = problem {
            return Some((i, problem));
        }
    }
    (len > MAX_TYPE_LEN).then_some((MAX_TYPE_LEN, NameProblem::TooLong { len }))
}

pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED_TYPES.contains(&name)
}

/// The obvious fix of an invalid name, if there is one: blanks around it
/// dropped, ASCII letters lowercased, `_` turned into `-`, hyphens at either
/// end dropped. Only offered when the result is a valid, unreserved type.
pub(crate) fn suggest(name: &str) -> Option<String> {
    let mapped: String = name
        .trim_matches([' ', '\t'])
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let fixed = mapped.trim_matches('-');
    let usable =
        !fixed.is_empty() && fixed != name && find_problem(fixed).is_none() && !is_reserved(fixed);
    usable.then(|| fixed.to_owned())
}

/// Checks one process type against the Procfile rule, outside of a Procfile
/// (for example the keys of a `procfile` map sent to the API).
///
/// Returns the same error kinds [`parse`](crate::parse) reports for a name:
/// [`ParseErrorKind::EmptyName`], [`ParseErrorKind::InvalidName`] (with a
/// suggestion when there is an obvious fix) or
/// [`ParseErrorKind::ReservedName`]. Types of 1 or 2 characters are valid;
/// compare with [`DRYCC_MIN_TYPE_LEN`] to apply Drycc's stricter rule.
///
/// ```
/// use drycc_procfile::{validate_process_type, ParseErrorKind};
///
/// assert!(validate_process_type("web").is_ok());
/// let err = validate_process_type("Web_1").unwrap_err();
/// assert!(matches!(
///     err,
///     ParseErrorKind::InvalidName { ref suggestion, .. } if suggestion.as_deref() == Some("web-1")
/// ));
/// ```
pub fn validate_process_type(name: &str) -> Result<(), ParseErrorKind> {
    if name.is_empty() {
        return Err(ParseErrorKind::EmptyName);
    }
    if let Some((_, problem)) = find_problem(name) {
        return Err(ParseErrorKind::InvalidName {
            name: name.to_owned(),
            problem,
            suggestion: suggest(name),
        });
    }
    if is_reserved(name) {
        return Err(ParseErrorKind::ReservedName {
            name: name.to_owned(),
        });
    }
    Ok(())
}
