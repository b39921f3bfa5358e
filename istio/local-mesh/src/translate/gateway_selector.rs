//! Which Istio `Gateway`s apply to the local mesh's one ingress gateway.
//!
//! istiod gives a Gateway to every gateway proxy whose pod labels its
//! `selector` is a subset of, and to every gateway proxy when it has no
//! selector (`pilot/pkg/model/push_context.go`, `mergeGateways`); a Gateway
//! whose selector picks no proxy applies to none, and the VirtualServices
//! bound to it do nothing there. The local gateway plays the ingress gateway
//! of either standard install, so it carries the labels of both: `istioctl
//! install` (`app: istio-ingressgateway`, `istio: ingressgateway`) and the
//! `istio/gateway` Helm chart installed as `istio-ingress`, as Istio's guide
//! names it (`app: istio-ingress`, `istio: ingress`:
//! `manifests/charts/gateway/templates/_helpers.tpl`, `gateway.selectorLabels`).
//! Two Gateways selecting the two installs would be two proxies in a
//! cluster; the local mesh has one, so that mix is refused rather than
//! merged onto one listener.

use std::collections::BTreeMap;

use super::MeshError;

/// The pod labels of the gateway each standard install runs.
const INSTALLS: &[(&str, &[(&str, &str)])] = &[
    (
        "istioctl install",
        &[("app", "istio-ingressgateway"), ("istio", "ingressgateway")],
    ),
    (
        "the istio/gateway Helm chart (release istio-ingress)",
        &[("app", "istio-ingress"), ("istio", "ingress")],
    ),
];

/// Which install's gateway a selector picks: `Some(Some(i))` one install's
/// (`INSTALLS[i]`), `Some(None)` any (no selector), `None` neither.
fn picks(selector: &BTreeMap<String, String>) -> Option<Option<usize>> {
    if selector.is_empty() {
        return Some(None);
    }
    INSTALLS
        .iter()
        .position(|(_, labels)| {
            selector
                .iter()
                .all(|(key, value)| labels.iter().any(|(k, v)| k == key && v == value))
        })
        .map(Some)
}

fn labels_of(install: usize) -> String {
    INSTALLS[install]
        .1
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// For each Gateway (its resource name and `spec.selector`, in order):
/// whether it applies to the local gateway. A Gateway that selects no proxy
/// gets a warning; Gateways selecting the gateways of both installs are
/// refused.
pub(crate) fn applying(
    gateways: &[(&str, &BTreeMap<String, String>)],
    warnings: &mut Vec<String>,
) -> Result<Vec<bool>, MeshError> {
    let mut chosen: Option<(usize, &str)> = None;
    let mut out = Vec::with_capacity(gateways.len());
    for (resource, selector) in gateways {
        match picks(selector) {
            None => {
                let written: Vec<String> =
                    selector.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                warnings.push(format!(
                    "{resource}: spec.selector {{{}}} selects no gateway of the local mesh (it plays the ingress gateway of {} ({}) and of {} ({})): the Gateway applies to no proxy, as in a cluster without such a gateway",
                    written.join(", "),
                    INSTALLS[0].0,
                    labels_of(0),
                    INSTALLS[1].0,
                    labels_of(1),
                ));
                out.push(false);
            }
            Some(install) => {
                if let Some(install) = install {
                    match chosen {
                        Some((other, other_resource)) if other != install => {
                            return Err(MeshError::Unsupported {
                                resource: (*resource).to_string(),
                                message: format!(
                                    "spec.selector picks the gateway of {} ({}), {other_resource} the one of {} ({}): two gateway proxies in a cluster, and the local mesh has one; select one of them in every Gateway",
                                    INSTALLS[install].0,
                                    labels_of(install),
                                    INSTALLS[other].0,
                                    labels_of(other),
                                ),
                            });
                        }
                        Some(_) => {}
                        None => chosen = Some((install, resource)),
                    }
                }
                out.push(true);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn both_installs_and_no_selector_pick_the_local_gateway() {
        let istioctl = selector(&[("istio", "ingressgateway")]);
        let helm = selector(&[("istio", "ingress")]);
        let helm_app = selector(&[("app", "istio-ingress"), ("istio", "ingress")]);
        let none = selector(&[]);
        let mut warnings = Vec::new();
        assert_eq!(
            applying(
                &[("Gateway/a", &istioctl), ("Gateway/b", &none)],
                &mut warnings
            )
            .unwrap(),
            [true, true]
        );
        assert_eq!(
            applying(
                &[("Gateway/a", &helm), ("Gateway/b", &helm_app)],
                &mut warnings
            )
            .unwrap(),
            [true, true]
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_selector_of_no_gateway_applies_to_none_with_a_warning() {
        let other = selector(&[("istio", "egressgateway")]);
        let mixed = selector(&[("istio", "ingress"), ("app", "istio-ingressgateway")]);
        let mut warnings = Vec::new();
        assert_eq!(
            applying(
                &[("Gateway/e", &other), ("Gateway/m", &mixed)],
                &mut warnings
            )
            .unwrap(),
            [false, false]
        );
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0]
                .starts_with("Gateway/e: spec.selector {istio: egressgateway} selects no gateway"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn two_installs_at_once_are_refused() {
        let istioctl = selector(&[("istio", "ingressgateway")]);
        let helm = selector(&[("istio", "ingress")]);
        let error = applying(
            &[("Gateway/a", &istioctl), ("Gateway/b", &helm)],
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with(
                "Gateway/b: spec.selector picks the gateway of the istio/gateway Helm chart"
            ),
            "{error}"
        );
    }
}
