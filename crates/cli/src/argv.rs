//! Turns Drycc's `topic:command` grammar into words clap can parse.
//!
//! `drycc ps:scale web=2` becomes `drycc ps scale web=2`, shortcuts such as
//! `drycc scale` become their long form, a bare topic becomes its `list`
//! command, the spaced forms (`drycc ps list`, `drycc pts scale`) are kept,
//! and `drycc limits --cpu web=500m` becomes `limits set`. This module is
//! pure: it only rewrites a vector of words.

/// Every topic and the commands it accepts (aliases included).
const TOPICS: &[(&str, &[&str])] = &[
    ("auth", &["register", "login", "logout", "whoami"]),
    (
        "apps",
        &["create", "list", "info", "destroy", "logs", "run"],
    ),
    ("builds", &["create", "list", "pull"]),
    (
        "ps",
        &["list", "scale", "restart", "exec", "describe", "logs"],
    ),
    ("releases", &["list", "info", "rollback"]),
    ("config", &["list", "set", "unset"]),
    ("limits", &["list", "set", "unset"]),
    ("timeouts", &["list", "set", "unset"]),
    ("registry", &["list", "set", "unset"]),
    ("healthchecks", &["list", "set", "unset"]),
    ("autoscale", &["list", "set", "unset"]),
    ("perms", &["list", "create", "delete"]),
    ("domains", &["list", "add", "remove"]),
    ("certs", &["list", "add", "remove", "attach", "detach"]),
];

/// Other names of topics (`pts` is current Drycc's "process types").
const TOPIC_ALIASES: &[(&str, &str)] = &[("pts", "ps"), ("ptypes", "ps")];

/// One-word shortcuts and the `topic command` they stand for.
const SHORTCUTS: &[(&str, &str, &str)] = &[
    ("create", "apps", "create"),
    ("destroy", "apps", "destroy"),
    ("info", "apps", "info"),
    ("login", "auth", "login"),
    ("logout", "auth", "logout"),
    ("register", "auth", "register"),
    ("whoami", "auth", "whoami"),
    ("logs", "apps", "logs"),
    ("run", "apps", "run"),
    ("pull", "builds", "create"),
    ("scale", "ps", "scale"),
    ("rollback", "releases", "rollback"),
];

/// Options accepted before the command that take a value in the next word.
const LEADING_VALUE_OPTIONS: &[&str] = &["-c", "--config", "-a", "--app"];

fn canonical_topic(word: &str) -> Option<&'static str> {
    if let Some((topic, _)) = TOPICS.iter().find(|(t, _)| *t == word) {
        return Some(topic);
    }
    TOPIC_ALIASES
        .iter()
        .find(|(alias, _)| *alias == word)
        .map(|(_, topic)| *topic)
}

fn topic_has_command(topic: &str, command: &str) -> bool {
    TOPICS
        .iter()
        .any(|(t, commands)| *t == topic && commands.contains(&command))
}

/// Is `word` an app option given before the command (`-a x`, `--app=x`)?
fn is_app_option(word: &str) -> bool {
    word == "-a" || word == "--app" || word.starts_with("--app=")
}

/// Rewrites the arguments (without the program name) into clap's shape.
/// Unknown words are left alone so that clap reports them.
pub fn normalise(args: &[String]) -> Vec<String> {
    // Find the command word, skipping leading options and their values.
    let mut leading: Vec<String> = Vec::new();
    let mut leading_app: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        if !word.starts_with('-') || word == "--" {
            break;
        }
        let takes_value = LEADING_VALUE_OPTIONS.contains(&word.as_str());
        let target = if is_app_option(word) {
            &mut leading_app
        } else {
            &mut leading
        };
        target.push(word.clone());
        if takes_value {
            if let Some(value) = args.get(i + 1) {
                target.push(value.clone());
                i += 1;
            }
        }
        i += 1;
    }
    if i >= args.len() || args[i] == "--" {
        return args.to_vec();
    }

    let word = args[i].as_str();
    let rest = &args[i + 1..];
    let (words, consumed) = command_words(word, rest);
    let Some(words) = words else {
        return args.to_vec();
    };

    let mut out = leading;
    out.extend(words);
    // `-a` given before the command belongs to the command.
    out.extend(leading_app);
    out.extend(rest[consumed..].iter().cloned());
    out
}

/// The clap words for the command word `word` followed by `rest`, and how
/// many words of `rest` they consumed; `None` leaves everything to clap.
fn command_words(word: &str, rest: &[String]) -> (Option<Vec<String>>, usize) {
    if word == "help" {
        // `drycc help ps:scale` -> `drycc help ps scale`.
        let Some(next) = rest.first() else {
            return (None, 0);
        };
        let mut out = vec!["help".to_string()];
        if let Some(topic) = canonical_topic(next) {
            out.push(topic.to_string());
            if let Some(command) = rest.get(1).filter(|c| topic_has_command(topic, c)) {
                out.push(command.clone());
                return (Some(out), 2);
            }
            return (Some(out), 1);
        }
        return match command_words(next, &[]) {
            (Some(words), _) => {
                out.extend(words);
                (Some(out), 1)
            }
            (None, _) => (None, 0),
        };
    }
    if let Some((topic, command)) = word.split_once(':') {
        let Some(topic) = canonical_topic(topic) else {
            return (None, 0);
        };
        let command = if command.is_empty() { "list" } else { command };
        return (Some(vec![topic.to_string(), command.to_string()]), 0);
    }
    if let Some((_, topic, command)) = SHORTCUTS.iter().find(|(s, _, _)| *s == word) {
        return (Some(vec![topic.to_string(), command.to_string()]), 0);
    }
    if let Some(topic) = canonical_topic(word) {
        if let Some(next) = rest.first() {
            if topic_has_command(topic, next) {
                return (Some(vec![topic.to_string(), next.clone()]), 1);
            }
            if next == "help" || next == "-h" || next == "--help" {
                // Help for the topic itself: it lists the commands.
                return (Some(vec![topic.to_string()]), 0);
            }
        }
        if topic == "limits" && looks_like_limits_set(rest) {
            return (Some(vec![topic.to_string(), "set".to_string()]), 0);
        }
        if topic_has_command(topic, "list") {
            return (Some(vec![topic.to_string(), "list".to_string()]), 0);
        }
        // A topic without `list` (auth): clap shows its commands.
        return (Some(vec![topic.to_string()]), 0);
    }
    (None, 0)
}

/// `drycc limits --cpu web=500m` sets limits, as the Drycc docs show.
fn looks_like_limits_set(rest: &[String]) -> bool {
    rest.iter()
        .any(|w| w == "--cpu" || w == "--memory" || (!w.starts_with('-') && w.contains('=')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(line: &str) -> String {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        normalise(&args).join(" ")
    }

    #[test]
    fn splits_topic_and_command() {
        assert_eq!(norm("ps:scale web=2"), "ps scale web=2");
        assert_eq!(
            norm("apps:create foo --no-remote"),
            "apps create foo --no-remote"
        );
        assert_eq!(norm("config:set A=b C=d"), "config set A=b C=d");
        assert_eq!(norm("auth:login http://x"), "auth login http://x");
    }

    #[test]
    fn bare_topic_is_list() {
        assert_eq!(norm("ps"), "ps list");
        assert_eq!(norm("ps -a foo"), "ps list -a foo");
        assert_eq!(norm("apps"), "apps list");
        assert_eq!(norm("autoscale"), "autoscale list");
        assert_eq!(norm("ps:"), "ps list");
        assert_eq!(norm("auth"), "auth");
    }

    #[test]
    fn shortcuts_map_to_long_forms() {
        assert_eq!(norm("scale web=2 -a foo"), "ps scale web=2 -a foo");
        assert_eq!(norm("create foo"), "apps create foo");
        assert_eq!(norm("destroy --confirm=foo"), "apps destroy --confirm=foo");
        assert_eq!(norm("info"), "apps info");
        assert_eq!(norm("login http://c"), "auth login http://c");
        assert_eq!(norm("logout"), "auth logout");
        assert_eq!(norm("register http://c"), "auth register http://c");
        assert_eq!(norm("whoami"), "auth whoami");
        assert_eq!(norm("logs -n 5"), "apps logs -n 5");
        assert_eq!(norm("pull nginx"), "builds create nginx");
        assert_eq!(norm("rollback v2"), "releases rollback v2");
        assert_eq!(norm("run ls"), "apps run ls");
    }

    #[test]
    fn spaced_forms_and_topic_aliases() {
        assert_eq!(norm("ps list"), "ps list");
        assert_eq!(norm("ps scale web=1"), "ps scale web=1");
        assert_eq!(norm("pts scale web=2"), "ps scale web=2");
        assert_eq!(norm("pts:scale web=2"), "ps scale web=2");
        assert_eq!(norm("pts"), "ps list");
        assert_eq!(norm("builds pull img"), "builds pull img");
        assert_eq!(norm("config set A=1"), "config set A=1");
    }

    #[test]
    fn bare_limits_with_values_is_set() {
        assert_eq!(norm("limits --cpu web=500m"), "limits set --cpu web=500m");
        assert_eq!(norm("limits web=1G"), "limits set web=1G");
        assert_eq!(norm("limits -a foo"), "limits list -a foo");
        assert_eq!(norm("limits"), "limits list");
    }

    #[test]
    fn leading_options_are_kept_and_app_moves_after_the_command() {
        assert_eq!(norm("-c /tmp/x.json ps"), "-c /tmp/x.json ps list");
        assert_eq!(norm("-a foo scale web=1"), "ps scale -a foo web=1");
        assert_eq!(norm("--app=foo ps:list"), "ps list --app=foo");
    }

    #[test]
    fn help_forms() {
        assert_eq!(norm("ps --help"), "ps --help");
        assert_eq!(norm("ps:scale --help"), "ps scale --help");
        assert_eq!(norm("help ps:scale"), "help ps scale");
        assert_eq!(norm("help ps"), "help ps");
        assert_eq!(norm("help pts scale"), "help ps scale");
        assert_eq!(norm("help ps:list"), "help ps list");
        assert_eq!(norm("help scale"), "help ps scale");
        assert_eq!(norm("--help"), "--help");
        assert_eq!(norm(""), "");
    }

    #[test]
    fn unknown_words_are_left_to_clap() {
        assert_eq!(norm("frobnicate x"), "frobnicate x");
        assert_eq!(norm("nope:list"), "nope:list");
        assert_eq!(norm("completions bash"), "completions bash");
        assert_eq!(norm("git-credential get"), "git-credential get");
    }

    #[test]
    fn words_after_the_command_are_untouched() {
        assert_eq!(
            norm("ps:exec web-1 -it -- sh -c ps:list"),
            "ps exec web-1 -it -- sh -c ps:list"
        );
    }
}
