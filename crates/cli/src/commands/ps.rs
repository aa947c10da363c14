//! `ps:list`, `ps:scale`, `ps:restart`, `ps:exec`, `ps:describe`, `ps:logs`.

use super::complete_timed;
use crate::cli::PsCmd;
use crate::client::ApiError;
use crate::exec::{self, ExecOptions};
use crate::progress::{drink_of_choice, Progress};
use crate::session::{Ctx, Session};
use crate::table;
use crate::timefmt::drycc_time;
use crate::validate;
use drycc_api_types::{Pod, PodDescription, PodList};
use serde_json::Value;

pub async fn run(cmd: PsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        PsCmd::List { app, usage: false } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            print!("{}", pods_view(&app, fetch_pods(&session, &app).await?));
        }
        PsCmd::List { app, usage: true } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let list: PodList = session
                .client
                .get(&format!("/v2/apps/{app}/pods/?usage=true"))
                .await?;
            print!("{}", usage_view(&app, list.results));
        }
        PsCmd::Scale { app, targets } => {
            let targets = validate::parse_scale(&targets)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            println!("Scaling processes... but first, {}!", drink_of_choice());
            let progress = Progress::start("");
            let result = session
                .client
                .post_ignore(&format!("/v2/apps/{app}/scale/"), &targets)
                .await;
            complete_timed(progress, result).await?;
            println!();
            print!("{}", pods_view(&app, fetch_pods(&session, &app).await?));
        }
        PsCmd::Restart { app, target } => {
            let target = target
                .as_deref()
                .map(validate::parse_process_ref)
                .transpose()?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            // A process name restarts that process, anything else a type.
            let (path, as_type) = match &target {
                None => (format!("/v2/apps/{app}/pods/restart/"), None),
                Some(target) => {
                    let pods = fetch_pods(&session, &app).await?;
                    match pods.iter().find(|p| &p.name == target) {
                        Some(pod) => (
                            format!("/v2/apps/{app}/pods/{}/{}/restart/", pod.ptype, pod.name),
                            None,
                        ),
                        None => (
                            format!("/v2/apps/{app}/pods/{target}/restart/"),
                            Some(target.as_str()),
                        ),
                    }
                }
            };
            println!("Restarting processes... but first, {}!", drink_of_choice());
            let progress = Progress::start("");
            let result = session
                .client
                .post_ignore(&path, &serde_json::json!({}))
                .await
                .map_err(|e| match as_type {
                    Some(target) => neither_type_nor_process(e, target, &app),
                    None => anyhow::Error::from(e),
                });
            complete_timed(progress, result).await?;
            println!();
            print!("{}", pods_view(&app, fetch_pods(&session, &app).await?));
        }
        PsCmd::Exec {
            app,
            stdin,
            tty,
            process,
            command,
        } => {
            let process = validate::parse_process_ref(&process)?;
            let command: Vec<String> = match command.first().map(String::as_str) {
                Some("--") => command[1..].to_vec(),
                _ => command,
            };
            if command.is_empty() {
                anyhow::bail!("no command given: drycc ps:exec <process-name> -- <command>...");
            }
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let opts = ExecOptions {
                app,
                process,
                command,
                stdin,
                tty,
            };
            return exec::run(&session, opts).await;
        }
        PsCmd::Describe { app, process } => {
            let process = validate::parse_process_ref(&process)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let description: PodDescription = session
                .client
                .get(&format!("/v2/apps/{app}/pods/{process}/describe/"))
                .await?;
            print!("{}", describe_view(&description));
        }
        PsCmd::Logs { app, process, logs } => {
            let process = validate::parse_process_ref(&process)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            crate::logs::show(&session, &app, Some(&process), &logs).await?;
        }
    }
    Ok(0)
}

/// `ps:restart <arg>` tried `arg` as a process name, then as a type: an
/// unknown type means it is neither.
fn neither_type_nor_process(error: ApiError, target: &str, app: &str) -> anyhow::Error {
    match &error {
        ApiError::Status {
            status: 404,
            message,
        } if message.starts_with("Container type ") => anyhow::anyhow!(
            "{app} has neither a process type nor a process named {target} (`drycc ps` lists them)"
        ),
        _ => error.into(),
    }
}

pub async fn fetch_pods(session: &Session, app: &str) -> anyhow::Result<Vec<Pod>> {
    let list: PodList = session.client.get(&format!("/v2/apps/{app}/pods/")).await?;
    Ok(list.results)
}

/// The `ps:list` table (sorted by type, then name), or the empty message.
pub fn pods_view(app: &str, mut pods: Vec<Pod>) -> String {
    if pods.is_empty() {
        return format!("No processes found in {app} app.\n");
    }
    pods.sort_by(|a, b| (&a.ptype, &a.name).cmp(&(&b.ptype, &b.name)));
    let rows: Vec<Vec<String>> = pods
        .into_iter()
        .map(|p| vec![p.name, p.release, p.state, p.ptype, drycc_time(&p.started)])
        .collect();
    table::render(&["NAME", "RELEASE", "STATE", "TYPE", "STARTED"], &rows)
}

/// `ps:list --usage`: the table with each process's CPU and memory.
pub fn usage_view(app: &str, mut pods: Vec<Pod>) -> String {
    if pods.is_empty() {
        return format!("No processes found in {app} app.\n");
    }
    pods.sort_by(|a, b| (&a.ptype, &a.name).cmp(&(&b.ptype, &b.name)));
    let rows: Vec<Vec<String>> = pods
        .into_iter()
        .map(|p| {
            let cpu = p.cpu_millis.map_or("-".to_string(), |c| format!("{c}m"));
            let memory = p.memory_bytes.map_or("-".to_string(), |m| {
                format!("{:.1}Mi", m as f64 / (1024.0 * 1024.0))
            });
            vec![p.name, p.ptype, p.state, cpu, memory]
        })
        .collect();
    table::render(&["NAME", "TYPE", "STATE", "CPU", "MEMORY"], &rows)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ps:describe`: one block of fields per container.
pub fn describe_view(description: &PodDescription) -> String {
    let mut out = String::new();
    for (i, c) in description.results.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // Only what applies: native processes have no image, and a process
        // that never started has no command yet.
        let mut fields: Vec<(&str, String)> = vec![("Container", c.container.clone())];
        for (label, value) in [
            ("Image", c.image.clone()),
            ("Command", c.command.join(" ")),
            ("Args", c.args.join(" ")),
        ] {
            if !value.is_empty() {
                fields.push((label, value));
            }
        }
        if !c.release.is_empty() {
            fields.push(("Release", c.release.clone()));
        }
        let state = c.state.keys().next().cloned().unwrap_or_default();
        fields.push(("State", state));
        fields.push(("Ready", c.ready.to_string()));
        fields.push(("Restart Count", c.restart_count.to_string()));
        if let Some(pid) = c.pid {
            fields.push(("PID", pid.to_string()));
        }
        if let Some(port) = c.port {
            fields.push(("Port", port.to_string()));
        }
        if let Some(size) = c.slug_size {
            fields.push((
                "Slug Size",
                format!("{:.1}Mi", size as f64 / (1024.0 * 1024.0)),
            ));
        }
        if let Some(cpu) = c.cpu_millis {
            fields.push(("CPU", format!("{cpu}m")));
        }
        if let Some(memory) = c.memory_bytes {
            fields.push((
                "Memory",
                format!("{:.1}Mi", memory as f64 / (1024.0 * 1024.0)),
            ));
        }
        out.push_str(&table::render_fields(&fields));
        // The details of the state, e.g. `startedAt`, indented below it.
        for detail in c.state.values() {
            if let Value::Object(map) = detail {
                for (k, v) in map.iter().filter(|(_, v)| !v.is_null()) {
                    out.push_str(&format!("  {k}: {}\n", value_text(v)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use drycc_api_types::ContainerDescription;

    fn pod(name: &str, ptype: &str) -> Pod {
        Pod {
            name: name.into(),
            release: "v3".into(),
            ptype: ptype.into(),
            state: "up".into(),
            started: "2023-12-08T02:25:00Z".into(),
            ready: "1/1".into(),
            restarts: 0,
            cpu_millis: None,
            memory_bytes: None,
        }
    }

    #[test]
    fn usage_shows_cpu_and_memory_or_a_dash() {
        let mut busy = pod("app-web-c4f44c4b4-7p7dh", "web");
        busy.cpu_millis = Some(95);
        busy.memory_bytes = Some(12 * 1024 * 1024);
        let quiet = pod("app-web-c4f44c4b4-8q8ff", "web");
        assert_eq!(
            usage_view("app", vec![quiet, busy]),
            "NAME                       TYPE    STATE    CPU    MEMORY\n\
             app-web-c4f44c4b4-7p7dh    web     up       95m    12.0Mi\n\
             app-web-c4f44c4b4-8q8ff    web     up       -      -\n"
        );
    }

    #[test]
    fn pods_are_sorted_by_type_then_name() {
        let out = pods_view(
            "steely-mainsail",
            vec![
                pod("steely-mainsail-web-c4f44c4b4-7p7dh", "web"),
                pod("steely-mainsail-sleeper-76c45b967c-4qm6w", "sleeper"),
            ],
        );
        assert_eq!(
            out,
            "NAME                                        RELEASE    STATE    TYPE       STARTED\n\
             steely-mainsail-sleeper-76c45b967c-4qm6w    v3         up       sleeper    2023-12-08T02:25:00UTC\n\
             steely-mainsail-web-c4f44c4b4-7p7dh         v3         up       web        2023-12-08T02:25:00UTC\n"
        );
    }

    #[test]
    fn no_pods_message() {
        assert_eq!(pods_view("foo", vec![]), "No processes found in foo app.\n");
    }

    #[test]
    fn describe_lists_fields() {
        let mut state = std::collections::BTreeMap::new();
        state.insert(
            "running".to_string(),
            serde_json::json!({"startedAt": "2023-12-08T02:25:00Z"}),
        );
        let d = PodDescription {
            count: 1,
            results: vec![ContainerDescription {
                container: "web".into(),
                image: "nginx".into(),
                command: vec!["sh".into(), "-c".into()],
                args: vec!["run".into()],
                state,
                ready: true,
                restart_count: 2,
                pid: Some(42),
                port: None,
                release: String::new(),
                cpu_millis: Some(120),
                memory_bytes: Some(3 * 1024 * 1024),
                slug_size: Some(5 * 1024 * 1024 / 2),
            }],
        };
        let out = describe_view(&d);
        assert!(out.contains("Container:        web\n"), "{out}");
        assert!(out.contains("State:            running\n"), "{out}");
        assert!(out.contains("Restart Count:    2\n"), "{out}");
        assert!(out.contains("CPU:              120m\n"), "{out}");
        assert!(out.contains("Memory:           3.0Mi\n"), "{out}");
        assert!(out.contains("Slug Size:        2.5Mi\n"), "{out}");
        assert!(out.contains("  startedAt: 2023-12-08T02:25:00Z\n"), "{out}");
    }

    #[test]
    fn describe_leaves_out_what_does_not_apply() {
        let mut state = std::collections::BTreeMap::new();
        state.insert(
            "up".to_string(),
            serde_json::json!({"startedAt": "2023-12-08T02:25:00Z", "lastExit": null}),
        );
        // An older controller's answer: empty image, null lastExit.
        let c: ContainerDescription = serde_json::from_value(serde_json::json!({
            "container": "web", "image": "", "command": ["/usr/bin/sleep"], "args": ["600"],
            "state": state, "ready": true, "restartCount": 0
        }))
        .unwrap();
        let out = describe_view(&PodDescription {
            count: 1,
            results: vec![c],
        });
        assert!(!out.contains("Image"), "{out}");
        assert!(!out.contains("lastExit"), "{out}");
        assert!(out.contains("Command:          /usr/bin/sleep\n"), "{out}");
        assert!(out.contains("Args:             600\n"), "{out}");
        // Without a command yet: neither line.
        let bare: ContainerDescription = serde_json::from_value(serde_json::json!({
            "container": "web", "state": {}, "ready": false, "restartCount": 0
        }))
        .unwrap();
        let out = describe_view(&PodDescription {
            count: 1,
            results: vec![bare],
        });
        assert!(!out.contains("Command") && !out.contains("Args"), "{out}");
    }
}
