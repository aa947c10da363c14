//! `registry:list`, `registry:set`, `registry:unset`: the login of the
//! app's private image registry (config `registry`), used when its images
//! are read and pulled. The controller never sends the password back.

use super::{get_config, post_config, set_map, unset_map};
use crate::cli::RegistryCmd;
use crate::session::Ctx;
use crate::table;
use crate::validate;
use drycc_api_types::{Config, ConfigUpdate};

pub async fn run(cmd: RegistryCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        RegistryCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let config = get_config(&session, &app).await?;
            print!("{}", registry_view(&app, &config));
        }
        RegistryCmd::Set { app, items } => {
            let items = validate::parse_registry(&items)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let update = ConfigUpdate {
                registry: Some(set_map(items)),
                ..Default::default()
            };
            let config = post_config(&session, &app, "Applying registry login", &update).await?;
            print!("{}", registry_view(&app, &config));
        }
        RegistryCmd::Unset { app, keys } => {
            let keys = keys
                .iter()
                .map(|k| validate::parse_registry_key(k))
                .collect::<Result<Vec<_>, _>>()?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let update = ConfigUpdate {
                registry: Some(unset_map(keys)),
                ..Default::default()
            };
            let config = post_config(&session, &app, "Applying registry login", &update).await?;
            print!("{}", registry_view(&app, &config));
        }
    }
    Ok(0)
}

fn registry_view(app: &str, config: &Config) -> String {
    if config.registry.is_empty() {
        return format!("No registry login set in {app} app.\n");
    }
    let rows: Vec<Vec<String>> = config
        .registry
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    table::render(&["KEY", "VALUE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_table() {
        let mut c = super::super::config::sample_config();
        assert_eq!(
            registry_view("foo", &c),
            "No registry login set in foo app.\n"
        );
        c.registry.insert("username".into(), "bob".into());
        c.registry.insert("password".into(), "********".into());
        assert_eq!(
            registry_view("foo", &c),
            "KEY         VALUE\npassword    ********\nusername    bob\n"
        );
    }

    #[test]
    fn registry_arguments() {
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parsed = validate::parse_registry(&items(&["username=bob", "password=a=b"])).unwrap();
        assert_eq!(parsed["password"], "a=b");
        for bad in [&["user=bob"][..], &["username"], &["password="]] {
            assert!(validate::parse_registry(&items(bad)).is_err(), "{bad:?}");
        }
        assert!(validate::parse_registry_key("token").is_err());
    }
}
