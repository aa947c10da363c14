//! `releases:list`, `releases:info`, `releases:rollback`.

use super::complete;
use crate::cli::ReleasesCmd;
use crate::progress::Progress;
use crate::session::Ctx;
use crate::table;
use crate::timefmt::drycc_time;
use crate::validate;
use drycc_api_types::{Release, RollbackRequest, RollbackResponse};

pub async fn run(cmd: ReleasesCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        ReleasesCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let releases: Vec<Release> = session
                .client
                .list(&format!("/v2/apps/{app}/releases/"))
                .await?;
            print!("{}", releases_view(&app, releases));
        }
        ReleasesCmd::Info { app, version } => {
            let version = validate::parse_version(&version)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let release: Release = session
                .client
                .get(&format!("/v2/apps/{app}/releases/v{version}/"))
                .await?;
            print!("{}", info_view(&release));
        }
        ReleasesCmd::Rollback { app, version } => {
            let version = version
                .as_deref()
                .map(validate::parse_version)
                .transpose()?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let message = match version {
                Some(v) => format!("Rolling back to v{v}... "),
                None => "Rolling back one release... ".to_string(),
            };
            let progress = Progress::start(&message);
            let request = RollbackRequest {
                version: version.map(serde_json::Value::from),
            };
            let result = session
                .client
                .post::<_, RollbackResponse>(
                    &format!("/v2/apps/{app}/releases/rollback/"),
                    &request,
                )
                .await;
            complete(progress, result, |r| format!(", v{}", r.version)).await?;
        }
    }
    Ok(0)
}

fn releases_view(app: &str, mut releases: Vec<Release>) -> String {
    if releases.is_empty() {
        return format!("No releases found in {app} app.\n");
    }
    releases.sort_by_key(|r| std::cmp::Reverse(r.version));
    let rows: Vec<Vec<String>> = releases
        .into_iter()
        .map(|r| {
            let summary = if r.failed {
                format!("{} (failed)", r.summary)
            } else {
                r.summary
            };
            vec![format!("v{}", r.version), drycc_time(&r.created), summary]
        })
        .collect();
    table::render(&["VERSION", "CREATED", "SUMMARY"], &rows)
}

fn info_view(r: &Release) -> String {
    let mut out = format!("=== {} Release v{}\n", r.app, r.version);
    let mut fields = vec![
        ("uuid", r.uuid.clone()),
        ("version", format!("v{}", r.version)),
        ("owner", r.owner.clone()),
        ("summary", r.summary.clone()),
        ("build", r.build.clone().unwrap_or_default()),
        ("config", r.config.clone()),
        ("failed", r.failed.to_string()),
    ];
    if !r.exception.is_empty() {
        fields.push(("exception", r.exception.clone()));
    }
    fields.push(("created", drycc_time(&r.created)));
    fields.push(("updated", drycc_time(&r.updated)));
    out.push_str(&table::render_fields(&fields));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: u32, summary: &str, failed: bool) -> Release {
        Release {
            uuid: format!("u{version}"),
            app: "foo".into(),
            owner: "alice".into(),
            version,
            summary: summary.into(),
            build: None,
            config: "c".into(),
            failed,
            exception: String::new(),
            created: "2023-12-08T02:25:00Z".into(),
            updated: "2023-12-08T02:25:00Z".into(),
        }
    }

    #[test]
    fn newest_first() {
        assert_eq!(
            releases_view(
                "foo",
                vec![
                    release(1, "alice created initial release", false),
                    release(2, "alice deployed nginx", true),
                ]
            ),
            "VERSION    CREATED                   SUMMARY\n\
             v2         2023-12-08T02:25:00UTC    alice deployed nginx (failed)\n\
             v1         2023-12-08T02:25:00UTC    alice created initial release\n"
        );
    }

    #[test]
    fn info() {
        let out = info_view(&release(3, "alice added FOO", false));
        assert!(out.starts_with("=== foo Release v3\n"), "{out}");
        assert!(out.contains("summary:    alice added FOO\n"), "{out}");
    }
}
