//! `auth:register`, `auth:login`, `auth:logout`, `auth:whoami`.

use crate::cli::{AuthCmd, Credentials};
use crate::client::Client;
use crate::config::{self, ClientConfig, DEFAULT_RESPONSE_LIMIT};
use crate::session::Ctx;
use crate::terminal;
use anyhow::bail;
use drycc_api_types::{LoginRequest, RegisterRequest, TokenResponse, User};

pub async fn run(cmd: AuthCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        AuthCmd::Register { credentials, email } => {
            let (controller, username, password) = ask(credentials)?;
            let client = Client::new(&controller, None, 0)?;
            let request = RegisterRequest {
                username: username.clone(),
                password: password.clone(),
                email,
            };
            let _user: User = client.post("/v2/auth/register/", &request).await?;
            login(ctx, &client, &controller, username, password).await?;
        }
        AuthCmd::Login { credentials } => {
            let (controller, username, password) = ask(credentials)?;
            let client = Client::new(&controller, None, 0)?;
            login(ctx, &client, &controller, username, password).await?;
        }
        AuthCmd::Logout => {
            let session = ctx.session()?;
            match session
                .client
                .post_ignore("/v2/auth/logout/", &serde_json::json!({}))
                .await
            {
                Ok(()) => {}
                // The token is no longer valid: nothing to revoke.
                Err(e) if e.status() == Some(401) => {}
                Err(e) => eprintln!("Warning: the token could not be revoked: {e}"),
            }
            config::remove(&session.path)?;
            println!("Logged out");
        }
        AuthCmd::Whoami => {
            let session = ctx.session()?;
            let user: User = session.client.get("/v2/auth/whoami/").await?;
            println!("You are {} at {}", user.username, session.config.controller);
        }
    }
    Ok(0)
}

/// The controller URL, username and password, prompting for what is missing.
fn ask(credentials: Credentials) -> anyhow::Result<(String, String, String)> {
    let controller = config::normalise_controller(&credentials.controller);
    if controller == "http://" {
        bail!("the controller URL is empty");
    }
    let username = match credentials.username {
        Some(u) => u,
        None => terminal::prompt("username: ", false)?.unwrap_or_default(),
    };
    if username.trim().is_empty() {
        bail!("a username is required: pass --username=<username>");
    }
    let password = match credentials.password {
        Some(p) => p,
        None => terminal::prompt("password: ", true)?.unwrap_or_default(),
    };
    if password.is_empty() {
        bail!("a password is required: pass --password=<password>");
    }
    Ok((controller, username, password))
}

async fn login(
    ctx: &Ctx,
    client: &Client,
    controller: &str,
    username: String,
    password: String,
) -> anyhow::Result<()> {
    let path = ctx.config_path()?;
    let token: TokenResponse = client
        .post(
            "/v2/auth/login/",
            &LoginRequest {
                username: username.clone(),
                password,
            },
        )
        .await?;
    // Keep the page size of an earlier file.
    let previous = config::load_optional(&path).ok().flatten();
    let new = ClientConfig {
        username: username.clone(),
        controller: controller.to_string(),
        token: token.token,
        ssl_verify: previous.as_ref().map_or(true, |p| p.ssl_verify),
        response_limit: previous
            .as_ref()
            .map_or(DEFAULT_RESPONSE_LIMIT, |p| p.response_limit),
    };
    config::save(&path, &new)?;
    println!("Logged in as {username}");
    println!("Configuration file written to {}", path.display());
    Ok(())
}
