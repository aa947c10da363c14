//! Leader election among controller replicas that share one database.
//!
//! Replicas (a Deployment with two of them) serve the API alike, but only
//! one may apply desired state to the engine: two reconcilers would fight
//! over every Deployment. They elect that one with a `coordination.k8s.io/v1`
//! Lease (`DRYCC_LEADER_LEASE=<namespace>/<name>`), as Kubernetes' own
//! controller managers do:
//!
//! - a replica takes the Lease when it has no holder or its holder let it
//!   expire (`renewTime + leaseDurationSeconds` is past; the replicas'
//!   clocks are assumed to agree, as Kubernetes assumes for node leases);
//! - the holder renews it every third of the duration; every write carries
//!   the `resourceVersion` read just before, so of two replicas writing at
//!   once the API server lets one win and answers the other 409;
//! - a holder that has not renewed for two thirds of the duration steps
//!   down on its own, before anyone may take its place;
//! - a holder that stops releases the Lease, so another takes over at once.
//!
//! The outcome is a [`Role`] on a watch, which `loops::duties` follows to
//! start and stop the reconciler and the autoscaler. Without a Lease the
//! controller is always the leader.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::role::Role;
use crate::settings::Settings;

/// The label a leader puts on its own Pod; the Service selects it.
pub const LEADER_LABEL: &str = "drycc.cc/leader";

/// Why an election cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("{0}")]
    Setting(String),
    #[error("cannot reach the Kubernetes API for the leader election (set KUBECONFIG, or run in a Pod): {0}")]
    Client(#[from] kube::Error),
}

/// This replica's name in the Lease: its Pod's name (else the host's) and a
/// random suffix, so that a restarted replica is a new holder and never
/// mistakes the Lease of its previous life for its own.
pub fn identity(settings: &Settings) -> String {
    let base = settings
        .pod_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "drycc-controller".into());
    let suffix: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(5)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{base}-{suffix}")
}

/// The election's timing, from the Lease duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease lasts without renewal.
    pub duration: Duration,
    /// How often the holder renews it and the others look at it.
    pub period: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub deadline: Duration,
}

impl Timing {
    pub fn new(duration: Duration) -> Timing {
        Timing {
            duration,
            period: duration / 3,
            deadline: duration * 2 / 3,
        }
    }
}

/// A running election: its role watch, and how to end it.
pub struct Election {
    pub role: watch::Receiver<Role>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Election {
    /// End the election: a leader steps down, releases the Lease and
    /// removes its Pod's label.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Start the election of `DRYCC_LEADER_LEASE`; `None` when it is off.
pub async fn start(
    settings: &Settings,
    identity: String,
) -> Result<Option<Election>, ElectionError> {
    let Some((namespace, name)) = settings.leader_lease().map_err(ElectionError::Setting)? else {
        return Ok(None);
    };
    if !settings.database_url().starts_with("postgres") {
        // Replicas share their state through the database; SQLite is one
        // machine's file, and cannot tell the leader of a follower's change.
        return Err(ElectionError::Setting(
            "DRYCC_LEADER_LEASE needs a database the replicas share: set DRYCC_DATABASE_URL to a postgres:// URL".into(),
        ));
    }
    let client = kube::Client::try_default().await?;
    let pod = match (&settings.pod_namespace, &settings.pod_name) {
        (Some(ns), Some(pod)) if !ns.trim().is_empty() && !pod.trim().is_empty() => Some((
            Api::<Pod>::namespaced(client.clone(), ns.trim()),
            pod.trim().to_string(),
        )),
        _ => None,
    };
    let elector = Elector {
        leases: Api::namespaced(client, &namespace),
        name,
        identity,
        timing: Timing::new(Duration::from_secs(u64::from(
            settings.leader_lease_seconds,
        ))),
        pod,
    };
    tracing::info!(
        lease = %format!("{namespace}/{}", elector.name),
        identity = %elector.identity,
        seconds = settings.leader_lease_seconds,
        "Electing a leader; reconciling only while leading."
    );
    let (sender, role) = watch::channel(Role {
        leader: false,
        holder: None,
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(elector.run(sender, stop.clone()));
    Ok(Some(Election { role, stop, task }))
}

/// What one look at the Lease found.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// This replica holds it (just acquired or renewed).
    Mine,
    /// Another holds it, unexpired (or won the race to it).
    Theirs(Option<String>),
}

struct Elector {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// This replica's Pod, labelled while it leads.
    pod: Option<(Api<Pod>, String)>,
}

impl Elector {
    async fn run(self, role: watch::Sender<Role>, stop: CancellationToken) {
        // When this replica last acquired or renewed the Lease.
        let mut renewed: Option<tokio::time::Instant> = None;
        // Unknown at start: a replica restarted in the same Pod after a
        // crash may still carry the label of its previous life.
        let mut labelled: Option<bool> = None;
        loop {
            // The renewal counts from before the request: the renewTime it
            // writes is no later, and the others count from that.
            let started = tokio::time::Instant::now();
            let attempt = tokio::time::timeout(self.timing.period, self.acquire_or_renew());
            let seen = tokio::select! {
                _ = stop.cancelled() => break,
                seen = attempt => seen,
            };
            let now = tokio::time::Instant::now();
            match seen {
                Ok(Ok(Seen::Mine)) => {
                    if renewed.is_none() {
                        tracing::info!(identity = %self.identity, "Acquired the leader lease; reconciling.");
                    }
                    renewed = Some(started);
                    self.announce(&role, true, Some(self.identity.clone()));
                }
                Ok(Ok(Seen::Theirs(holder))) => {
                    if renewed.take().is_some() {
                        tracing::warn!(holder = ?holder, "Lost the leader lease; no longer reconciling.");
                    }
                    self.announce(&role, false, holder);
                }
                Ok(Err(error)) => self.failed(&role, &mut renewed, now, &error.to_string()),
                Err(_) => self.failed(
                    &role,
                    &mut renewed,
                    now,
                    "the API server did not answer in time",
                ),
            }
            let leading = renewed.is_some();
            if labelled != Some(leading) {
                // Bounded, so that a hung call never holds up the renewals.
                match tokio::time::timeout(self.timing.period, self.label(leading)).await {
                    Ok(Ok(())) => labelled = Some(leading),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "Cannot label this controller's Pod; retrying.")
                    }
                    Err(_) => {
                        tracing::warn!("Labelling this controller's Pod timed out; retrying.")
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.timing.period) => {}
            }
        }
        // A stopping controller waits for neither longer than a period.
        let bound = self.timing.period;
        if renewed.is_some() {
            self.announce(&role, false, None);
            match tokio::time::timeout(bound, self.release()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Cannot release the leader lease; it expires on its own.")
                }
                Err(_) => {
                    tracing::warn!("Releasing the leader lease timed out; it expires on its own.")
                }
            }
        }
        if labelled != Some(false) {
            match tokio::time::timeout(bound, self.label(false)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Cannot remove the leader label from this controller's Pod.")
                }
                Err(_) => tracing::warn!(
                    "Removing the leader label from this controller's Pod timed out."
                ),
            }
        }
    }

    /// Publish the role if it changed.
    fn announce(&self, role: &watch::Sender<Role>, leader: bool, holder: Option<String>) {
        let new = Role { leader, holder };
        role.send_if_modified(|current| {
            let changed = *current != new;
            *current = new;
            changed
        });
    }

    /// A look at the Lease failed: a leader keeps leading until the renew
    /// deadline, then steps down before anyone could take its place.
    fn failed(
        &self,
        role: &watch::Sender<Role>,
        renewed: &mut Option<tokio::time::Instant>,
        now: tokio::time::Instant,
        error: &str,
    ) {
        match *renewed {
            Some(at) if now.duration_since(at) >= self.timing.deadline => {
                tracing::warn!(%error, "Cannot renew the leader lease; stepping down.");
                *renewed = None;
                self.announce(role, false, None);
            }
            Some(_) => tracing::warn!(%error, "Cannot renew the leader lease; retrying."),
            None => tracing::warn!(%error, "Cannot read the leader lease; retrying."),
        }
    }

    async fn acquire_or_renew(&self) -> Result<Seen, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.leases.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Seen::Mine),
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    Ok(Seen::Theirs(None))
                }
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() == Some(self.identity.as_str()) {
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(seconds);
        } else if holder.is_none() || expired(spec, now) {
            spec.holder_identity = Some(self.identity.clone());
            spec.lease_duration_seconds = Some(seconds);
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        } else {
            return Ok(Seen::Theirs(holder));
        }
        // The resourceVersion read above makes this a compare-and-swap.
        match self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Seen::Mine),
            // Another replica wrote first; the next look says who holds it.
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Seen::Theirs(None)),
            Err(error) => Err(error),
        }
    }

    /// Let the Lease go at once: no holder, so the next look takes it.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.leases.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!("Released the leader lease.");
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Put the leader label on this replica's Pod, or take it off.
    async fn label(&self, leading: bool) -> Result<(), kube::Error> {
        let Some((pods, name)) = &self.pod else {
            return Ok(());
        };
        let value = leading.then_some("true");
        let patch = serde_json::json!({"metadata": {"labels": {LEADER_LABEL: value}}});
        pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// The holder let the Lease expire: `renewTime + leaseDurationSeconds` is
/// before `now` (a Lease never renewed counts as expired).
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(MicroTime(renewed)) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    renewed.as_millisecond().saturating_add(seconds * 1000) < now.as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed: Option<i64>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(seconds),
            renew_time: renewed.map(|s| MicroTime(Timestamp::from_second(s).unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_after_its_duration_since_the_last_renewal() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert!(!expired(&spec(Some(990), 15), now));
        assert!(!expired(&spec(Some(985), 15), now));
        assert!(expired(&spec(Some(984), 15), now));
        assert!(expired(&spec(None, 15), now));
        // A holder's clock ahead of ours: not expired.
        assert!(!expired(&spec(Some(1_005), 15), now));
    }

    #[test]
    fn timing_renews_thrice_per_duration_and_steps_down_before_expiry() {
        let timing = Timing::new(Duration::from_secs(15));
        assert_eq!(timing.period, Duration::from_secs(5));
        assert_eq!(timing.deadline, Duration::from_secs(10));
        assert!(timing.deadline < timing.duration);
    }

    /// The elector of `me` against a scripted API server.
    mod scripted {
        use super::*;
        use axum::http::{Method, Request, Response};
        use kube::client::Body;
        use tower_test::mock::Handle;

        type Server = Handle<Request<Body>, Response<Body>>;

        fn elector(duration: u64) -> (Elector, Server) {
            let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let client = kube::Client::new(service, "default");
            let elector = Elector {
                leases: Api::namespaced(client, "drycc"),
                name: "drycc-controller".into(),
                identity: "me".into(),
                timing: Timing::new(Duration::from_secs(duration)),
                pod: None,
            };
            (elector, server)
        }

        /// The elector's task from a follower's start: its role watch, its
        /// stop and the task.
        fn running(
            elector: Elector,
        ) -> (
            watch::Receiver<Role>,
            CancellationToken,
            tokio::task::JoinHandle<()>,
        ) {
            let (sender, role) = watch::channel(Role {
                leader: false,
                holder: None,
            });
            let stop = CancellationToken::new();
            let task = tokio::spawn(elector.run(sender, stop.clone()));
            (role, stop, task)
        }

        fn lease(holder: &str, renewed_ago: i64, version: &str) -> Lease {
            let renewed =
                Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(renewed_ago);
            Lease {
                metadata: ObjectMeta {
                    name: Some("drycc-controller".into()),
                    namespace: Some("drycc".into()),
                    resource_version: Some(version.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(holder.into()),
                    lease_duration_seconds: Some(6),
                    renew_time: Some(MicroTime(renewed)),
                    lease_transitions: Some(3),
                    ..LeaseSpec::default()
                }),
            }
        }

        fn json(status: u16, body: &impl serde::Serialize) -> Response<Body> {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap()
        }

        fn failure(code: u16, reason: &str) -> Response<Body> {
            json(
                code,
                &serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "reason": reason, "code": code, "message": reason}),
            )
        }

        /// The next request: its method, path and body.
        async fn next(
            server: &mut Server,
        ) -> (
            Method,
            String,
            serde_json::Value,
            tower_test::mock::SendResponse<Response<Body>>,
        ) {
            let (request, send) = server.next_request().await.expect("a request");
            let (method, path) = (request.method().clone(), request.uri().path().to_string());
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (method, path, body, send)
        }

        const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/drycc/leases/drycc-controller";

        #[tokio::test(start_paused = true)]
        async fn a_free_lease_is_created_renewed_and_given_up_when_renewals_fail() {
            let (elector, mut server) = elector(6);
            let (mut role, stop, task) = running(elector);

            // No Lease yet: created with this replica as holder.
            let (method, path, _, send) = next(&mut server).await;
            assert_eq!((method, path.as_str()), (Method::GET, PATH));
            send.send_response(failure(404, "NotFound"));
            let (method, path, body, send) = next(&mut server).await;
            assert_eq!(method, Method::POST);
            assert_eq!(path, "/apis/coordination.k8s.io/v1/namespaces/drycc/leases");
            assert_eq!(body["spec"]["holderIdentity"], "me");
            assert_eq!(body["spec"]["leaseDurationSeconds"], 6);
            send.send_response(json(201, &lease("me", 0, "1")));
            role.changed().await.unwrap();
            assert_eq!(
                *role.borrow(),
                Role {
                    leader: true,
                    holder: Some("me".into())
                }
            );

            // Renewed a period later, against the version read.
            let renewing = tokio::time::Instant::now();
            let (method, _, _, send) = next(&mut server).await;
            assert_eq!(method, Method::GET);
            assert_eq!(renewing.elapsed(), Duration::from_secs(2));
            send.send_response(json(200, &lease("me", 2, "7")));
            let (method, path, body, send) = next(&mut server).await;
            assert_eq!((method, path.as_str()), (Method::PUT, PATH));
            assert_eq!(body["metadata"]["resourceVersion"], "7");
            assert_eq!(body["spec"]["holderIdentity"], "me");
            assert_eq!(
                body["spec"]["leaseTransitions"], 3,
                "a renewal is no transition"
            );
            send.send_response(json(200, &lease("me", 0, "8")));
            let renewed = tokio::time::Instant::now();

            // The API server fails: still the leader until two thirds of the
            // duration have passed since the last renewal, then not.
            loop {
                let (_, _, _, send) = next(&mut server).await;
                send.send_response(failure(500, "InternalError"));
                tokio::task::yield_now().await;
                if renewed.elapsed() < Duration::from_secs(4) {
                    assert!(
                        role.borrow().leader,
                        "stepped down after {:?}",
                        renewed.elapsed()
                    );
                } else {
                    role.changed().await.unwrap();
                    assert!(!role.borrow().leader);
                    break;
                }
            }
            assert!(
                renewed.elapsed() < Duration::from_secs(6),
                "stepped down before the lease could expire"
            );
            stop.cancel();
            task.await.unwrap();
        }

        #[tokio::test(start_paused = true)]
        async fn a_held_lease_is_left_alone_an_expired_one_taken_and_a_conflict_lost() {
            let (elector, mut server) = elector(6);
            let (mut role, stop, task) = running(elector);

            // Held and fresh: no write.
            let (method, _, _, send) = next(&mut server).await;
            assert_eq!(method, Method::GET);
            send.send_response(json(200, &lease("other", 1, "4")));
            role.changed().await.unwrap();
            assert_eq!(
                *role.borrow(),
                Role {
                    leader: false,
                    holder: Some("other".into())
                }
            );

            // Expired: taken over, one more transition.
            let (method, _, _, send) = next(&mut server).await;
            assert_eq!(method, Method::GET);
            send.send_response(json(200, &lease("other", 7, "5")));
            let (method, _, body, send) = next(&mut server).await;
            assert_eq!(method, Method::PUT);
            assert_eq!(body["metadata"]["resourceVersion"], "5");
            assert_eq!(body["spec"]["holderIdentity"], "me");
            assert_eq!(body["spec"]["leaseTransitions"], 4);
            send.send_response(json(200, &lease("me", 0, "6")));
            role.changed().await.unwrap();
            assert!(role.borrow().leader);

            // Someone else wrote between our read and our write: 409, and
            // this replica no longer leads.
            let (_, _, _, send) = next(&mut server).await;
            send.send_response(json(200, &lease("me", 2, "6")));
            let (method, _, _, send) = next(&mut server).await;
            assert_eq!(method, Method::PUT);
            send.send_response(failure(409, "Conflict"));
            role.changed().await.unwrap();
            assert_eq!(
                *role.borrow(),
                Role {
                    leader: false,
                    holder: None
                }
            );

            // Stopped while following: nothing is released.
            stop.cancel();
            task.await.unwrap();
        }

        #[tokio::test(start_paused = true)]
        async fn a_leader_whose_api_server_hangs_steps_down_in_time() {
            let (elector, mut server) = elector(6);
            let (mut role, stop, task) = running(elector);
            let (_, _, _, send) = next(&mut server).await;
            send.send_response(failure(404, "NotFound"));
            let (_, _, _, send) = next(&mut server).await;
            send.send_response(json(201, &lease("me", 0, "1")));
            role.changed().await.unwrap();
            let renewed = tokio::time::Instant::now();
            assert!(role.borrow().leader);

            // No answer ever comes: every look times out.
            let mut unanswered = Vec::new();
            let stepped_down = async {
                role.changed().await.unwrap();
                renewed.elapsed()
            };
            let hang = async {
                loop {
                    let (_, _, _, send) = next(&mut server).await;
                    unanswered.push(send);
                }
            };
            let after = tokio::select! {
                after = stepped_down => after,
                () = hang => unreachable!(),
            };
            assert!(!role.borrow().leader);
            assert!(
                after >= Duration::from_secs(4) && after < Duration::from_secs(6),
                "stepped down {after:?} after the last renewal"
            );
            stop.cancel();
            task.await.unwrap();
        }

        #[tokio::test(start_paused = true)]
        async fn a_stopping_leader_releases_the_lease() {
            let (elector, mut server) = elector(6);
            let (mut role, stop, task) = running(elector);
            let (_, _, _, send) = next(&mut server).await;
            send.send_response(json(200, &lease("other", 60, "2")));
            let (_, _, _, send) = next(&mut server).await;
            send.send_response(json(200, &lease("me", 0, "3")));
            role.changed().await.unwrap();
            assert!(role.borrow().leader);

            stop.cancel();
            let (method, _, _, send) = next(&mut server).await;
            assert_eq!(method, Method::GET);
            send.send_response(json(200, &lease("me", 1, "3")));
            let (method, _, body, send) = next(&mut server).await;
            assert_eq!(method, Method::PUT);
            assert!(body["spec"]["holderIdentity"].is_null(), "{body}");
            send.send_response(json(200, &lease("", 0, "4")));
            task.await.unwrap();
            assert!(!role.borrow().leader);
        }
    }

    #[test]
    fn identities_are_unique_per_start_and_name_the_pod() {
        use clap::Parser;
        let mut settings = crate::settings::Cli::parse_from(["drycc-controller"]).settings;
        settings.pod_name = Some("drycc-controller-5d8f7-abcde".into());
        let a = identity(&settings);
        let b = identity(&settings);
        assert!(a.starts_with("drycc-controller-5d8f7-abcde-"), "{a}");
        assert_ne!(a, b);
    }
}
