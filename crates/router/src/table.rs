//! The routing table: which backends serve which host. The controller
//! computes it and publishes it whole ([`Routes`] on the wire, indexed as a
//! [`RouteTable`]); the request path only ever reads an immutable snapshot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::sign::CertifiedKey;

/// One app's entry, as the controller publishes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppRoute {
    pub app: String,
    /// Lower-case host names without a port (`myapp.localhost`).
    pub hosts: Vec<String>,
    /// Ready `web` processes.
    pub backends: Vec<SocketAddr>,
    /// `drycc routing:disable` sets this to false: the app gets no traffic.
    pub routable: bool,
}

/// A TLS certificate and the hosts it is served for (by SNI).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostCert {
    /// The certificate's name (`drycc certs:add <name> ...`).
    pub name: String,
    /// Lower-case host names it is attached to.
    pub hosts: Vec<String>,
    /// PEM chain, leaf first.
    pub certificate: String,
    /// PEM private key.
    pub key: String,
}

/// Never prints the key.
impl std::fmt::Debug for HostCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCert")
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// The whole table, as the controller publishes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Routes {
    /// Grows with every published table; 0 means none has been computed yet.
    pub generation: u64,
    pub apps: Vec<AppRoute>,
    /// Certificates of the TLS listener (a table without them serves no
    /// TLS host).
    #[serde(default)]
    pub certs: Vec<HostCert>,
}

/// One app as the request path sees it, with its round-robin position.
#[derive(Debug)]
pub struct Route {
    pub app: String,
    pub backends: Vec<SocketAddr>,
    pub routable: bool,
    next: AtomicUsize,
    /// This app's counters, found once per table ([`crate::metrics`]).
    pub(crate) metrics: OnceLock<Arc<crate::metrics::AppMetrics>>,
}

impl Route {
    /// Index of the backend to try first (round robin).
    pub fn pick(&self) -> usize {
        match self.backends.len() {
            0 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }
}

/// The indexed, immutable table.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Routes,
    hosts: HashMap<String, Arc<Route>>,
    /// Host -> its certificate, parsed once per table.
    certs: HashMap<String, Arc<CertifiedKey>>,
}

/// What a `Host` header finds in the table.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The table was not received yet.
    NotLoaded,
    /// No app answers on this host (the normalised host).
    Unknown(String),
    Found(&'a Arc<Route>),
}

impl RouteTable {
    pub fn new(routes: Routes) -> RouteTable {
        let mut hosts = HashMap::new();
        for app in &routes.apps {
            let route = Arc::new(Route {
                app: app.app.clone(),
                backends: app.backends.clone(),
                routable: app.routable,
                next: AtomicUsize::new(0),
                metrics: OnceLock::new(),
            });
            for host in &app.hosts {
                hosts.insert(host.to_ascii_lowercase(), route.clone());
            }
        }
        let mut certs = HashMap::new();
        for cert in &routes.certs {
            match crate::tls::certified_key(&cert.certificate, &cert.key) {
                Ok(certified) => {
                    let certified = Arc::new(certified);
                    for host in &cert.hosts {
                        certs.insert(host.to_ascii_lowercase(), certified.clone());
                    }
                }
                Err(error) => {
                    tracing::warn!(name = %cert.name, %error, "A certificate of the routing table is unusable; its hosts get no TLS.");
                }
            }
        }
        RouteTable {
            routes,
            hosts,
            certs,
        }
    }

    /// The certificate of a TLS client's SNI name, if one is attached.
    pub fn certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.');
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.certs.get(&name.to_ascii_lowercase()).cloned()
        } else {
            self.certs.get(name).cloned()
        }
    }

    /// The table as published.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    pub fn generation(&self) -> u64 {
        self.routes.generation
    }

    /// The route of a `Host` header (`MyApp.localhost:8080.` finds
    /// `myapp.localhost`).
    pub fn lookup(&self, host: &str) -> Lookup<'_> {
        if self.routes.generation == 0 {
            return Lookup::NotLoaded;
        }
        let host = strip_port(host).trim_end_matches('.');
        let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.hosts.get(&host.to_ascii_lowercase())
        } else {
            self.hosts.get(host)
        };
        match found {
            Some(route) => Lookup::Found(route),
            None => Lookup::Unknown(host.to_ascii_lowercase()),
        }
    }
}

/// `name:8080` -> `name`; `[::1]:80` -> `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new(Routes {
            generation: 1,
            apps: vec![AppRoute {
                app: "myapp".into(),
                hosts: vec!["myapp.localhost".into()],
                backends: vec![
                    "127.0.0.1:1".parse().unwrap(),
                    "127.0.0.1:2".parse().unwrap(),
                ],
                routable: true,
            }],
            certs: Vec::new(),
        })
    }

    #[test]
    fn hosts_are_found_whatever_their_case_port_or_final_dot() {
        let table = table();
        for host in [
            "myapp.localhost",
            "myapp.localhost:8080",
            "MyApp.LocalHost.",
        ] {
            assert!(
                matches!(table.lookup(host), Lookup::Found(r) if r.app == "myapp"),
                "{host}"
            );
        }
        for host in ["a.myapp.localhost", "localhost", "myapp.example.com", ""] {
            assert!(matches!(table.lookup(host), Lookup::Unknown(_)), "{host}");
        }
        assert!(matches!(
            RouteTable::default().lookup("myapp.localhost"),
            Lookup::NotLoaded
        ));
    }

    #[test]
    fn backends_are_picked_round_robin() {
        let table = table();
        let Lookup::Found(route) = table.lookup("myapp.localhost") else {
            panic!("found");
        };
        let picks: Vec<usize> = (0..4).map(|_| route.pick()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn certificates_are_found_by_sni_and_bad_ones_skipped() {
        let made = rcgen::generate_simple_self_signed(vec!["www.example.com".to_string()])
            .expect("certificate");
        let cert = |name: &str, hosts: &[&str], key: String| HostCert {
            name: name.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            certificate: made.cert.pem(),
            key,
        };
        let table = RouteTable::new(Routes {
            generation: 1,
            apps: Vec::new(),
            certs: vec![
                cert("good", &["www.example.com"], made.key_pair.serialize_pem()),
                cert("bad", &["bad.example.com"], "no key".into()),
            ],
        });
        for name in ["www.example.com", "WWW.Example.com."] {
            assert!(table.certificate(name).is_some(), "{name}");
        }
        assert!(table.certificate("bad.example.com").is_none());
        assert!(table.certificate("other.example.com").is_none());
        let debug = format!("{:?}", table.routes().certs[0]);
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }

    #[test]
    fn ports_are_stripped_only_when_numeric() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b:x"), "a.b:x");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
