//! The Kubernetes engine: the engine interface on a cluster, with the
//! object mapping of `docs/kubernetes.md` (a Namespace per app, a
//! Deployment per process type, a Secret per release, a Service for `web`,
//! a HorizontalPodAutoscaler per autoscaled type). State is observed through
//! watches (reflectors), never by polling.
