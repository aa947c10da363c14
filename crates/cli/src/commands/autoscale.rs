//! `autoscale:list`, `autoscale:set`, `autoscale:unset` (the app's
//! settings; no release is created).

use super::complete;
use crate::cli::AutoscaleCmd;
use crate::progress::Progress;
use crate::session::Ctx;
use crate::table;
use crate::validate;
use drycc_api_types::{Settings, SettingsUpdate};
use std::collections::BTreeMap;

pub async fn run(cmd: AutoscaleCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        AutoscaleCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let settings: Settings = session
                .client
                .get(&format!("/v2/apps/{app}/settings/"))
                .await?;
            print!("{}", autoscale_view(&settings));
        }
        AutoscaleCmd::Set {
            app,
            ptype,
            min,
            max,
            cpu_percent,
        } => {
            let rule = validate::autoscale_rule(&ptype, min, max, cpu_percent)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let mut map = BTreeMap::new();
            map.insert(ptype.clone(), Some(serde_json::to_value(rule)?));
            let progress = Progress::start(&format!(
                "Applying autoscale settings for process type {ptype} on {app}... "
            ));
            let result = post_settings(&session, &app, map).await;
            complete(progress, result, |_| String::new()).await?;
        }
        AutoscaleCmd::Unset { app, ptype } => {
            validate::parse_types(std::slice::from_ref(&ptype))?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let mut map = BTreeMap::new();
            map.insert(ptype.clone(), None);
            let progress = Progress::start(&format!(
                "Removing autoscale for process type {ptype} on {app}... "
            ));
            let result = post_settings(&session, &app, map).await;
            complete(progress, result, |_| String::new()).await?;
        }
    }
    Ok(0)
}

async fn post_settings(
    session: &crate::session::Session,
    app: &str,
    autoscale: BTreeMap<String, Option<serde_json::Value>>,
) -> Result<(), crate::client::ApiError> {
    let update = SettingsUpdate {
        autoscale: Some(autoscale),
        routable: None,
    };
    session
        .client
        .post_ignore(&format!("/v2/apps/{app}/settings/"), &update)
        .await
}

fn autoscale_view(settings: &Settings) -> String {
    if settings.autoscale.is_empty() {
        return "No autoscale rules found.\n".to_string();
    }
    let with_status = !settings.autoscale_status.is_empty();
    let rows: Vec<Vec<String>> = settings
        .autoscale
        .iter()
        .map(|(t, r)| {
            let mut row = vec![
                settings.uuid.clone(),
                t.clone(),
                r.cpu_percent.to_string(),
                r.min.to_string(),
                r.max.to_string(),
            ];
            if with_status {
                let status = settings.autoscale_status.get(t);
                row.extend([
                    status
                        .and_then(|s| s.utilization)
                        .map_or("<unknown>".to_string(), |u| format!("{u}%")),
                    status.map_or(String::new(), |s| s.current.to_string()),
                    status.map_or(String::new(), |s| s.desired.to_string()),
                    status
                        .and_then(|s| s.last_scale.clone())
                        .unwrap_or_else(|| "-".to_string()),
                ]);
            }
            row
        })
        .collect();
    if with_status {
        table::render(
            &[
                "UUID",
                "TYPE",
                "PERCENT",
                "MIN",
                "MAX",
                "CURRENT",
                "REPLICAS",
                "DESIRED",
                "LAST SCALE",
            ],
            &rows,
        )
    } else {
        table::render(&["UUID", "TYPE", "PERCENT", "MIN", "MAX"], &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drycc_api_types::AutoscaleRule;

    #[test]
    fn autoscale_table() {
        let mut s = Settings {
            uuid: "e916b333-53c1-4d4c-ac5a-23e6961fb544".into(),
            app: "foo".into(),
            owner: "alice".into(),
            autoscale: BTreeMap::new(),
            autoscale_status: BTreeMap::new(),
            routable: true,
            created: String::new(),
            updated: String::new(),
        };
        assert_eq!(autoscale_view(&s), "No autoscale rules found.\n");
        s.autoscale.insert(
            "web".into(),
            AutoscaleRule {
                min: 3,
                max: 8,
                cpu_percent: 75,
            },
        );
        assert_eq!(
            autoscale_view(&s),
            "UUID                                    TYPE    PERCENT    MIN    MAX\n\
             e916b333-53c1-4d4c-ac5a-23e6961fb544    web     75         3      8\n"
        );
    }
}
