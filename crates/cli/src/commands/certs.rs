//! `certs:add`, `certs:list`, `certs:remove`, `certs:attach`,
//! `certs:detach`: TLS certificates for custom domains.

use super::complete;
use crate::cli::CertsCmd;
use crate::progress::Progress;
use crate::session::Ctx;
use crate::table;
use crate::timefmt::drycc_time;
use anyhow::{bail, Context};
use drycc_api_types::{Cert, CertCreateRequest, DomainRequest};

/// Largest PEM file read (a chain of a few certificates is a few KiB).
const MAX_PEM_BYTES: u64 = 512 * 1024;

fn check_word(what: &str, word: &str) -> anyhow::Result<()> {
    if word.is_empty() || word.contains(['/', '?', '#']) || word.contains(char::is_whitespace) {
        bail!("'{word}' is not a valid {what}");
    }
    Ok(())
}

fn read_pem(path: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
    let mut text = String::new();
    file.take(MAX_PEM_BYTES)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {path} (a PEM file is text)"))?;
    if !text.contains("-----BEGIN ") {
        bail!("{path} is not a PEM file (no -----BEGIN line)");
    }
    Ok(text)
}

pub async fn run(cmd: CertsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        CertsCmd::List => {
            let session = ctx.session()?;
            let certs: Vec<Cert> = session.client.list("/v2/certs/").await?;
            print!("{}", certs_view(&certs));
        }
        CertsCmd::Add {
            name,
            certificate,
            key,
        } => {
            check_word("certificate name", &name)?;
            let request = CertCreateRequest {
                name: name.clone(),
                certificate: read_pem(&certificate)?,
                key: read_pem(&key)?,
            };
            let session = ctx.session()?;
            let progress = Progress::start(&format!("Adding SSL endpoint {name}... "));
            let result = session.client.post_ignore("/v2/certs/", &request).await;
            complete(progress, result, |_| String::new()).await?;
        }
        CertsCmd::Remove { name } => {
            check_word("certificate name", &name)?;
            let session = ctx.session()?;
            let progress = Progress::start(&format!("Removing {name}... "));
            let result = session.client.delete(&format!("/v2/certs/{name}/")).await;
            complete(progress, result, |_| String::new()).await?;
        }
        CertsCmd::Attach { name, domain } => {
            check_word("certificate name", &name)?;
            check_word("domain", &domain)?;
            let session = ctx.session()?;
            let progress = Progress::start(&format!(
                "Attaching certificate {name} to domain {domain}... "
            ));
            let result = session
                .client
                .post_ignore(
                    &format!("/v2/certs/{name}/domain/"),
                    &DomainRequest {
                        domain: domain.clone(),
                    },
                )
                .await;
            complete(progress, result, |_| String::new()).await?;
        }
        CertsCmd::Detach { name, domain } => {
            check_word("certificate name", &name)?;
            check_word("domain", &domain)?;
            let session = ctx.session()?;
            let progress = Progress::start(&format!(
                "Detaching certificate {name} from domain {domain}... "
            ));
            let result = session
                .client
                .delete(&format!("/v2/certs/{name}/domain/{domain}/"))
                .await;
            complete(progress, result, |_| String::new()).await?;
        }
    }
    Ok(0)
}

fn certs_view(certs: &[Cert]) -> String {
    if certs.is_empty() {
        return "No certs\n".to_string();
    }
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            let domains = if c.domains.is_empty() {
                "<none>".to_string()
            } else {
                c.domains.join(",")
            };
            vec![
                c.name.clone(),
                c.owner.clone(),
                domains,
                drycc_time(&c.created),
            ]
        })
        .collect();
    table::render(&["NAME", "OWNER", "DOMAINS", "CREATED"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_table() {
        let cert = |name: &str, domains: &[&str]| Cert {
            uuid: "u".into(),
            name: name.into(),
            owner: "alice".into(),
            certificate: String::new(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            created: "2023-12-08T02:25:00Z".into(),
            updated: "2023-12-08T02:25:00Z".into(),
        };
        assert_eq!(
            certs_view(&[
                cert("www", &["www.example.com", "example.com"]),
                cert("spare", &[])
            ]),
            "NAME     OWNER    DOMAINS                        CREATED\n\
             www      alice    www.example.com,example.com    2023-12-08T02:25:00UTC\n\
             spare    alice    <none>                         2023-12-08T02:25:00UTC\n"
        );
        assert_eq!(certs_view(&[]), "No certs\n");
    }

    #[test]
    fn pem_files_are_checked_before_any_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = dir.path().join("cert.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").expect("write");
        assert!(read_pem(pem.to_str().expect("utf-8")).is_ok());
        assert!(read_pem(text.to_str().expect("utf-8")).is_err());
        assert!(read_pem("/no/such/file.pem").is_err());
        assert!(check_word("domain", "a/b").is_err());
    }
}
