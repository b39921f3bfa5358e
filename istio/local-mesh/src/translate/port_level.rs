//! DestinationRule `trafficPolicy.portLevelSettings`, as istiod applies them.
//!
//! istiod builds one cluster per Service port, and for a port named in
//! `portLevelSettings` that setting *replaces* the rule's load balancer,
//! connection pool and outlier detection, each taken from the setting or
//! left at Istio's default, never inherited; the rule's retry budget is not
//! carried over either (`pilot/pkg/networking/util/util.go`,
//! `GetPortLevelTrafficPolicy` and `shadowCopyPortTrafficPolicy`). A
//! subset's own port-level setting then replaces all three of the result
//! again, where a subset's plain policy replaces only the parts it sets
//! (`MergeSubsetTrafficPolicy`, `mergeTrafficPolicy`; used by
//! `pilot/pkg/networking/core/cluster_builder.go`). Routes hash by a port's
//! consistent hash only when their destination names that port
//! (`pilot/pkg/networking/core/route/route.go`, `HashForHTTPDestination`,
//! `portLevelSettingsConsistentHash`); a Service's default route uses its
//! port's (`HashForService`).
//!
//! The local mesh has one cluster per Service (its workloads serve one
//! port), so it can follow a setting only for a Service with one port, or
//! for a port the Service does not have (the setting then applies to
//! nothing, with a warning); a setting for one of several ports is refused.

use super::MeshError;
use super::model::{ConsistentHash, DestinationRuleSpec, PortTrafficPolicy, TrafficPolicy};

/// The setting of `settings` for `port`, the first that names it (as istiod
/// takes the first).
fn setting_for(settings: &[PortTrafficPolicy], port: Option<u32>) -> Option<&PortTrafficPolicy> {
    let port = port?;
    settings
        .iter()
        .find(|s| s.port.as_ref().and_then(|p| p.number) == Some(port))
}

fn shadow_copy(setting: &PortTrafficPolicy) -> TrafficPolicy {
    TrafficPolicy {
        load_balancer: setting.load_balancer.clone(),
        connection_pool: setting.connection_pool.clone(),
        outlier_detection: setting.outlier_detection.clone(),
        retry_budget: None,
        port_level_settings: Vec::new(),
    }
}

/// The rule's policy for the cluster of `port` (`None`: no port-level
/// setting can apply).
pub(crate) fn at_port(policy: &TrafficPolicy, port: Option<u32>) -> TrafficPolicy {
    match setting_for(&policy.port_level_settings, port) {
        Some(setting) => shadow_copy(setting),
        None => {
            let mut plain = policy.clone();
            plain.port_level_settings.clear();
            plain
        }
    }
}

/// A subset's cluster: `rule_at_port` ([`at_port`] of the rule's policy)
/// with the subset's policy over it.
pub(crate) fn subset_at_port(
    rule_at_port: &TrafficPolicy,
    subset: Option<&TrafficPolicy>,
    port: Option<u32>,
) -> TrafficPolicy {
    let Some(subset) = subset else {
        return rule_at_port.clone();
    };
    match setting_for(&subset.port_level_settings, port) {
        Some(setting) => {
            let own = shadow_copy(setting);
            let mut merged = rule_at_port.clone();
            merged.load_balancer = own.load_balancer;
            merged.connection_pool = own.connection_pool;
            merged.outlier_detection = own.outlier_detection;
            merged
        }
        None => rule_at_port.overridden_by(Some(&at_port(subset, None))),
    }
}

/// The consistent hash of a route to the rule's Service (`subset`: one of
/// its subsets) whose destination names `port`, in istiod's order: the
/// subset's port-level hash, the subset's, the rule's port-level hash, the
/// rule's.
pub(crate) fn hash_for<'a>(
    rule: &'a DestinationRuleSpec,
    subset: Option<&str>,
    port: Option<u32>,
) -> Option<&'a ConsistentHash> {
    let hash_of = |policy: Option<&'a TrafficPolicy>| {
        policy
            .and_then(|p| p.load_balancer.as_ref())
            .and_then(|lb| lb.consistent_hash.as_ref())
    };
    let port_hash_of = |policy: Option<&'a TrafficPolicy>| {
        policy
            .and_then(|p| setting_for(&p.port_level_settings, port))
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.consistent_hash.as_ref())
    };
    let rule_policy = rule.traffic_policy.as_ref();
    let subset_policy = subset.and_then(|name| {
        rule.subsets
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.traffic_policy.as_ref())
    });
    port_hash_of(subset_policy)
        .or_else(|| hash_of(subset_policy))
        .or_else(|| port_hash_of(rule_policy))
        .or_else(|| hash_of(rule_policy))
}

/// The port of the Service's one cluster that port-level settings are read
/// for: `ports` are the Service's (`None` when no Service document declares
/// them). `None` when no setting can apply; settings for a port the Service
/// lacks are reported in `warnings`; a setting for one of several ports, or
/// any setting when the ports are unknown, is refused.
pub(crate) fn cluster_port(
    resource: &str,
    rule: &DestinationRuleSpec,
    ports: Option<&[u32]>,
    warnings: &mut Vec<String>,
) -> Result<Option<u32>, MeshError> {
    let mut policies = vec![(
        "spec.trafficPolicy".to_string(),
        rule.traffic_policy.as_ref(),
    )];
    for (i, subset) in rule.subsets.iter().enumerate() {
        policies.push((
            format!("spec.subsets[{i}].trafficPolicy"),
            subset.traffic_policy.as_ref(),
        ));
    }
    let mut settings = Vec::new();
    for (path, policy) in policies {
        for (i, setting) in policy
            .into_iter()
            .flat_map(|p| p.port_level_settings.iter())
            .enumerate()
        {
            settings.push((format!("{path}.portLevelSettings[{i}]"), setting));
        }
    }
    if settings.is_empty() {
        return Ok(None);
    }
    let mut numbers = Vec::new();
    for (path, setting) in &settings {
        match setting.port.as_ref().and_then(|p| p.number) {
            Some(number) => numbers.push((path, number)),
            None => {
                return Err(MeshError::Invalid {
                    resource: resource.to_string(),
                    message: format!("{path}.port.number is required"),
                });
            }
        }
    }
    let Some(ports) = ports else {
        return Err(MeshError::Unsupported {
            resource: resource.to_string(),
            message: format!(
                "{}: the local mesh needs the ports of Service {} to know which port a setting is for; apply the Service with the rule",
                numbers[0].0, rule.host
            ),
        });
    };
    if let [only] = ports {
        for (path, number) in &numbers {
            if number != only {
                warnings.push(format!(
                    "{resource}: {path}: Service {} has no port {number} (its port: {only}): the setting applies to nothing",
                    rule.host
                ));
            }
        }
        return Ok(Some(*only));
    }
    if let Some((path, number)) = numbers.iter().find(|(_, n)| ports.contains(n)) {
        return Err(MeshError::Unsupported {
            resource: resource.to_string(),
            message: format!(
                "{path}: Service {} has ports {ports:?} and the local mesh has one cluster for all of them, so a setting for port {number} alone cannot be kept to it",
                rule.host
            ),
        });
    }
    for (path, number) in &numbers {
        warnings.push(format!(
            "{resource}: {path}: Service {} has no port {number} (its ports: {ports:?}): the setting applies to nothing",
            rule.host
        ));
    }
    Ok(None)
}
