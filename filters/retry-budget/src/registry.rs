//! Scope names to shared-data slots, the same on every worker.
//!
//! A scope's budget lives under its own shared-data key. Scope names come
//! from traffic (a cluster, a route, a header value), so the number of keys
//! (and of metrics) must be bounded: the first `maxScopes` names seen get a
//! slot each, in a registry every worker updates by compare-and-swap, and
//! every later name (or a request without one) shares slot 0,
//! [`OVERFLOW_SCOPE`]. Shared data cannot delete keys, so slots are never
//! reused.

/// The scope of slot 0: requests without a scope name, or beyond `maxScopes`.
pub const OVERFLOW_SCOPE: &str = "_other";

/// The longest scope name kept (longer ones are cut).
const MAX_NAME: usize = 64;

/// A scope name fit for metric names and the registry: ASCII letters,
/// digits, `-` and `_`, anything else as `_`, at most 64 characters.
pub fn sanitize_scope(raw: &str) -> String {
    let name: String = raw
        .chars()
        .take(MAX_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        OVERFLOW_SCOPE.to_string()
    } else {
        name
    }
}

/// The registry: scope names in slot order (slot `i + 1` is `names[i]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    names: Vec<String>,
}

impl Registry {
    /// Decodes the shared-data value (names separated by newlines).
    pub fn decode(bytes: Option<&[u8]>) -> Self {
        let names = bytes
            .map(String::from_utf8_lossy)
            .map(|text| {
                text.split('\n')
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Self { names }
    }

    pub fn encode(&self) -> Vec<u8> {
        self.names.join("\n").into_bytes()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The slot of a (sanitized) name, if registered; the overflow name is slot 0.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        if name == OVERFLOW_SCOPE {
            return Some(0);
        }
        self.names.iter().position(|n| n == name).map(|i| i + 1)
    }

    /// Finds or registers `name` with at most `max` registered names.
    /// Returns its slot (0 when full) and the registry to write back when
    /// it changed.
    pub fn resolve(&self, name: &str, max: usize) -> (usize, Option<Self>) {
        if let Some(slot) = self.slot_of(name) {
            return (slot, None);
        }
        if self.names.len() >= max {
            return (0, None);
        }
        let mut grown = self.clone();
        grown.names.push(name.to_string());
        (grown.names.len(), Some(grown))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use mesh_policy::{MemoryStore, SharedStore, cas_update};

    #[test]
    fn names_are_sanitized() {
        assert_eq!(
            sanitize_scope("outbound|80||v1.default"),
            "outbound_80__v1_default"
        );
        assert_eq!(sanitize_scope(""), OVERFLOW_SCOPE);
        assert_eq!(sanitize_scope(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn slots_are_given_in_order_then_overflow() {
        let registry = Registry::default();
        let (a, registry) = registry.resolve("a", 2);
        let registry = registry.unwrap();
        let (b, registry) = registry.resolve("b", 2);
        let registry = registry.unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(registry.resolve("a", 2), (1, None));
        assert_eq!(registry.resolve("c", 2), (0, None));
        assert_eq!(registry.resolve(OVERFLOW_SCOPE, 2), (0, None));
        assert_eq!(Registry::decode(Some(&registry.encode())), registry);
    }

    #[test]
    fn two_workers_registering_agree() {
        fn rival(value: Option<&[u8]>) -> Vec<u8> {
            let (_, grown) = Registry::decode(value).resolve("rival", 8);
            grown.map(|r| r.encode()).unwrap_or_default()
        }
        let mut store = MemoryStore {
            interfere: 1,
            rival: Some(rival),
            ..MemoryStore::default()
        };
        store.set("reg", b"", None).unwrap();
        let slot = cas_update(&mut store, "reg", 4, |value| {
            let (slot, grown) = Registry::decode(value).resolve("mine", 8);
            (slot, grown.map(|r| r.encode()))
        })
        .unwrap();
        assert_eq!(slot, 2);
        let registry = Registry::decode(store.value("reg"));
        assert_eq!(registry.names(), ["rival", "mine"]);
    }

    proptest! {
        #[test]
        fn never_more_than_max_and_stable(
            names in prop::collection::vec("[a-d]{1,2}", 0..60),
            max in 1usize..8,
        ) {
            let mut registry = Registry::default();
            let mut seen = std::collections::HashMap::new();
            for name in names {
                let (slot, grown) = registry.resolve(&name, max);
                if let Some(grown) = grown {
                    registry = grown;
                }
                prop_assert!(registry.names().len() <= max);
                prop_assert!(slot <= max);
                if slot != 0 {
                    let first = *seen.entry(name.clone()).or_insert(slot);
                    prop_assert_eq!(first, slot);
                }
            }
        }

        #[test]
        fn sanitized_names_survive_the_registry(raw in "\\PC{0,80}") {
            let name = sanitize_scope(&raw);
            prop_assert!(!name.contains('\n'));
            let (slot, grown) = Registry::default().resolve(&name, 4);
            let registry = grown.unwrap_or_default();
            prop_assert_eq!(Registry::decode(Some(&registry.encode())).slot_of(&name), Some(slot));
        }
    }
}
