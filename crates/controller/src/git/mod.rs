//! The git hook's side of a push: the pre-receive hook (run by git inside
//! `git receive-pack`) that hands pushed commits to the controller, and
//! what the controller and the hook agree on. The controller's side is
//! `http::git` (smart HTTP, the build endpoint) and `service::build`.

pub mod hook;

/// Environment variables passed from the controller, through git, to the hook.
pub const ENV_HOOK_URL: &str = "DRYCC_HOOK_URL";
pub const ENV_HOOK_EXE: &str = "DRYCC_HOOK_EXE";
pub const ENV_HOOK_SECRET: &str = "DRYCC_HOOK_SECRET";
pub const ENV_APP: &str = "DRYCC_HOOK_APP";
pub const ENV_USER: &str = "DRYCC_HOOK_USER";
pub const ENV_CHECKOUTS_DIR: &str = "DRYCC_HOOK_CHECKOUTS_DIR";
/// Header carrying the hook secret to the internal build endpoint.
pub const SECRET_HEADER: &str = "x-drycc-hook-secret";
/// Last line of the build stream: the hook's exit status.
pub const RESULT_OK: &str = "DRYCC-RESULT ok";
pub const RESULT_FAILED: &str = "DRYCC-RESULT failed";
