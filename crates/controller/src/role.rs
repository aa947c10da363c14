//! Whether this controller leads (applies desired state to the engine) and
//! who does, as the leader election ([`crate::loops::leader`]) last saw it.

use tokio::sync::watch;

/// What this controller is, as last seen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Role {
    /// This controller holds the Lease (or there is no election).
    pub leader: bool,
    /// Who holds the Lease, if anyone is known to.
    pub holder: Option<String>,
}

/// The role of a controller without an election: the leader, always.
pub fn sole_leader(identity: &str) -> watch::Receiver<Role> {
    let (sender, receiver) = watch::channel(Role {
        leader: true,
        holder: Some(identity.to_string()),
    });
    // The value never changes; keeping the sender alive keeps it readable
    // as "unchanged" rather than "closed".
    std::mem::forget(sender);
    receiver
}
