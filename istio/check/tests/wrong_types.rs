#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Values of the wrong JSON type, and numbers out of their format's range.

mod common;

use common::{assert_valid, single_violation, violations, virtual_service_with_fault};
use istio_manifests::ViolationKind;

#[test]
fn quoted_status_code_is_a_string_not_an_integer() {
    let yaml = virtual_service_with_fault(
        "      abort:
        percentage:
          value: 50
        httpStatus: \"500\"",
    );
    let kind = single_violation(&yaml, "spec.http[0].fault.abort.httpStatus");
    assert_eq!(
        kind,
        ViolationKind::WrongType {
            expected: "integer".into(),
            got: "string"
        }
    );
    assert_eq!(
        violations(&yaml)[0].to_string(),
        "spec.http[0].fault.abort.httpStatus: expected integer, got string"
    );
}

#[test]
fn scalar_where_a_list_belongs() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: image-analysis
spec:
  hosts: image-analysis
";
    let kind = single_violation(yaml, "spec.hosts");
    assert_eq!(
        kind,
        ViolationKind::WrongType {
            expected: "array".into(),
            got: "string"
        }
    );
}

#[test]
fn fractional_number_is_not_an_integer_but_a_whole_one_is() {
    let fractional = virtual_service_with_fault(
        "      abort:
        httpStatus: 500.5",
    );
    let kind = single_violation(&fractional, "spec.http[0].fault.abort.httpStatus");
    assert_eq!(
        kind,
        ViolationKind::WrongType {
            expected: "integer".into(),
            got: "number"
        }
    );
    // A percentage is a double: an integer is fine there.
    assert_valid(&virtual_service_with_fault(
        "      abort:
        percentage:
          value: 50
        httpStatus: 500.0",
    ));
}

#[test]
fn int32_fields_refuse_values_past_their_range() {
    let yaml = virtual_service_with_fault(
        "      abort:
        httpStatus: 2147483648",
    );
    let kind = single_violation(&yaml, "spec.http[0].fault.abort.httpStatus");
    assert_eq!(
        kind,
        ViolationKind::BadFormat {
            format: "int32".into(),
            value: "2147483648".into()
        }
    );
}

#[test]
fn minimum_and_maximum() {
    // port.number is a uint32 in the schema: 0..=4294967295.
    let with_port = |number: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: image-analysis
spec:
  hosts: [image-analysis]
  http:
  - route:
    - destination:
        host: image-analysis
        port:
          number: {number}
"
        )
    };
    let path = "spec.http[0].route[0].destination.port.number";
    assert_eq!(
        single_violation(&with_port("4294967296"), path),
        ViolationKind::AboveMaximum {
            value: "4294967296".into(),
            limit: "4294967295".into(),
            exclusive: false
        }
    );
    assert_eq!(
        single_violation(&with_port("-1"), path),
        ViolationKind::BelowMinimum {
            value: "-1".into(),
            limit: "0".into(),
            exclusive: false
        }
    );
    assert_valid(&with_port("8080"));
}

#[test]
fn null_in_a_non_nullable_field_counts_as_absent() {
    // The API server prunes such nulls; an optional field is then just unset.
    assert_valid(&virtual_service_with_fault(
        "      abort:
        grpcStatus: null
        httpStatus: 500",
    ));
}
