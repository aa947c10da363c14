//! `domains:add`, `domains:list`, `domains:remove`: custom domains the
//! router answers for, besides `<app>.<platform domain>`.

use super::complete;
use crate::cli::DomainsCmd;
use crate::progress::Progress;
use crate::session::Ctx;
use crate::table;
use crate::timefmt::drycc_time;
use anyhow::bail;
use drycc_api_types::{Domain, DomainRequest};

/// A first check before the controller's own (which says what is allowed):
/// a domain is one word and never a path.
fn check_domain(domain: &str) -> anyhow::Result<()> {
    if domain.is_empty() || domain.contains(['/', '?', '#']) || domain.contains(char::is_whitespace)
    {
        bail!("'{domain}' is not a domain name, e.g. www.example.com");
    }
    Ok(())
}

pub async fn run(cmd: DomainsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        DomainsCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let domains: Vec<Domain> = session
                .client
                .list(&format!("/v2/apps/{app}/domains/"))
                .await?;
            print!("{}", domains_view(&app, &domains));
        }
        DomainsCmd::Add { app, domain } => {
            check_domain(&domain)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let progress = Progress::start(&format!("Adding {domain} to {app}... "));
            let result = session
                .client
                .post_ignore(
                    &format!("/v2/apps/{app}/domains/"),
                    &DomainRequest {
                        domain: domain.clone(),
                    },
                )
                .await;
            complete(progress, result, |_| String::new()).await?;
        }
        DomainsCmd::Remove { app, domain } => {
            check_domain(&domain)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let progress = Progress::start(&format!("Removing {domain} from {app}... "));
            let result = session
                .client
                .delete(&format!("/v2/apps/{app}/domains/{domain}/"))
                .await;
            complete(progress, result, |_| String::new()).await?;
        }
    }
    Ok(0)
}

fn domains_view(app: &str, domains: &[Domain]) -> String {
    if domains.is_empty() {
        return format!("No domains added to {app}: it answers on its platform host only.\n");
    }
    let rows: Vec<Vec<String>> = domains
        .iter()
        .map(|d| vec![d.domain.clone(), d.owner.clone(), drycc_time(&d.created)])
        .collect();
    table::render(&["DOMAIN", "OWNER", "CREATED"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str, owner: &str) -> Domain {
        Domain {
            uuid: "u".into(),
            app: "foo".into(),
            owner: owner.into(),
            domain: name.into(),
            created: "2023-12-08T02:25:00Z".into(),
            updated: "2023-12-08T02:25:00Z".into(),
        }
    }

    #[test]
    fn domains_table() {
        assert_eq!(
            domains_view(
                "foo",
                &[
                    domain("api.example.com", "alice"),
                    domain("www.example.com", "bob")
                ]
            ),
            "DOMAIN             OWNER    CREATED\n\
             api.example.com    alice    2023-12-08T02:25:00UTC\n\
             www.example.com    bob      2023-12-08T02:25:00UTC\n"
        );
        assert_eq!(
            domains_view("foo", &[]),
            "No domains added to foo: it answers on its platform host only.\n"
        );
    }

    #[test]
    fn domains_that_would_change_the_path_are_refused_here() {
        assert!(check_domain("www.example.com").is_ok());
        for bad in ["", "a/b", "a?b", "a#b", "a b"] {
            assert!(check_domain(bad).is_err(), "{bad:?}");
        }
    }
}
