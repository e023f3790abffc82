//! The client's address, for the per-address sign-in limit.
//!
//! It is the TCP peer, unless `TRUST_PROXY` says a reverse proxy is in front: then every
//! request comes from the proxy, and the client is the first `X-Forwarded-For` hop (the
//! setting must only be on behind a proxy that sets that header, or clients could pick their
//! own address).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

/// The address to count failures under; `"unknown"` when the server was not given the peer
/// (the in-process tests drive the router without a socket).
pub fn address(parts: &Parts, trust_proxy: bool) -> String {
    if trust_proxy
        && let Some(ip) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
    {
        return ip.to_string();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(xff: Option<&str>, peer: Option<&str>) -> Parts {
        let mut b = Request::builder();
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        let (mut p, ()) = b.body(()).unwrap().into_parts();
        if let Some(peer) = peer {
            p.extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        p
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let p = parts(Some("203.0.113.7, 10.0.0.1"), Some("127.0.0.1:5000"));
        assert_eq!(address(&p, false), "127.0.0.1");
        assert_eq!(address(&p, true), "203.0.113.7");
        let p = parts(Some("not-an-ip"), Some("127.0.0.2:1"));
        assert_eq!(address(&p, true), "127.0.0.2");
        assert_eq!(address(&parts(None, None), true), "unknown");
    }
}
