//! The one outbound HTTP client: every request the process makes for a
//! tenant or a plugin (Daraja, a custom Daraja server's certificate,
//! webhooks, …) goes through [`Outbound`].
//!
//! The policy: a URL is `http(s)://host[:port]/…` without user-info and
//! without backslashes; its host is one the operator allows
//! (`MALIPO_OUTBOUND_ALLOW`, `host` or `host:port`, `*` for any; Safaricom's
//! hosts and the built-in emulator are always allowed) or — where the caller
//! may reach the public internet — every address it resolves to is public
//! (not loopback, private, link-local, shared or unspecified). The check is
//! made by the client's resolver at connection time, and the connection goes
//! to the very addresses that were checked, so a name that changes its
//! answer between a check and the connection (DNS rebinding) reaches
//! nothing. Redirects are never followed (a 3xx is answered as it is).
//! Refusals name `MALIPO_OUTBOUND_ALLOW` and never echo what resolution or a
//! connection attempt found.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, RwLock};

/// Hosts reachable by default (Safaricom's Daraja).
pub const DEFAULT_ALLOWED: &[&str] = &["sandbox.safaricom.co.ke", "api.safaricom.co.ke"];

/// Where a request may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Only hosts the operator allows.
    OperatorOnly,
    /// Hosts the operator allows, or any name whose every address is public.
    Public,
}

/// Why a URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OutboundError {
    /// Not an absolute http(s) URL of the accepted form.
    #[error("only absolute http(s) URLs without user-info or backslashes are allowed")]
    Malformed,
    /// The policy refuses the host.
    #[error(
        "host `{host}` is not allowed: {policy}; a loopback, private or unresolvable host is reached \
         only when the operator lists it in MALIPO_OUTBOUND_ALLOW"
    )]
    NotAllowed {
        /// The host as the URL names it.
        host: String,
        /// What this caller may reach.
        policy: &'static str,
    },
}

/// A URL that passed the form check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The parsed URL (what the client requests).
    pub url: url::Url,
    /// The host, normalised (`127.0.0.1` for `127.1`, `[::1]` for IPv6).
    pub host: String,
    /// The port the URL names explicitly.
    pub port: Option<u16>,
}

/// The allow-list shared by the clients' resolvers.
type AllowList = Arc<RwLock<Vec<String>>>;

/// The outbound client and its policy.
pub struct Outbound {
    allowed: AllowList,
    operator_only: ureq::Agent,
    public: ureq::Agent,
}

impl Outbound {
    /// A client allowing Safaricom's hosts plus `extra` (the operator's
    /// list).
    pub fn new(extra: &[String]) -> Self {
        let mut allowed: Vec<String> = DEFAULT_ALLOWED.iter().map(|h| h.to_string()).collect();
        allowed.extend(
            extra
                .iter()
                .map(|h| h.trim().to_lowercase())
                .filter(|h| !h.is_empty()),
        );
        let allowed: AllowList = Arc::new(RwLock::new(allowed));
        let agent = |reach: Reach| {
            let list = Arc::clone(&allowed);
            ureq::AgentBuilder::new()
                .redirects(0)
                .resolver(move |netloc: &str| resolve_checked(&list, reach, netloc))
                .build()
        };
        Self {
            operator_only: agent(Reach::OperatorOnly),
            public: agent(Reach::Public),
            allowed,
        }
    }

    /// A client with the operator's list from `MALIPO_OUTBOUND_ALLOW`.
    pub fn from_env() -> Self {
        let extra: Vec<String> = crate::config::var("MALIPO_OUTBOUND_ALLOW")
            .map(|list| list.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        Self::new(&extra)
    }

    /// Lets requests reach `host` (`name` or `name:port`, e.g. the in-process
    /// emulator's `127.0.0.1:port`).
    pub fn allow_host(&self, host: &str) {
        if let Ok(mut allowed) = self.allowed.write() {
            allowed.push(host.to_lowercase());
        }
    }

    /// Whether the operator allows `host` (`name` or `name:port`).
    pub fn operator_allows(&self, host: &str, port: Option<u16>) -> bool {
        operator_allows(&self.allowed, host, port)
    }

    /// Whether a request to `url` would be allowed: its form, then the
    /// policy on the addresses its host resolves to now. Nothing is sent.
    pub fn check(&self, url: &str, reach: Reach) -> Result<Target, OutboundError> {
        let target = parse(url)?;
        let port = target.url.port_or_known_default().unwrap_or(443);
        // The operator's hosts are allowed whatever they resolve to (and
        // need not resolve from here right now).
        if operator_allows(&self.allowed, &target.host, Some(port)) {
            return Ok(target);
        }
        resolve_checked(&self.allowed, reach, &format!("{}:{port}", target.host))
            .map_err(|_| refused(&target.host, reach))?;
        Ok(target)
    }

    /// A request builder for `url` (form checked; the policy on addresses is
    /// applied when it connects). No redirect is followed.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        reach: Reach,
    ) -> Result<(Target, ureq::Request), OutboundError> {
        let target = parse(url)?;
        let agent = match reach {
            Reach::OperatorOnly => &self.operator_only,
            Reach::Public => &self.public,
        };
        let request = agent.request_url(method, &target.url);
        Ok((target, request))
    }

    /// A request for `url` that connects to `addr` whatever the URL's host
    /// resolves to — only for an address the operator configured (e.g.
    /// `MALIPO_DOMAIN_CHALLENGE_ADDR`); the form check still applies and
    /// no redirect is followed.
    pub fn pinned(
        &self,
        method: &str,
        url: &str,
        addr: std::net::SocketAddr,
    ) -> Result<ureq::Request, OutboundError> {
        let target = parse(url)?;
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .resolver(move |_: &str| Ok(vec![addr]))
            .build();
        Ok(agent.request_url(method, &target.url))
    }

    /// What a failed request says, without echoing what the connection
    /// attempt found (addresses, resolver answers).
    pub fn describe(error: &ureq::Error, host: &str, reach: Reach) -> String {
        match error {
            ureq::Error::Status(status, _) => format!("{host} answered HTTP {status}"),
            ureq::Error::Transport(transport) => match transport.kind() {
                ureq::ErrorKind::Dns => refused(host, reach).to_string(),
                ureq::ErrorKind::ConnectionFailed => format!("could not connect to {host}"),
                ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
                    OutboundError::Malformed.to_string()
                }
                ureq::ErrorKind::TooManyRedirects => format!("{host} answered a redirect"),
                _ => format!("the request to {host} failed or timed out"),
            },
        }
    }
}

fn refused(host: &str, reach: Reach) -> OutboundError {
    OutboundError::NotAllowed {
        host: host.to_string(),
        policy: match reach {
            Reach::Public => "only hosts on public addresses are reached",
            Reach::OperatorOnly => {
                "only Safaricom's hosts and hosts the operator allows are reached"
            }
        },
    }
}

/// The form check: absolute http(s), no user-info, no backslash, no
/// whitespace or control characters; the host normalised by the URL parser
/// (so `127.1`, `0x7f000001` and `2130706433` are all `127.0.0.1`).
pub fn parse(raw: &str) -> Result<Target, OutboundError> {
    if raw.contains('\\') || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(OutboundError::Malformed);
    }
    let url = url::Url::parse(raw).map_err(|_| OutboundError::Malformed)?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(OutboundError::Malformed);
    }
    // A raw `@` before the path is user-info even when the parser read it
    // otherwise.
    let authority = raw
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    if authority.contains('@') {
        return Err(OutboundError::Malformed);
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => name.to_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(OutboundError::Malformed),
    };
    let port = url.port();
    Ok(Target { url, host, port })
}

fn operator_allows(allowed: &RwLock<Vec<String>>, host: &str, port: Option<u16>) -> bool {
    let host = host.to_lowercase();
    let with_port = port.map(|p| format!("{host}:{p}"));
    allowed.read().is_ok_and(|allowed| {
        allowed
            .iter()
            .any(|a| a == "*" || *a == host || Some(a) == with_port.as_ref())
    })
}

/// The clients' resolver: the operator's hosts resolve as usual; otherwise
/// (for [`Reach::Public`]) the name must resolve, and only to public
/// addresses, which are then the only ones connected to.
fn resolve_checked(
    allowed: &RwLock<Vec<String>>,
    reach: Reach,
    netloc: &str,
) -> io::Result<Vec<SocketAddr>> {
    let denied = || io::Error::new(io::ErrorKind::PermissionDenied, "refused by the policy");
    let (host, port) = netloc.rsplit_once(':').ok_or_else(denied)?;
    let port: u16 = port.parse().map_err(|_| denied())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if operator_allows(allowed, host, Some(port)) {
        return (bare, port).to_socket_addrs().map(Iterator::collect);
    }
    if reach == Reach::OperatorOnly {
        return Err(denied());
    }
    let addresses: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|_| denied())?
        .collect();
    if addresses.is_empty() || !addresses.iter().all(|a| is_public(a.ip())) {
        return Err(denied());
    }
    Ok(addresses)
}

/// Whether an address is one the open internet routes to (not loopback,
/// private, link-local, shared, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            let first = segments[0];
            // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) forms.
            if segments[..6].iter().all(|s| *s == 0) || (first == 0x64 && segments[1] == 0xff9b) {
                let [_, _, _, _, _, _, hi, lo] = segments;
                let v4 = std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    (hi & 0xff) as u8,
                    (lo >> 8) as u8,
                    (lo & 0xff) as u8,
                );
                return !v6.is_loopback() && !v6.is_unspecified() && is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && segments[1] == 0x0db8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_in_every_spelling_is_one_host() {
        for url in [
            "http://127.0.0.1/x",
            "http://127.1/x",
            "http://0x7f000001/x",
            "http://2130706433/x",
            "http://0177.0.0.1/x",
        ] {
            assert_eq!(parse(url).expect(url).host, "127.0.0.1", "{url}");
        }
        assert_eq!(parse("http://[::1]:8/").expect("v6").host, "[::1]");
    }

    #[test]
    fn user_info_backslashes_and_other_schemes_are_malformed() {
        for url in [
            "http://evil@127.0.0.1/",
            "http://a:b@example.com/",
            "http://example.com\\@127.0.0.1/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://exa mple.com/",
            "/relative",
        ] {
            assert_eq!(parse(url), Err(OutboundError::Malformed), "{url}");
        }
    }

    #[test]
    fn loopback_private_and_unspecified_are_refused_unless_listed() {
        let outbound = Outbound::new(&["127.0.0.1:9".to_string()]);
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.1:8080/",
            "http://0x7f000001:8080/",
            "http://2130706433:8080/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://localhost:8080/",
            "http://0.0.0.0:8080/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let error = outbound.check(url, Reach::Public).expect_err(url);
            assert!(
                error.to_string().contains("MALIPO_OUTBOUND_ALLOW"),
                "{error}"
            );
        }
        assert!(outbound.check("http://127.0.0.1:9/", Reach::Public).is_ok());
        assert!(
            outbound
                .check("http://127.0.0.1:9/", Reach::OperatorOnly)
                .is_ok()
        );
        assert!(
            outbound
                .check("https://sandbox.safaricom.co.ke/", Reach::OperatorOnly)
                .is_ok()
        );
        assert!(
            outbound
                .check("http://8.8.8.8/", Reach::OperatorOnly)
                .is_err()
        );
        assert!(outbound.check("http://8.8.8.8/", Reach::Public).is_ok());
    }

    #[test]
    fn private_and_loopback_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.5.5",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            let ip: IpAddr = private.parse().expect("ip");
            assert!(!is_public(ip), "{private}");
        }
        for public in ["8.8.8.8", "41.90.1.1", "2606:4700::1111"] {
            let ip: IpAddr = public.parse().expect("ip");
            assert!(is_public(ip), "{public}");
        }
    }
}
