//! Helpers shared by the grammar and corpus tests.

#![allow(dead_code)]

use drycc_procfile::{parse, NameProblem, ParseError, ParseErrorKind, Procfile};

pub fn ok(text: &str) -> Procfile {
    parse(text).unwrap_or_else(|e| panic!("expected {text:?} to parse, got:\n{e}"))
}

pub fn errors(text: &str) -> Vec<ParseError> {
    match parse(text) {
        Ok(p) => panic!("expected {text:?} to fail, got {p:?}"),
        Err(e) => e.into_vec(),
    }
}

pub fn one_error(text: &str) -> ParseError {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected one error for {text:?}, got {all:?}");
    all.remove(0)
}

pub fn pairs(p: &Procfile) -> Vec<(&str, &str)> {
    p.iter()
        .map(|e| (e.name.as_str(), e.command.as_str()))
        .collect()
}

pub fn invalid_name(err: &ParseError) -> (&str, &NameProblem, Option<&str>) {
    match &err.kind {
        ParseErrorKind::InvalidName {
            name,
            problem,
            suggestion,
        } => (name, problem, suggestion.as_deref()),
        other => panic!("expected InvalidName, got {other:?}"),
    }
}
