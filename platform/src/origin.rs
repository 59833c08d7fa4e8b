//! Which origin a request reached: the platform's (its pages, `/api/v1`, sign-in) or the
//! apps origin, where every app under `/apps/{tenant}/{app}/` is served.
//!
//! An app's JavaScript runs in its viewers' browsers; on the platform's origin it could read
//! the CSRF token and call `/api/v1` with the visitor's cookie. So apps live on another
//! origin that never receives the platform's cookie: one for all tenants
//! (`https://apps.example.org`) or one per tenant (`https://{tenant}.apps.example.org`).
//! This module parses and checks that configuration and tells the origins apart by the
//! request's host; it knows nothing of axum.

use std::net::IpAddr;

use crate::ids::Slug;

/// The placeholder of a per-tenant apps origin.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// A configuration that cannot keep apps apart from the platform.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    /// Not an `http(s)://host[:port]` origin.
    #[error("{what} {value:?} is not an origin: {reason}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// No apps origin, and the public URL is not on loopback (where a default exists).
    #[error(
        "the public URL {public_url} is not a loopback address, so apps need their own origin: \
         set apps_origin (--apps-origin or TESSERA_APPS_ORIGIN), e.g. https://apps.example.org \
         or https://{{tenant}}.apps.example.org, on a host name that is not the public URL's"
    )]
    Missing {
        /// The public URL.
        public_url: String,
    },
    /// The apps origin would share the platform's cookies.
    #[error(
        "apps_origin {apps} shares the host of the public URL {public_url}: cookies do not \
         separate ports, so apps would receive the platform's session cookie"
    )]
    SharedHost {
        /// The apps origin.
        apps: String,
        /// The public URL.
        public_url: String,
    },
}

/// A scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    https: bool,
    /// Lowercase; IPv6 in brackets.
    host: String,
    port: u16,
}

impl Origin {
    fn parse(what: &'static str, value: &str) -> Result<Self, OriginError> {
        let invalid = |reason: &str| OriginError::Invalid {
            what,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(value).map_err(|e| invalid(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("no user name or password"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("only scheme, host and port; no path or query"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            None => return Err(invalid("no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| invalid("no port"))?;
        Ok(Self { https, host, port })
    }

    fn default_port(&self) -> u16 {
        if self.https { 443 } else { 80 }
    }

    fn serialize(&self, host: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        if self.port == self.default_port() {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{}", self.port)
        }
    }

    /// The host of `authority` (a `Host` header value) if its port is this origin's.
    fn host_of<'a>(&self, authority: &'a str) -> Option<&'a str> {
        let (host, port) = split_authority(authority)?;
        (port.unwrap_or(self.default_port()) == self.port).then_some(host)
    }

    fn is_loopback(&self) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// `host[:port]` of a Host header, the host lowercased by the caller's comparison.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    // An IPv6 literal keeps its brackets; its port follows the closing one.
    let (host, port) = match authority.rfind(']') {
        Some(end) => {
            let (host, rest) = authority.split_at(end + 1);
            (host, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host.trim_end_matches('.'), port))
}

/// Where apps are served.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AppsHost {
    /// One host for all tenants.
    Shared(String),
    /// `{tenant}` + this suffix (which starts with `.`): one host per tenant.
    PerTenant(String),
}

/// Which origin a request reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Site {
    /// The platform's own origin (also any host that is not an apps origin).
    Platform,
    /// The apps origin; with the tenant its host names when there is one per tenant.
    Apps(Option<Slug>),
}

impl Site {
    /// May this site serve the apps of `tenant`? A per-tenant origin serves only its own.
    pub fn serves_tenant(&self, tenant: &Slug) -> bool {
        match self {
            Site::Apps(None) => true,
            Site::Apps(Some(own)) => own == tenant,
            Site::Platform => false,
        }
    }
}

/// The platform's origin and the apps origin, checked to be apart.
#[derive(Clone, Debug)]
pub struct Origins {
    platform: Origin,
    apps_scheme: Origin,
    apps_host: AppsHost,
}

impl Origins {
    /// Resolve the configuration: `public_url` is the platform's origin; `apps_origin` is
    /// `scheme://host[:port]` with `{tenant}` as the whole first label of the host for one
    /// origin per tenant. Without it, a loopback public URL gets `{tenant}.localhost` on
    /// its own port (browsers and curl resolve `*.localhost` to loopback); any other is an
    /// error, so an installation never silently serves apps on the platform's origin.
    pub fn resolve(public_url: &str, apps_origin: Option<&str>) -> Result<Self, OriginError> {
        let platform = Origin::parse("public_url", public_url)?;
        let template = match apps_origin.map(str::trim).filter(|a| !a.is_empty()) {
            Some(template) => template.trim_end_matches('/').to_owned(),
            None if platform.is_loopback() => {
                platform.serialize(&format!("{TENANT_PLACEHOLDER}.localhost"))
            }
            None => {
                return Err(OriginError::Missing {
                    public_url: public_url.to_owned(),
                });
            }
        };
        let invalid = |reason: &str| OriginError::Invalid {
            what: "apps_origin",
            value: template.clone(),
            reason: reason.to_owned(),
        };
        let per_tenant = template.contains(TENANT_PLACEHOLDER);
        // Parse with a label in place of the placeholder, then find it again in the host.
        let probe = "tessera-tenant-label";
        let apps = Origin::parse(
            "apps_origin",
            &template.replacen(TENANT_PLACEHOLDER, probe, 1),
        )?;
        if template.matches(TENANT_PLACEHOLDER).count() > 1 || apps.host.contains(['{', '}']) {
            return Err(invalid(
                "{tenant} may appear once, as the first label of the host",
            ));
        }
        let apps_host = if per_tenant {
            let suffix = apps
                .host
                .strip_prefix(probe)
                .filter(|s| s.starts_with('.') && s.len() > 1)
                .ok_or_else(|| invalid("{tenant} must be the whole first label of the host"))?;
            AppsHost::PerTenant(suffix.to_owned())
        } else {
            AppsHost::Shared(apps.host.clone())
        };
        let origins = Self {
            platform,
            apps_scheme: apps,
            apps_host,
        };
        // Cookies ignore ports: the platform's host must never be an apps host.
        let shares = match &origins.apps_host {
            AppsHost::Shared(host) => *host == origins.platform.host,
            AppsHost::PerTenant(_) => origins.tenant_of_host(&origins.platform.host).is_some(),
        };
        if shares {
            return Err(OriginError::SharedHost {
                apps: template,
                public_url: public_url.to_owned(),
            });
        }
        Ok(origins)
    }

    /// The tenant a per-tenant apps host names.
    fn tenant_of_host(&self, host: &str) -> Option<Slug> {
        let AppsHost::PerTenant(suffix) = &self.apps_host else {
            return None;
        };
        let lower = host.to_ascii_lowercase();
        let label = lower.strip_suffix(suffix.as_str())?;
        Slug::parse(label).ok()
    }

    /// Which origin a request with this `Host` reached. The platform's host and any host
    /// that is not an apps origin are the platform (load balancers' health checks use
    /// addresses).
    pub fn classify(&self, authority: Option<&str>) -> Site {
        let Some(host) = authority.and_then(|a| self.apps_scheme.host_of(a)) else {
            return Site::Platform;
        };
        let host = host.to_ascii_lowercase();
        if host == self.platform.host {
            return Site::Platform;
        }
        match &self.apps_host {
            AppsHost::Shared(apps) if *apps == host => Site::Apps(None),
            AppsHost::Shared(_) => Site::Platform,
            AppsHost::PerTenant(_) => self
                .tenant_of_host(&host)
                .map_or(Site::Platform, |t| Site::Apps(Some(t))),
        }
    }

    /// The platform's origin (`https://dash.example.org`), for links back to it.
    pub fn platform_url(&self) -> String {
        self.platform.serialize(&self.platform.host)
    }

    /// The origin serving `tenant`'s apps.
    pub fn apps_url(&self, tenant: &Slug) -> String {
        match &self.apps_host {
            AppsHost::Shared(host) => self.apps_scheme.serialize(host),
            AppsHost::PerTenant(suffix) => self.apps_scheme.serialize(&format!("{tenant}{suffix}")),
        }
    }

    /// The URL of `path` (`/apps/{tenant}/…`) on `tenant`'s apps origin.
    pub fn app_url(&self, tenant: &Slug, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.apps_url(tenant))
    }

    /// Is the apps origin served over HTTPS (its cookies are then `Secure` and `__Host-`)?
    pub fn apps_https(&self) -> bool {
        self.apps_scheme.https
    }

    /// Is the platform served over HTTPS?
    pub fn platform_https(&self) -> bool {
        self.platform.https
    }

    /// A Content-Security-Policy source matching every apps origin (`https://*.apps.example.org`
    /// when there is one per tenant), for the platform's `form-action`: a sign-in form's
    /// redirect continues to the hand-off on the apps origin.
    pub fn apps_csp_source(&self) -> String {
        match &self.apps_host {
            AppsHost::Shared(host) => self.apps_scheme.serialize(host),
            AppsHost::PerTenant(suffix) => self.apps_scheme.serialize(&format!("*{suffix}")),
        }
    }

    /// The origin a request on `site` reached, if it is an apps origin (`https://acme.apps.example.org`).
    pub fn site_url(&self, site: &Site) -> Option<String> {
        match (site, &self.apps_host) {
            (Site::Platform, _) => None,
            (Site::Apps(Some(tenant)), _) => Some(self.apps_url(tenant)),
            (Site::Apps(None), AppsHost::Shared(host)) => Some(self.apps_scheme.serialize(host)),
            (Site::Apps(None), AppsHost::PerTenant(_)) => None,
        }
    }

    /// The Content-Security-Policy of the platform's own pages: scripts only from itself
    /// (the pages have none inline), never framed, forms posting to itself or, through the
    /// sign-in's redirect, to the apps origin's hand-off.
    pub fn platform_csp(&self) -> String {
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self' {}; \
             frame-ancestors 'none'; base-uri 'none'",
            self.apps_csp_source()
        )
    }

    /// The tenant of an app path `/apps/{tenant}/{app}/…` (a local path, nothing else).
    pub fn app_path_tenant(path: &str) -> Option<Slug> {
        let rest = path.strip_prefix("/apps/")?;
        let mut parts = rest.splitn(3, '/');
        let tenant = Slug::parse(parts.next()?).ok()?;
        let app = parts.next()?.split(['?', '#']).next()?;
        Slug::parse(app).ok()?;
        Some(tenant)
    }
}

/// The host a request names: `X-Forwarded-Host` when the peer is one of the trusted
/// proxies (as for `X-Forwarded-Proto`), else `Host` (or the URI's authority, HTTP/2).
pub fn request_host<'a>(
    host: Option<&'a str>,
    forwarded_host: Option<&'a str>,
    peer: Option<IpAddr>,
    trusted_proxies: &[IpAddr],
) -> Option<&'a str> {
    let trusted = peer.is_some_and(|ip| trusted_proxies.contains(&ip));
    match forwarded_host {
        // A chain of proxies appends; the first is what the client asked for.
        Some(forwarded) if trusted => forwarded.split(',').next().map(str::trim),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> Slug {
        Slug::parse(s).expect("slug")
    }

    #[test]
    fn loopback_public_urls_default_to_tenant_dot_localhost() {
        let o = Origins::resolve("http://127.0.0.1:8080", None).expect("resolves");
        assert_eq!(o.apps_url(&slug("demo")), "http://demo.localhost:8080");
        assert_eq!(
            o.classify(Some("demo.localhost:8080")),
            Site::Apps(Some(slug("demo")))
        );
        assert_eq!(o.classify(Some("127.0.0.1:8080")), Site::Platform);
        assert_eq!(o.classify(None), Site::Platform);
        assert_eq!(o.classify(Some("demo.localhost:9999")), Site::Platform);
        let o = Origins::resolve("http://localhost:8080", None).expect("resolves");
        assert_eq!(o.classify(Some("localhost:8080")), Site::Platform);
        assert_eq!(
            o.classify(Some("DEMO.localhost:8080")),
            Site::Apps(Some(slug("demo")))
        );
    }

    #[test]
    fn a_public_host_needs_an_apps_origin() {
        let err = Origins::resolve("https://dash.example.org", None).expect_err("refused");
        assert!(matches!(err, OriginError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("TESSERA_APPS_ORIGIN"), "{err}");
    }

    #[test]
    fn apps_may_not_share_the_platform_host() {
        for (public, apps) in [
            ("https://dash.example.org", "https://dash.example.org"),
            ("https://dash.example.org", "https://dash.example.org:8443"),
            ("https://www.example.org", "https://{tenant}.example.org"),
        ] {
            let err = Origins::resolve(public, Some(apps)).expect_err(apps);
            assert!(
                matches!(err, OriginError::SharedHost { .. }),
                "{apps}: {err}"
            );
        }
        for bad in [
            "https://apps-{tenant}.example.org",
            "https://{tenant}.{tenant}.example.org",
            "https://apps.example.org/x",
            "ftp://apps.example.org",
            "https://{tenant}",
        ] {
            assert!(
                Origins::resolve("https://dash.example.org", Some(bad)).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn per_tenant_hosts_name_their_tenant() {
        let o = Origins::resolve(
            "https://dash.example.org",
            Some("https://{tenant}.apps.example.org"),
        )
        .expect("resolves");
        assert_eq!(o.apps_url(&slug("acme")), "https://acme.apps.example.org");
        assert_eq!(o.apps_csp_source(), "https://*.apps.example.org");
        let acme = o.classify(Some("acme.apps.example.org"));
        assert_eq!(acme, Site::Apps(Some(slug("acme"))));
        assert!(acme.serves_tenant(&slug("acme")));
        assert!(!acme.serves_tenant(&slug("other")));
        assert_eq!(o.classify(Some("acme.apps.example.org:443")), acme);
        assert_eq!(o.classify(Some("a.b.apps.example.org")), Site::Platform);
        assert_eq!(o.classify(Some("dash.example.org")), Site::Platform);
        let shared = Origins::resolve(
            "https://dash.example.org",
            Some("https://apps.example.org/"),
        )
        .expect("resolves");
        assert_eq!(shared.classify(Some("apps.example.org")), Site::Apps(None));
        assert!(Site::Apps(None).serves_tenant(&slug("any")));
        assert!(!Site::Platform.serves_tenant(&slug("any")));
    }

    #[test]
    fn forwarded_host_counts_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        let pick = |peer| request_host(Some("a"), Some("b, c"), Some(peer), &[proxy]);
        assert_eq!(pick(proxy), Some("b"));
        assert_eq!(pick(other), Some("a"));
    }

    #[test]
    fn app_paths_name_their_tenant() {
        assert_eq!(
            Origins::app_path_tenant("/apps/acme/sales/"),
            Some(slug("acme"))
        );
        assert_eq!(
            Origins::app_path_tenant("/apps/acme/sales/x?y=1"),
            Some(slug("acme"))
        );
        assert_eq!(Origins::app_path_tenant("/apps/acme/"), None);
        assert_eq!(Origins::app_path_tenant("/api/v1"), None);
    }
}
