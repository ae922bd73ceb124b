//! Who may drive the host from a browser, checked before a request has any
//! effect (before its body is read, a plugin runs or a run starts).
//!
//! Two rules, for every transport:
//! - **A server bound to loopback serves only requests addressed to loopback
//!   names** (`localhost`, `*.localhost`, `127.0.0.1`, `[::1]` and the
//!   address it is bound to), unless `--allowed-hosts` names others. A page
//!   on `evil.example` whose name the attacker re-points at 127.0.0.1 (DNS
//!   rebinding) sends `Host: evil.example`, and is refused.
//! - **A cross-origin call that CORS would not allow is refused, not only
//!   left unreadable.** A browser sends `Origin` with every cross-origin
//!   `POST`, `PUT` or `DELETE`, including the "simple" ones it sends without
//!   a preflight (a `text/plain` body, a form): such a call from an origin
//!   that `--cors-origins` does not name, and that is not the host's own,
//!   is answered `403 origin_not_allowed` before it starts a model call. A
//!   browser's request with no `Origin` but a `Sec-Fetch-Site` of
//!   `cross-site` or `same-site` is refused the same way.
//!
//! Clients that are not browsers (curl, the SDKs, the seeds' clients) send
//! neither header and are not affected. This is the check the CORS
//! specification leaves to servers; tower-http's layer only adds the
//! headers a browser reads.

use axum::http::HeaderMap;

use crate::error_code::{ErrorCode, ErrorReply};

/// The hosts and browser origins a server answers.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `None`: any `Host`; else the host names (lower case, no port) it
    /// answers, where `*.name` stands for every name below `name`.
    hosts: Option<Vec<String>>,
    /// Whether any origin may call (`--cors-origins '*'`).
    any_origin: bool,
    /// The origins that may call besides the host's own, as
    /// `scheme://host[:port]`, lower case.
    origins: Vec<String>,
}

/// The names that always mean this machine (`*.localhost` too: browsers
/// resolve it to loopback themselves, RFC 6761).
const LOOPBACK_NAMES: [&str; 4] = ["localhost", "*.localhost", "127.0.0.1", "[::1]"];

impl OriginPolicy {
    /// The policy of a server bound to `listen`: `allowed_hosts` given
    /// (`*` for any) wins; else a loopback address answers loopback names
    /// only, and any other address any host. `cors_origins` as
    /// `--cors-origins` has them.
    pub fn new(listen: Option<std::net::SocketAddr>, allowed_hosts: &[String], cors_origins: &[String]) -> Self {
        let hosts = if allowed_hosts.iter().any(|host| host == "*") {
            None
        } else if !allowed_hosts.is_empty() {
            Some(allowed_hosts.iter().map(|host| host.trim().to_ascii_lowercase()).collect())
        } else {
            match listen {
                Some(address) if address.ip().is_loopback() => {
                    let bound = match address.ip() {
                        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                        ip => ip.to_string(),
                    };
                    let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(ToString::to_string).collect();
                    if !names.contains(&bound) {
                        names.push(bound);
                    }
                    Some(names)
                }
                _ => None,
            }
        };
        Self {
            hosts,
            any_origin: cors_origins.iter().any(|origin| origin == "*"),
            origins: cors_origins.iter().map(|origin| origin.trim_end_matches('/').to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a request with `headers`, and the authority of its target
    /// where it was sent in absolute form (`POST http://name/…`, which wins
    /// over `Host`, RFC 9112 §3.2.2), may go on; the refusal otherwise.
    pub fn check(&self, target_authority: Option<&str>, headers: &HeaderMap) -> Result<(), ErrorReply> {
        let host = target_authority.or_else(|| header(headers, "host"));
        if let Some(hosts) = &self.hosts {
            self.check_host(hosts, host, headers)?;
        }
        match header(headers, "origin") {
            Some(origin) if !self.origin_allowed(origin, host) => Err(ErrorReply::new(
                ErrorCode::OriginNotAllowed,
                format!("a page on `{origin}` may not call this host (--cors-origins does not name it)"),
            )),
            None if !self.any_origin
                && matches!(header(headers, "sec-fetch-site"), Some("cross-site" | "same-site")) =>
            {
                Err(ErrorReply::new(
                    ErrorCode::OriginNotAllowed,
                    "a page on another site may not call this host (--cors-origins does not name it)",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a request whose host is not one of `hosts`: also one with no
    /// host, two `Host` headers, or one that is not a host name and port.
    fn check_host(&self, hosts: &[String], host: Option<&str>, headers: &HeaderMap) -> Result<(), ErrorReply> {
        let one_header = headers.get_all("host").iter().count() <= 1;
        let name = host.filter(|_| one_header).and_then(host_name);
        if name.is_some_and(|name| hosts.iter().any(|allowed| host_matches(allowed, &name))) {
            return Ok(());
        }
        let given = match (host, one_header) {
            (_, false) => "two `Host` headers".to_string(),
            (Some(host), true) => format!("`Host: {}`", crate::log_text::escaped(host)),
            (None, true) => "a request without a `Host`".to_string(),
        };
        let message = format!(
            "this server answers only requests addressed to {}; {given} is none of them \
             (start it with --allowed-hosts to add names)",
            hosts.join(", ")
        );
        Err(ErrorReply::new(ErrorCode::HostNotAllowed, message))
    }

    /// Whether a page on `origin` may call: the host's own origin (`http://`
    /// and the same `host:port` as the request's; `serve` speaks plain
    /// HTTP), or one `--cors-origins` names.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let own = host.is_some_and(|host| origin == format!("http://{}", host.to_ascii_lowercase()));
        own || self.any_origin || self.origins.contains(&origin)
    }
}

/// Whether host name `name` is `allowed`, or below it where `allowed` is
/// `*.parent`.
fn host_matches(allowed: &str, name: &str) -> bool {
    match allowed.strip_prefix('*') {
        Some(suffix) => name.ends_with(suffix) && name.len() > suffix.len(),
        None => allowed == name,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `Host` without its port, lower case (`[::1]:9000` -> `[::1]`); none
/// where it is not a host and an optional port of digits
/// (`[::1].evil.example`, `localhost:evil.example`, `a@b`).
fn host_name(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => {
            let (address, rest) = bracketed.split_once(']')?;
            (format!("[{address}]"), rest.strip_prefix(':').or(Some(rest).filter(|rest| rest.is_empty()))?)
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name.to_string(), port),
            None => (host.clone(), ""),
        },
    };
    let port_ok = port.chars().all(|char| char.is_ascii_digit());
    let name_ok = !name.is_empty()
        && (name.starts_with('[') || name.chars().all(|char| char.is_ascii_alphanumeric() || "-._".contains(char)));
    (port_ok && name_ok).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (axum::http::HeaderName::from_static(name), value.parse().unwrap())).collect()
    }

    fn loopback(cors: &[&str]) -> OriginPolicy {
        let cors: Vec<String> = cors.iter().map(ToString::to_string).collect();
        OriginPolicy::new(Some("127.0.0.1:9000".parse().unwrap()), &[], &cors)
    }

    fn code(result: Result<(), ErrorReply>) -> Option<String> {
        result.err().map(|reply| format!("{} {}", reply.status, reply.code))
    }

    #[test]
    fn a_loopback_server_answers_loopback_names_only() {
        let policy = loopback(&[]);
        for host in ["localhost:9000", "127.0.0.1:9000", "[::1]:9000", "LOCALHOST", "app.localhost:9000", "127.0.0.1"] {
            assert_eq!(code(policy.check(None, &headers(&[("host", host)]))), None, "{host}");
        }
        for host in [
            "evil.example:9000",
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example:9000",
            "10.0.0.1:9000",
        ] {
            assert_eq!(
                code(policy.check(None, &headers(&[("host", host)]))),
                Some("403 host_not_allowed".into()),
                "{host}"
            );
        }
    }

    #[test]
    fn a_host_that_is_not_a_name_and_a_port_is_refused() {
        let policy = loopback(&[]);
        for host in [
            "[::1].evil.example",
            "[::1]@evil.example",
            "localhost:evil.example",
            "localhost@evil.example",
            "[::1]x",
            "",
        ] {
            assert_eq!(
                code(policy.check(None, &headers(&[("host", host)]))),
                Some("403 host_not_allowed".into()),
                "{host}"
            );
        }
        assert_eq!(code(policy.check(None, &HeaderMap::new())), Some("403 host_not_allowed".into()), "no Host");
        let mut two = headers(&[("host", "localhost:9000")]);
        two.append("host", "evil.example".parse().unwrap());
        assert_eq!(code(policy.check(None, &two)), Some("403 host_not_allowed".into()), "two Host headers");
        // The absolute form's authority wins over `Host`.
        let local = headers(&[("host", "localhost:9000")]);
        assert_eq!(code(policy.check(Some("evil.example"), &local)), Some("403 host_not_allowed".into()));
        assert_eq!(code(policy.check(Some("127.0.0.1:9000"), &local)), None);
    }

    #[test]
    fn allowed_hosts_and_other_addresses_are_told_apart() {
        let named = OriginPolicy::new(Some("127.0.0.1:9000".parse().unwrap()), &["dev.example".into()], &[]);
        assert_eq!(code(named.check(None, &headers(&[("host", "dev.example:9000")]))), None);
        assert!(named.check(None, &headers(&[("host", "localhost:9000")])).is_err());
        let wildcard = OriginPolicy::new(None, &["*.dev.example".into()], &[]);
        assert_eq!(code(wildcard.check(None, &headers(&[("host", "a.dev.example")]))), None);
        assert!(wildcard.check(None, &headers(&[("host", "dev.example")])).is_err());
        assert!(wildcard.check(None, &headers(&[("host", "evil-dev.example")])).is_err());
        let any = OriginPolicy::new(Some("127.0.0.1:9000".parse().unwrap()), &["*".into()], &[]);
        assert_eq!(code(any.check(None, &headers(&[("host", "evil.example")]))), None);
        let network = OriginPolicy::new(Some("0.0.0.0:9000".parse().unwrap()), &[], &[]);
        assert_eq!(code(network.check(None, &headers(&[("host", "api.example.com")]))), None);
        let ipv6 = OriginPolicy::new(Some("[::1]:9000".parse().unwrap()), &[], &[]);
        assert_eq!(code(ipv6.check(None, &headers(&[("host", "[::1]:9000")]))), None);
    }

    #[test]
    fn a_cross_origin_call_is_refused_unless_cors_names_its_origin() {
        let policy = loopback(&["https://app.example.com/"]);
        let call = |origin: &str| code(policy.check(None, &headers(&[("host", "127.0.0.1:9000"), ("origin", origin)])));
        assert_eq!(call("http://127.0.0.1:9000"), None, "the host's own page");
        assert_eq!(call("https://app.example.com"), None);
        assert_eq!(call("https://APP.example.com"), None);
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:9001",
            "http://localhost:9000",
            "https://127.0.0.1:9000",
            "ws://127.0.0.1:9000",
            "evil://127.0.0.1:9000",
        ] {
            assert_eq!(call(origin), Some("403 origin_not_allowed".into()), "{origin}");
        }
        let cross_site = headers(&[("host", "127.0.0.1:9000"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(code(policy.check(None, &cross_site)), Some("403 origin_not_allowed".into()));
        let same_origin = headers(&[("host", "127.0.0.1:9000"), ("sec-fetch-site", "same-origin")]);
        assert_eq!(code(policy.check(None, &same_origin)), None);
        assert_eq!(code(policy.check(None, &headers(&[("host", "127.0.0.1:9000")]))), None, "curl sends neither");
        let anyone = loopback(&["*"]);
        assert_eq!(
            code(anyone.check(None, &headers(&[("host", "127.0.0.1:9000"), ("origin", "https://x.example")]))),
            None
        );
    }
}
