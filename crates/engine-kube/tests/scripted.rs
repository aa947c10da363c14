//! Exec, logs and API errors of the Kubernetes engine against scripted API
//! servers: no kubelet runs here, so each scenario plays the server's side
//! and checks every request the engine makes.
//!
//! Logs and errors go through kube's own `Client` over a `tower-test` mock
//! service. Exec needs a real HTTP upgrade to a WebSocket, which a mock
//! service cannot give, so its scenarios run a small WebSocket server on
//! 127.0.0.1 that speaks the `v5.channel.k8s.io` subprotocol (first byte of
//! each frame: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close).

#[path = "scripted/mock.rs"]
mod mock;
#[path = "scripted/ws.rs"]
mod ws;

#[path = "scripted/errors.rs"]
mod errors;
#[path = "scripted/exec.rs"]
mod exec;
#[path = "scripted/logs.rs"]
mod logs;
