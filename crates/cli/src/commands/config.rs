//! `config:list`, `config:set`, `config:unset` (the `values` of the config).

use super::{get_config, post_config, set_map, unset_map};
use crate::cli::ConfigCmd;
use crate::session::Ctx;
use crate::table;
use crate::validate;
use drycc_api_types::{Config, ConfigUpdate};

pub async fn run(cmd: ConfigCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        ConfigCmd::List { app, oneline } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let config = get_config(&session, &app).await?;
            print!("{}", values_view(&app, &config, oneline));
        }
        ConfigCmd::Set { app, values } => {
            let values = validate::parse_config_values(&values)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let update = ConfigUpdate {
                values: Some(set_map(values)),
                ..Default::default()
            };
            let config = post_config(&session, &app, "Creating config", &update).await?;
            print!("{}", values_view(&app, &config, false));
        }
        ConfigCmd::Unset { app, keys } => {
            let keys = validate::parse_config_keys(&keys)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let update = ConfigUpdate {
                values: Some(unset_map(keys)),
                ..Default::default()
            };
            let config = post_config(&session, &app, "Removing config", &update).await?;
            print!("{}", values_view(&app, &config, false));
        }
    }
    Ok(0)
}

fn values_view(app: &str, config: &Config, oneline: bool) -> String {
    if config.values.is_empty() {
        return format!("No config values found in {app} app.\n");
    }
    if oneline {
        let pairs: Vec<String> = config
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return format!("{}\n", pairs.join(" "));
    }
    let rows: Vec<Vec<String>> = config
        .values
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    table::render(&["KEY", "VALUE"], &rows)
}

#[cfg(test)]
pub(super) fn sample_config() -> Config {
    Config {
        uuid: "c1".into(),
        app: "foo".into(),
        owner: "alice".into(),
        values: Default::default(),
        cpu: Default::default(),
        memory: Default::default(),
        healthcheck: Default::default(),
        termination_grace_period: Default::default(),
        tags: Default::default(),
        registry: Default::default(),
        created: "2023-12-08T02:25:00Z".into(),
        updated: "2023-12-08T02:25:00Z".into(),
        limits_enforced: None,
        limits_note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_table_and_oneline() {
        let mut c = sample_config();
        assert_eq!(
            values_view("foo", &c, false),
            "No config values found in foo app.\n"
        );
        c.values.insert("DEBUG".into(), "true".into());
        c.values.insert("A".into(), "x y".into());
        assert_eq!(
            values_view("foo", &c, false),
            "KEY      VALUE\nA        x y\nDEBUG    true\n"
        );
        assert_eq!(values_view("foo", &c, true), "A=x y DEBUG=true\n");
    }
}
