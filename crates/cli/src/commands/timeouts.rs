//! `timeouts:list`, `timeouts:set`, `timeouts:unset` (config
//! `termination_grace_period`, seconds per process type).

use super::{get_config, post_config, set_map, unset_map};
use crate::cli::TimeoutsCmd;
use crate::session::Ctx;
use crate::table;
use crate::validate;
use drycc_api_types::{Config, ConfigUpdate};

pub async fn run(cmd: TimeoutsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        TimeoutsCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let config = get_config(&session, &app).await?;
            print!("{}", timeouts_view(&app, &config));
        }
        TimeoutsCmd::Set { app, timeouts } => {
            let timeouts = validate::parse_timeouts(&timeouts)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let update = ConfigUpdate {
                termination_grace_period: Some(set_map(timeouts)),
                ..Default::default()
            };
            let config = post_config(&session, &app, "Applying timeouts", &update).await?;
            print!("{}", timeouts_view(&app, &config));
        }
        TimeoutsCmd::Unset { app, types } => {
            let types = validate::parse_types(&types)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let update = ConfigUpdate {
                termination_grace_period: Some(unset_map(types)),
                ..Default::default()
            };
            let config = post_config(&session, &app, "Applying timeouts", &update).await?;
            print!("{}", timeouts_view(&app, &config));
        }
    }
    Ok(0)
}

fn timeouts_view(app: &str, config: &Config) -> String {
    if config.termination_grace_period.is_empty() {
        return format!(
            "No timeouts set in {app} app: every process type gets the default grace period.\n"
        );
    }
    let rows: Vec<Vec<String>> = config
        .termination_grace_period
        .iter()
        .map(|(t, s)| vec![t.clone(), s.to_string()])
        .collect();
    table::render(&["TYPE", "SECONDS"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_table() {
        let mut c = super::super::config::sample_config();
        assert!(timeouts_view("foo", &c).starts_with("No timeouts set in foo app"));
        c.termination_grace_period.insert("web".into(), 60);
        assert_eq!(timeouts_view("foo", &c), "TYPE    SECONDS\nweb     60\n");
    }
}
