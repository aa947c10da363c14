//! The build row of an image deploy (`drycc pull` or a Dockerfile push):
//! what the image's config says it runs, kept with the build so a deploy
//! never needs the registry again.

use std::collections::BTreeMap;

use drycc_images::ImageConfig;
use drycc_store::NewBuild;

use crate::desired::ImageRecord;

/// The build of `reference`, whose config is `image`. Process types come
/// from `procfile`; `web` runs the image's CMD (after its ENTRYPOINT)
/// unless the Procfile names a command for it. Errors: an image with
/// nothing to run and no Procfile.
pub fn new_build(
    reference: &str,
    image: &ImageConfig,
    procfile: Option<BTreeMap<String, String>>,
    sha: String,
    dockerfile: String,
) -> Result<NewBuild, String> {
    let procfile = procfile.filter(|p| !p.is_empty());
    let record = ImageRecord {
        entrypoint: image.entrypoint.clone(),
        cmd: image.cmd.clone(),
        exposed_ports: image.exposed_ports.clone(),
        working_dir: image.working_dir.clone(),
        digest: image.digest.clone(),
        web_is_cmd: procfile.as_ref().is_none_or(|p| !p.contains_key("web")),
        slug: false,
    };
    if record.web_is_cmd && image.cmd.is_empty() && image.entrypoint.is_empty() {
        return Err(format!(
            "image {reference} has no CMD or ENTRYPOINT and no Procfile names a web command: \
             give one, e.g. --procfile=\"web: /bin/server\""
        ));
    }
    let mut procfile = procfile.unwrap_or_default();
    if record.web_is_cmd {
        procfile.insert("web".to_string(), shown_command(image));
    }
    let image_config = serde_json::to_value(&record).map_err(|e| e.to_string())?;
    Ok(NewBuild {
        image: reference.to_string(),
        stack: "container".to_string(),
        sha,
        procfile,
        dockerfile,
        image_config: Some(image_config),
    })
}

/// What `web` runs when the image's CMD is its command, as shown to users.
fn shown_command(image: &ImageConfig) -> String {
    image
        .entrypoint
        .iter()
        .chain(&image.cmd)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            reference: "127.0.0.1:5000/example:1".into(),
            digest: None,
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            exposed_ports: vec![5000],
            working_dir: None,
            env: Vec::new(),
        }
    }

    fn record(build: &NewBuild) -> ImageRecord {
        serde_json::from_value(build.image_config.clone().unwrap()).unwrap()
    }

    #[test]
    fn web_runs_the_cmd_without_a_procfile() {
        let b = new_build(
            "x:1",
            &image(&["/bin/boot"], &["serve"]),
            None,
            "".into(),
            "".into(),
        )
        .unwrap();
        assert_eq!(b.procfile["web"], "/bin/boot serve");
        assert!(record(&b).web_is_cmd);
        assert_eq!(record(&b).entrypoint, ["/bin/boot"]);
    }

    #[test]
    fn a_procfile_web_line_replaces_the_cmd() {
        let procfile = BTreeMap::from([
            ("web".to_string(), "httpd -f".to_string()),
            ("worker".to_string(), "work".to_string()),
        ]);
        let b = new_build(
            "x:1",
            &image(&[], &["serve"]),
            Some(procfile),
            "".into(),
            "".into(),
        )
        .unwrap();
        assert!(!record(&b).web_is_cmd);
        assert_eq!(b.procfile.len(), 2);
    }

    #[test]
    fn a_procfile_without_web_keeps_the_cmd_for_web() {
        let procfile = BTreeMap::from([("worker".to_string(), "work".to_string())]);
        let b = new_build(
            "x:1",
            &image(&[], &["serve"]),
            Some(procfile),
            "".into(),
            "".into(),
        )
        .unwrap();
        assert!(record(&b).web_is_cmd);
        assert_eq!(b.procfile.keys().collect::<Vec<_>>(), ["web", "worker"]);
    }

    #[test]
    fn nothing_to_run_is_refused() {
        let error = new_build("x:1", &image(&[], &[]), None, "".into(), "".into()).unwrap_err();
        assert!(error.contains("no CMD"), "{error}");
        let procfile = BTreeMap::from([("web".to_string(), "httpd".to_string())]);
        assert!(new_build(
            "x:1",
            &image(&[], &[]),
            Some(procfile),
            "".into(),
            "".into()
        )
        .is_ok());
    }
}
