//! `drycc-controller git-hook`: git's pre-receive hook. It runs inside
//! `git receive-pack`, where the pushed objects are visible (quarantined),
//! extracts the pushed commit of `main`/`master` and asks the controller to
//! build and release it, relaying the controller's progress to git's stderr
//! (shown as `remote: ...`). A non-zero exit rejects the push.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::StreamExt;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use super::{
    ENV_APP, ENV_CHECKOUTS_DIR, ENV_HOOK_SECRET, ENV_HOOK_URL, ENV_USER, RESULT_OK, SECRET_HEADER,
};

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .map_err(|_| anyhow::anyhow!("{name} is not set: this hook runs only under the controller"))
}

pub async fn run() -> anyhow::Result<i32> {
    let url = env(ENV_HOOK_URL)?;
    let secret = env(ENV_HOOK_SECRET)?;
    let app = env(ENV_APP)?;
    let user = env(ENV_USER)?;
    let checkouts = PathBuf::from(env(ENV_CHECKOUTS_DIR)?);

    let mut deploy = None;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        let (Some(_old), Some(new), Some(reference)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let deployable = reference == "refs/heads/main" || reference == "refs/heads/master";
        if deployable && new != ZERO_SHA {
            deploy = Some(new.to_string());
        } else if !deployable {
            eprintln!(
                "-----> Pushed to {reference}: only main or master deploy; skipping the build."
            );
        }
    }
    let Some(sha) = deploy else {
        return Ok(0);
    };
    eprintln!("-----> Receiving {} for {app}", &sha[..sha.len().min(7)]);
    let target = checkouts.join(&app).join(&sha);
    if let Err(error) = extract(&sha, &target).await {
        eprintln!("-----> Failed to check out {sha}: {error}");
        return Ok(1);
    }
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{url}/internal/git/build"))
        .header(SECRET_HEADER, secret)
        .json(&serde_json::json!({"app": app, "user": user, "sha": sha}))
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            eprintln!("-----> The controller could not be reached: {error}");
            return Ok(1);
        }
    };
    let mut ok = false;
    let mut pending = Vec::new();
    let mut stream = response.bytes_stream();
    let mut stderr = std::io::stderr();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            // The controller's verdict is the last line; build output that
            // looks like one is escaped by the controller, and a verdict
            // is only taken as final when nothing else follows it.
            if text.starts_with("DRYCC-RESULT") {
                ok = text == RESULT_OK;
            } else {
                ok = false;
                let _ = writeln!(stderr, "{text}");
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// `git archive <sha> | tar -x` into `target` (via a temporary sibling, so
/// a half-written checkout is never used).
async fn extract(sha: &str, target: &Path) -> anyhow::Result<()> {
    if target.exists() {
        return Ok(());
    }
    let parent = target
        .parent()
        .ok_or_else(|| anyhow::anyhow!("bad checkout path"))?;
    tokio::fs::create_dir_all(parent).await?;
    let temp = parent.join(format!(".{sha}.{}", std::process::id()));
    tokio::fs::create_dir_all(&temp).await?;
    let mut archive = Command::new("git")
        .args(["archive", "--format=tar", sha])
        .stdout(Stdio::piped())
        .spawn()?;
    let archive_out: Stdio = archive
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("git archive has no stdout"))?
        .try_into()?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&temp)
        .stdin(archive_out)
        .status()
        .await?;
    let archived = archive.wait().await?;
    if !archived.success() || !tar.success() {
        let _ = tokio::fs::remove_dir_all(&temp).await;
        anyhow::bail!("git archive or tar failed");
    }
    if let Err(error) = tokio::fs::rename(&temp, target).await {
        let _ = tokio::fs::remove_dir_all(&temp).await;
        if !target.exists() {
            return Err(error.into());
        }
    }
    Ok(())
}
