//! A Procfile command as program arguments: split into words by the quoting
//! rules of `sh` and with `$VAR` and `${VAR}` expanded from the process
//! environment, without running a shell (a container image may have none).
//!
//! What is honoured: blanks separate words; `'...'` is literal; `"..."`
//! groups and expands, where a backslash escapes only `$`, `` ` ``, `"`,
//! `\` and a newline; outside quotes a backslash escapes any character;
//! `$NAME`, `${NAME}` and a lone `$` (kept as is). An unset variable
//! expands to nothing, and a word made only of unquoted expansions that
//! came out empty is dropped, as in `sh`. What is not: field splitting of
//! expanded values (a value with blanks stays one word, as Kubernetes'
//! `$(VAR)` does), globbing, command substitution, `${VAR:-default}` and
//! the other operators (refused with a clear message, so a line written
//! for a shell does not silently run as something else), and shell syntax
//! such as `;`, `|` or `&&`, which stays a literal argument: a line that
//! needs a shell says so (`sh -c '...'`).

use std::collections::BTreeMap;

/// The environment variables a command line expands, by name.
pub type Env = BTreeMap<String, String>;

/// Split `line` into words, expanding variables from `env`.
pub fn split_and_expand(line: &str, env: &Env) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether the current word exists even if empty ("" or '' make one).
    let mut in_word = false;
    // Whether the current word has anything other than unquoted expansions.
    let mut solid = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word && (solid || !word.is_empty()) {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                in_word = false;
                solid = false;
            }
            '\'' => {
                in_word = true;
                solid = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                solid = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('$' | '`' | '"' | '\\')) => word.push(c),
                            // A quoted line continuation disappears.
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".to_string()),
                        },
                        Some('$') => {
                            expand(&mut chars, env, &mut word)?;
                        }
                        Some('`') => return Err(unsupported("command substitution (`...`)")),
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".to_string()),
                    }
                }
            }
            '\\' => match chars.next() {
                // A line continuation separates nothing and adds nothing.
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    solid = true;
                    word.push(c);
                }
                None => {
                    in_word = true;
                    solid = true;
                    word.push('\\');
                }
            },
            '$' => {
                in_word = true;
                if expand(&mut chars, env, &mut word)? {
                    solid = true;
                }
            }
            '`' => return Err(unsupported("command substitution (`...`)")),
            c => {
                in_word = true;
                solid = true;
                word.push(c);
            }
        }
    }
    if in_word && (solid || !word.is_empty()) {
        words.push(word);
    }
    Ok(words)
}

fn unsupported(what: &str) -> String {
    format!("{what} needs a shell: write the command as sh -c '...'")
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Expand what follows a `$` into `out`. Returns whether it was kept as a
/// literal `$` (not an expansion).
fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    env: &Env,
    out: &mut String,
) -> Result<bool, String> {
    match chars.peek().copied() {
        Some('{') => {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(c) if is_name_char(c) => name.push(c),
                    Some(_) => {
                        return Err(unsupported(&format!(
                            "the expansion ${{{name}...}} with an operator"
                        )))
                    }
                    None => return Err("unterminated ${".to_string()),
                }
            }
            if name.is_empty() || !name.starts_with(is_name_start) {
                return Err(format!("bad substitution ${{{name}}}"));
            }
            if let Some(value) = env.get(&name) {
                out.push_str(value);
            }
            Ok(false)
        }
        Some('(') => Err(unsupported("command substitution $(...)")),
        Some(c) if is_name_start(c) => {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if !is_name_char(c) {
                    break;
                }
                name.push(c);
                chars.next();
            }
            if let Some(value) = env.get(&name) {
                out.push_str(value);
            }
            Ok(false)
        }
        // `$` before anything else (`$1`, `$ `, end of line) is literal.
        _ => {
            out.push('$');
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        [("PORT", "5000"), ("GREETING", "hello world"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn split(line: &str) -> Vec<String> {
        split_and_expand(line, &env()).unwrap()
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(
            split("  httpd -f   -p\t5000 "),
            ["httpd", "-f", "-p", "5000"]
        );
        assert!(split("   ").is_empty());
    }

    #[test]
    fn quotes_group_and_single_quotes_are_literal() {
        assert_eq!(
            split(r#"sh -c 'echo $PORT; exit 0'"#),
            ["sh", "-c", "echo $PORT; exit 0"]
        );
        assert_eq!(split(r#"echo "a  b" '' """#), ["echo", "a  b", "", ""]);
        assert_eq!(split(r#"a"b"'c'd"#), ["abcd"]);
    }

    #[test]
    fn variables_expand_outside_single_quotes() {
        assert_eq!(split("httpd -p $PORT"), ["httpd", "-p", "5000"]);
        assert_eq!(split("x=${PORT}x"), ["x=5000x"]);
        assert_eq!(split(r#"echo "$GREETING!""#), ["echo", "hello world!"]);
        // No field splitting of values.
        assert_eq!(split("echo $GREETING"), ["echo", "hello world"]);
        // Unset or empty: nothing, and an unquoted empty word goes away.
        assert_eq!(split("a $UNSET $EMPTY b"), ["a", "b"]);
        assert_eq!(split(r#"a "$UNSET" b"#), ["a", "", "b"]);
        assert_eq!(split("a x$UNSET b"), ["a", "x", "b"]);
    }

    #[test]
    fn backslashes_escape() {
        assert_eq!(split(r"echo \$PORT a\ b"), ["echo", "$PORT", "a b"]);
        assert_eq!(
            split(r#"echo "\$PORT \"q\" \n""#),
            ["echo", r#"$PORT "q" \n"#]
        );
        assert_eq!(split("a \\\nb"), ["a", "b"]);
    }

    #[test]
    fn lone_dollars_are_literal() {
        assert_eq!(split("echo $ $1 cost$"), ["echo", "$", "$1", "cost$"]);
    }

    #[test]
    fn what_needs_a_shell_is_refused_clearly() {
        for line in [
            "echo $(date)",
            "echo `date`",
            "echo ${X:-y}",
            "echo 'open",
            "echo \"open",
            "echo ${",
        ] {
            assert!(split_and_expand(line, &env()).is_err(), "{line}");
        }
        assert!(split_and_expand("echo ${}", &env())
            .unwrap_err()
            .contains("bad substitution"));
    }
}
