//! The headers a proxy adds and removes: `X-Forwarded-*`, `X-Request-Id`,
//! and the hop-by-hop headers that belong to one connection only.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that describe one connection, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID: usize = 200;

/// Where a request came from, for the `X-Forwarded-*` headers; the
/// values are made once per connection.
#[derive(Clone, Debug)]
pub struct Peer {
    ip: HeaderValue,
    /// The router's port the client connected to.
    port: HeaderValue,
    proto: HeaderValue,
}

impl Peer {
    pub fn new(ip: IpAddr, port: u16, proto: &'static str) -> Peer {
        Peer {
            ip: HeaderValue::from_str(&ip.to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            port: HeaderValue::from(port),
            proto: HeaderValue::from_static(proto),
        }
    }
}

/// Request ids: a random per-process prefix and a counter, unique without
/// a random number per request.
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new(prefix: u64) -> RequestIds {
        RequestIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    fn generate(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut text = [0u8; 32];
        for (index, byte) in text.iter_mut().enumerate() {
            let (word, shift) = if index < 16 {
                (self.prefix, (15 - index) * 4)
            } else {
                (n, (31 - index) * 4)
            };
            *byte = HEX[((word >> shift) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
    }
}

/// A client's request id is kept when it is 1..=200 visible ASCII
/// characters.
fn acceptable_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_REQUEST_ID && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// Whether the request asks to switch protocols (WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Remove hop-by-hop headers, and those `Connection` names. An upgrade
/// keeps `Connection: upgrade` and `Upgrade`, which the backend needs.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .filter(|name| !(upgrade && *name == UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
        if upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        } else {
            headers.remove(CONNECTION);
        }
    }
    if !upgrade {
        headers.remove(UPGRADE);
    }
    for name in HOP_BY_HOP {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}

/// Add the forwarding headers to a request bound for a backend.
pub fn forward(headers: &mut HeaderMap, peer: &Peer, ids: &RequestIds) {
    let earlier = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let forwarded_for = match earlier {
        Some(earlier) => {
            let ip = peer.ip.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{earlier}, {ip}")).ok()
        }
        None => Some(peer.ip.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), peer.proto.clone());
    headers.insert(X_FORWARDED_PORT.clone(), peer.port.clone());
    if !headers.get(&X_REQUEST_ID).is_some_and(acceptable_id) {
        headers.insert(X_REQUEST_ID.clone(), ids.generate());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer::new("10.0.0.7".parse().unwrap(), 8080, "http")
    }

    #[test]
    fn forwarding_headers_are_added_and_appended() {
        let ids = RequestIds::new(1);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        forward(&mut headers, &peer(), &ids);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-port"], "8080");
        assert_eq!(headers["x-request-id"].len(), 32);

        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        headers.insert("x-request-id", HeaderValue::from_static("abc-123"));
        forward(&mut headers, &peer(), &ids);
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 10.0.0.7");
        assert_eq!(headers["x-request-id"], "abc-123");
    }

    #[test]
    fn generated_request_ids_differ_and_bad_ones_are_replaced() {
        let ids = RequestIds::new(7);
        assert_ne!(ids.generate(), ids.generate());
        assert_eq!(
            RequestIds::new(0x0123_4567_89ab_cdef).generate(),
            "0123456789abcdef0000000000000000"
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("has space"));
        forward(&mut headers, &peer(), &ids);
        assert_ne!(headers["x-request-id"], "has space");
    }

    #[test]
    fn hop_by_hop_headers_go_but_an_upgrade_keeps_its_own() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));

        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("Upgrade"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["upgrade"], "websocket");
    }
}
