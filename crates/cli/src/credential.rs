//! git's credential-helper protocol for `drycc git-credential get|store|erase`:
//! `key=value` lines on stdin, ended by a blank line or EOF; for `get`, the
//! answer is `username=` and `password=` lines on stdout. The token is read
//! from the client configuration at push time and never stored elsewhere:
//! `store` and `erase` do nothing.

use crate::config::ClientConfig;
use reqwest::Url;

/// The attributes git sends that we look at.
#[derive(Debug, Default, PartialEq)]
pub struct CredentialRequest {
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub username: Option<String>,
}

pub fn parse_request(input: &str) -> CredentialRequest {
    let mut req = CredentialRequest::default();
    for line in input.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = Some(value.to_string());
        match key {
            "protocol" => req.protocol = value,
            "host" => req.host = value,
            "username" => req.username = value,
            _ => {}
        }
    }
    req
}

/// `host[:port]` of a URL as git writes it (the port only when explicit).
fn git_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// Does the request ask for credentials of `config`'s controller?
pub fn matches(req: &CredentialRequest, config: &ClientConfig) -> bool {
    let Ok(url) = Url::parse(&config.controller) else {
        return false;
    };
    let protocol_ok = req
        .protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(url.scheme()));
    let host_ok = match (req.host.as_deref(), git_host(&url)) {
        (Some(asked), Some(ours)) => asked.eq_ignore_ascii_case(&ours),
        _ => false,
    };
    let user_ok = req
        .username
        .as_deref()
        .map_or(true, |u| u.is_empty() || u == config.username);
    protocol_ok && host_ok && user_ok
}

/// What to print on stdout for `operation`; empty means "no answer".
pub fn answer(operation: &str, req: &CredentialRequest, config: Option<&ClientConfig>) -> String {
    match (operation, config) {
        ("get", Some(config)) if matches(req, config) => {
            format!("username={}\npassword={}\n", config.username, config.token)
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig {
            username: "alice".into(),
            controller: "http://127.0.0.1:8000".into(),
            token: "tok".into(),
            ssl_verify: true,
            response_limit: 0,
        }
    }

    #[test]
    fn get_answers_for_the_controller() {
        let req = parse_request("protocol=http\nhost=127.0.0.1:8000\npath=git/foo.git\n\n");
        assert_eq!(
            answer("get", &req, Some(&config())),
            "username=alice\npassword=tok\n"
        );
        let req = parse_request("protocol=http\nhost=127.0.0.1:8000\nusername=alice\n");
        assert_eq!(
            answer("get", &req, Some(&config())),
            "username=alice\npassword=tok\n"
        );
    }

    #[test]
    fn get_ignores_other_hosts_users_and_protocols() {
        for input in [
            "protocol=http\nhost=127.0.0.1:9000\n",
            "protocol=https\nhost=127.0.0.1:8000\n",
            "protocol=http\nhost=127.0.0.1:8000\nusername=bob\n",
            "host=127.0.0.1:8000\n",
            "",
        ] {
            let req = parse_request(input);
            assert_eq!(answer("get", &req, Some(&config())), "", "{input}");
        }
        let req = parse_request("protocol=http\nhost=127.0.0.1:8000\n");
        assert_eq!(answer("get", &req, None), "");
    }

    #[test]
    fn store_and_erase_do_nothing() {
        let req =
            parse_request("protocol=http\nhost=127.0.0.1:8000\nusername=alice\npassword=tok\n");
        assert_eq!(answer("store", &req, Some(&config())), "");
        assert_eq!(answer("erase", &req, Some(&config())), "");
        assert_eq!(answer("frobnicate", &req, Some(&config())), "");
    }

    #[test]
    fn default_ports_are_not_written() {
        let mut c = config();
        c.controller = "http://drycc.example.com".into();
        let req = parse_request("protocol=http\nhost=drycc.example.com\n");
        assert!(matches(&req, &c));
        let req = parse_request("protocol=http\nhost=DRYCC.example.com\r\n");
        assert!(matches(&req, &c));
    }

    #[test]
    fn parsing_stops_at_the_blank_line() {
        let req = parse_request("protocol=http\n\nhost=x\n");
        assert_eq!(req.protocol.as_deref(), Some("http"));
        assert_eq!(req.host, None);
    }
}
