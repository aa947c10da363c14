//! `builds:create` (`pull`) and `builds:list`.

use super::complete;
use crate::cli::BuildsCmd;
use crate::progress::Progress;
use crate::session::{Ctx, Session};
use crate::table;
use crate::timefmt::drycc_time;
use crate::validate;
use drycc_api_types::{Build, BuildCreateRequest, Release};

pub async fn run(cmd: BuildsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        BuildsCmd::Create {
            app,
            image,
            procfile,
            stack,
        } => {
            if image.trim().is_empty() {
                anyhow::bail!("the image is empty, ex: drycc pull nginx:1.25");
            }
            let procfile = match procfile {
                Some(text) => Some(validate::parse_procfile(&text)?),
                None => match std::fs::read_to_string("Procfile") {
                    Ok(text) => Some(
                        validate::parse_procfile(&text)
                            .map_err(|e| anyhow::anyhow!("./Procfile: {e}"))?,
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(anyhow::anyhow!("cannot read ./Procfile: {e}")),
                },
            };
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let request = BuildCreateRequest {
                image,
                stack,
                procfile,
                sha: None,
                dockerfile: None,
            };
            let progress = Progress::start("Creating build... ");
            let result = create(&session, &app, &request).await;
            complete(progress, result, |v| format!(", v{v}")).await?;
        }
        BuildsCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let builds: Vec<Build> = session
                .client
                .list(&format!("/v2/apps/{app}/builds/"))
                .await?;
            print!("{}", builds_view(&app, builds));
        }
    }
    Ok(0)
}

/// Creates the build and returns the version of the release it made.
async fn create(session: &Session, app: &str, request: &BuildCreateRequest) -> anyhow::Result<u32> {
    let _build: Build = session
        .client
        .post(&format!("/v2/apps/{app}/builds/"), request)
        .await?;
    let releases: Vec<Release> = session
        .client
        .list(&format!("/v2/apps/{app}/releases/"))
        .await?;
    releases
        .iter()
        .map(|r| r.version)
        .max()
        .ok_or_else(|| anyhow::anyhow!("the controller lists no release for {app}"))
}

/// `dockerfile`, `buildpack` (source) or `image`, as the process model says.
fn build_type(b: &Build) -> &'static str {
    if !b.dockerfile.is_empty() {
        "dockerfile"
    } else if !b.sha.is_empty() {
        "buildpack"
    } else {
        "image"
    }
}

/// The buildpacks that built a source build (its `stack`); builds made
/// before buildpacks ran say `native`, which names none.
fn buildpacks(b: &Build) -> String {
    if build_type(b) == "buildpack" && b.stack != "native" {
        b.stack.clone()
    } else {
        String::new()
    }
}

fn builds_view(app: &str, mut builds: Vec<Build>) -> String {
    if builds.is_empty() {
        return format!("No builds found in {app} app.\n");
    }
    builds.sort_by(|a, b| b.created.cmp(&a.created));
    let rows: Vec<Vec<String>> = builds
        .iter()
        .map(|b| {
            let source = if b.sha.is_empty() {
                b.image.clone()
            } else {
                b.sha.chars().take(7).collect()
            };
            vec![
                b.uuid.clone(),
                b.owner.clone(),
                build_type(b).to_string(),
                source,
                buildpacks(b),
                drycc_time(&b.created),
            ]
        })
        .collect();
    table::render(
        &["UUID", "OWNER", "TYPE", "SOURCE", "BUILDPACKS", "CREATED"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_table() {
        let b = Build {
            uuid: "b1".into(),
            app: "foo".into(),
            owner: "alice".into(),
            image: "nginx:1.25".into(),
            stack: "container".into(),
            sha: String::new(),
            procfile: Default::default(),
            dockerfile: String::new(),
            created: "2023-12-08T02:25:00Z".into(),
            updated: "2023-12-08T02:25:00Z".into(),
        };
        let mut src = b.clone();
        src.uuid = "b2".into();
        src.sha = "0123456789abcdef".into();
        src.created = "2023-12-09T02:25:00Z".into();
        src.stack = "python".into();
        assert_eq!(
            builds_view("foo", vec![b, src]),
            "UUID    OWNER    TYPE         SOURCE        BUILDPACKS    CREATED\n\
             b2      alice    buildpack    0123456       python        2023-12-09T02:25:00UTC\n\
             b1      alice    image        nginx:1.25                  2023-12-08T02:25:00UTC\n"
        );
        assert_eq!(builds_view("foo", vec![]), "No builds found in foo app.\n");
    }
}
