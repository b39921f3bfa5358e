#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Mutually exclusive fields, which Istio's CRDs encode as `oneOf` with a
//! `not: {anyOf: [{required: ...}]}` branch for "none of them".

mod common;

use common::{assert_valid, single_violation, violations, virtual_service_with_fault};
use istio_manifests::ViolationKind;

#[test]
fn delay_cannot_be_both_fixed_and_exponential() {
    let yaml = virtual_service_with_fault(
        "      delay:
        percentage:
          value: 100
        fixedDelay: 10s
        exponentialDelay: 1s",
    );
    let kind = single_violation(&yaml, "spec.http[0].fault.delay");
    assert_eq!(
        kind,
        ViolationKind::OneOfManyMatched {
            matched: vec!["has fixedDelay".into(), "has exponentialDelay".into()]
        }
    );
    assert_eq!(
        violations(&yaml)[0].to_string(),
        "spec.http[0].fault.delay: matches 2 oneOf alternatives (has fixedDelay; has exponentialDelay), exactly one is allowed"
    );
}

#[test]
fn one_or_none_of_the_exclusive_fields_is_fine() {
    assert_valid(&virtual_service_with_fault(
        "      delay:
        fixedDelay: 10s",
    ));
    assert_valid(&virtual_service_with_fault(
        "      delay:
        exponentialDelay: 1s",
    ));
    // Neither: the `not` branch of the oneOf matches.
    assert_valid(&virtual_service_with_fault(
        "      delay:
        percentage:
          value: 10",
    ));
}

#[test]
fn abort_takes_one_kind_of_error() {
    let yaml = virtual_service_with_fault(
        "      abort:
        httpStatus: 500
        grpcStatus: UNAVAILABLE",
    );
    let kind = single_violation(&yaml, "spec.http[0].fault.abort");
    assert_eq!(
        kind,
        ViolationKind::OneOfManyMatched {
            matched: vec!["has httpStatus".into(), "has grpcStatus".into()]
        }
    );
}

#[test]
fn load_balancer_is_simple_or_consistent_hash() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
spec:
  host: image-analysis
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
      consistentHash:
        useSourceIp: true
";
    let kind = single_violation(yaml, "spec.trafficPolicy.loadBalancer");
    assert!(
        matches!(&kind, ViolationKind::OneOfManyMatched { matched } if matched.len() == 2),
        "{kind:?}"
    );
}

#[test]
fn one_of_inside_all_of() {
    // consistentHash has allOf: [oneOf(hash key), oneOf(ringHash | maglev)].
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
spec:
  host: image-analysis
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
        useSourceIp: true
        ringHash:
          minimumRingSize: 1024
        maglev:
          tableSize: 65537
";
    let found = violations(yaml);
    let path = "spec.trafficPolicy.loadBalancer.consistentHash";
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found.iter().all(|v| v.path == path), "{found:#?}");
    assert_eq!(
        found[0].kind,
        ViolationKind::OneOfManyMatched {
            matched: vec!["has httpHeaderName".into(), "has useSourceIp".into()]
        }
    );
    assert_eq!(
        found[1].kind,
        ViolationKind::OneOfManyMatched {
            matched: vec!["has ringHash".into(), "has maglev".into()]
        }
    );
}
