//! Host names as istiod reads them.
//!
//! istiod resolves every host of a VirtualService, DestinationRule or
//! destination before matching it to a Service (`pilot/pkg/model/config.go`,
//! `ResolveShortnameToFQDN`): a name without a dot is a Service of the
//! resource's own namespace (`reviews` in `staging` is
//! `reviews.staging.svc.cluster.local`); a name with a dot, `*` and an IP
//! address are taken as written. A Service is known by its FQDN
//! `name.namespace.svc.cluster.local` only, so `httpbin.org` or `reviews.prod`
//! never stand for `httpbin` or `reviews`: they are hosts outside the
//! registry (`separateVSHostsAndServices` in
//! `pilot/pkg/networking/core/route/route.go` keeps them apart).

use std::fmt;

/// The namespace of a resource without `metadata.namespace`, as `kubectl
/// apply` without `-n` stores it.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// The cluster's DNS domain (`meshConfig` default).
const DOMAIN: &str = "cluster.local";

/// A Kubernetes Service (name and namespace), or a host of a ServiceEntry
/// (`name` is the host, `namespace` the entry's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ServiceKey {
    pub name: String,
    pub namespace: String,
    /// A ServiceEntry's host: known by `name` as written, not by a
    /// Kubernetes FQDN.
    pub entry: bool,
}

impl ServiceKey {
    pub fn new(name: &str, namespace: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            entry: false,
        }
    }

    /// A ServiceEntry's `host` (lower case), declared in `namespace`.
    pub fn entry(host: &str, namespace: &str) -> Self {
        Self {
            name: host.to_string(),
            namespace: namespace.to_string(),
            entry: true,
        }
    }

    pub fn fqdn(&self) -> String {
        if self.entry {
            return self.name.clone();
        }
        fqdn(&self.name, &self.namespace)
    }

    /// The listener's stat prefix part: `section-1.airport` → `section_1_airport`.
    pub fn stat_name(&self) -> String {
        self.to_string().replace(['-', '.'], "_")
    }
}

/// `name.namespace`: the key of a Service in the translator's maps; a
/// ServiceEntry's host as written.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry {
            return f.write_str(&self.name);
        }
        write!(f, "{}.{}", self.name, self.namespace)
    }
}

/// A Service's fully qualified name: `name.namespace.svc.cluster.local`.
pub fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.{DOMAIN}")
}

/// `host` as istiod resolves it for a resource in `namespace`: lower case,
/// a name without a dot completed to the Service FQDN in that namespace,
/// anything else as written.
pub fn resolve(host: &str, namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host == "*" || host.contains('.') || host.contains(':') || host.is_empty() {
        return host;
    }
    fqdn(&host, namespace)
}

/// Why `host`, in a resource of `namespace`, is no Service: what to write
/// instead.
pub(crate) fn no_service_hint(host: &str, namespace: &str) -> String {
    let resolved = resolve(host, namespace);
    if !host.contains('.') {
        format!("no Service {host} in namespace {namespace}, the resource's own")
    } else if let Some(service) = resolved.strip_suffix(".svc.cluster.local") {
        let (name, namespace) = service.split_once('.').unwrap_or((service, ""));
        format!("no Service {name} in namespace {namespace}")
    } else {
        "Istio takes a name with a dot as written, so a Service is `name` or \
         `name.namespace.svc.cluster.local`; other hosts need a ServiceEntry"
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_services_of_the_resources_namespace() {
        assert_eq!(
            resolve("reviews", "staging"),
            "reviews.staging.svc.cluster.local"
        );
        assert_eq!(resolve("Reviews", "prod"), "reviews.prod.svc.cluster.local");
    }

    #[test]
    fn names_with_a_dot_are_taken_as_written() {
        assert_eq!(
            resolve("reviews.prod.svc.cluster.local", "staging"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(resolve("httpbin.org", "airport"), "httpbin.org");
        assert_eq!(resolve("reviews.prod", "staging"), "reviews.prod");
        assert_eq!(resolve("*", "airport"), "*");
        assert_eq!(resolve("10.0.0.1", "airport"), "10.0.0.1");
    }

    #[test]
    fn keys_name_the_service_and_its_namespace() {
        let key = ServiceKey::new("section-1", "airport");
        assert_eq!(key.to_string(), "section-1.airport");
        assert_eq!(key.stat_name(), "section_1_airport");
        assert_eq!(key.fqdn(), "section-1.airport.svc.cluster.local");
    }
}
