//! `limits:list`, `limits:set`, `limits:unset` (config `cpu` / `memory`).

use super::{get_config, post_config, set_map, unset_map};
use crate::cli::{LimitKindOpt, LimitsCmd};
use crate::session::Ctx;
use crate::table;
use crate::validate::{self, LimitKind};
use drycc_api_types::{Config, ConfigUpdate};
use std::collections::BTreeSet;

fn kind(opt: LimitKindOpt) -> LimitKind {
    if opt.cpu {
        LimitKind::Cpu
    } else {
        LimitKind::Memory
    }
}

fn update(
    kind: LimitKind,
    map: std::collections::BTreeMap<String, Option<serde_json::Value>>,
) -> ConfigUpdate {
    match kind {
        LimitKind::Cpu => ConfigUpdate {
            cpu: Some(map),
            ..Default::default()
        },
        LimitKind::Memory => ConfigUpdate {
            memory: Some(map),
            ..Default::default()
        },
    }
}

pub async fn run(cmd: LimitsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        LimitsCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let config = get_config(&session, &app).await?;
            print!("{}", limits_view(&app, &config));
        }
        LimitsCmd::Set {
            app,
            kind: k,
            limits,
        } => {
            let kind = kind(k);
            let limits = validate::parse_limits(kind, &limits)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let config = post_config(
                &session,
                &app,
                "Applying limits",
                &update(kind, set_map(limits)),
            )
            .await?;
            print!("{}", limits_view(&app, &config));
        }
        LimitsCmd::Unset {
            app,
            kind: k,
            types,
        } => {
            let kind = kind(k);
            let types = validate::parse_types(&types)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let config = post_config(
                &session,
                &app,
                "Applying limits",
                &update(kind, unset_map(types)),
            )
            .await?;
            print!("{}", limits_view(&app, &config));
        }
    }
    Ok(0)
}

fn limits_view(app: &str, config: &Config) -> String {
    let types: BTreeSet<&String> = config.cpu.keys().chain(config.memory.keys()).collect();
    if types.is_empty() {
        return format!("No limits set in {app} app: every process type is unlimited.\n");
    }
    let cell = |m: &std::collections::BTreeMap<String, String>, t: &String| {
        m.get(t).cloned().unwrap_or_else(|| "unlimited".to_string())
    };
    let Some(enforced) = config.limits_enforced else {
        let rows: Vec<Vec<String>> = types
            .into_iter()
            .map(|t| vec![t.clone(), cell(&config.cpu, t), cell(&config.memory, t)])
            .collect();
        return table::render(&["TYPE", "CPU", "MEMORY"], &rows);
    };
    let rows: Vec<Vec<String>> = types
        .into_iter()
        .map(|t| {
            vec![
                t.clone(),
                cell(&config.cpu, t),
                cell(&config.memory, t),
                if enforced { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let mut text = table::render(&["TYPE", "CPU", "MEMORY", "ENFORCED"], &rows);
    if !enforced {
        text.push_str(&format!(
            "Limits are recorded and used for autoscaling, but not enforced: {}\n",
            config
                .limits_note
                .as_deref()
                .unwrap_or("the engine cannot enforce them")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_table() {
        let mut c = super::super::config::sample_config();
        assert_eq!(
            limits_view("foo", &c),
            "No limits set in foo app: every process type is unlimited.\n"
        );
        c.cpu.insert("web".into(), "500m".into());
        c.memory.insert("worker".into(), "1G".into());
        assert_eq!(
            limits_view("foo", &c),
            "TYPE      CPU          MEMORY\n\
             web       500m         unlimited\n\
             worker    unlimited    1G\n"
        );
        c.limits_enforced = Some(false);
        c.limits_note = Some("no cgroup hierarchy can be written".into());
        assert_eq!(
            limits_view("foo", &c),
            "TYPE      CPU          MEMORY       ENFORCED\n\
             web       500m         unlimited    no\n\
             worker    unlimited    1G           no\n\
             Limits are recorded and used for autoscaling, but not enforced: no cgroup hierarchy can be written\n"
        );
    }
}
