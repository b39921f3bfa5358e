//! Header maps and the ABI's pair serialization.
//!
//! The wire format, shared by every SDK: a little-endian `u32` count, then a
//! `(u32 key length, u32 value length)` for each pair, then each key and value
//! followed by a NUL byte.

use crate::types::Status;

/// An ordered header map with Envoy's behaviour: keys are lower-cased, a key
/// may repeat, and a lookup sees the first value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    pairs: Vec<(String, String)>,
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// The pairs in order, as the plugin would see them.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The first value for `key` (case-insensitive), as Envoy's `get` returns it.
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value for `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        let key = key.to_ascii_lowercase();
        self.pairs
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Appends a pair, keeping any existing values for the key.
    pub fn add(&mut self, key: &str, value: &str) {
        self.pairs
            .push((key.to_ascii_lowercase(), value.to_string()));
    }

    /// Sets `key` to exactly one value. Envoy's `setCopy` keeps the position of
    /// the first occurrence and drops the others.
    pub fn replace(&mut self, key: &str, value: &str) {
        let key = key.to_ascii_lowercase();
        match self.pairs.iter().position(|(k, _)| *k == key) {
            Some(first) => {
                self.pairs[first].1 = value.to_string();
                let mut index = 0;
                self.pairs.retain(|(k, _)| {
                    let keep = index <= first || *k != key;
                    index += 1;
                    keep
                });
            }
            None => self.pairs.push((key, value.to_string())),
        }
    }

    /// Removes every value for `key`.
    pub fn remove(&mut self, key: &str) {
        let key = key.to_ascii_lowercase();
        self.pairs.retain(|(k, _)| *k != key);
    }

    /// Serializes the map in the ABI's pair format.
    pub fn serialize(&self) -> Vec<u8> {
        serialize_pairs(self.pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for HeaderMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = HeaderMap::new();
        for (k, v) in iter {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }
}

/// Serializes pairs in the ABI's format.
pub fn serialize_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let count = pairs.clone().count();
    let mut out = Vec::new();
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses the ABI's pair format. Anything malformed (short input, lengths
/// past the end, missing NUL terminators) is a `BadArgument`, never a panic.
pub fn deserialize_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, Status> {
    Ok(deserialize_raw_pairs(bytes)?
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect())
}

/// A key and value as bytes.
pub(crate) type RawPair<'a> = (&'a [u8], &'a [u8]);

/// The pairs as bytes: gRPC metadata values (`-bin` keys) need not be text.
pub(crate) fn deserialize_raw_pairs(bytes: &[u8]) -> Result<Vec<RawPair<'_>>, Status> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let read_u32 = |at: usize| -> Result<usize, Status> {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 4]| u32::from_le_bytes(b) as usize)
            .ok_or(Status::BadArgument)
    };
    let count = read_u32(0)?;
    let sizes_end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .ok_or(Status::BadArgument)?;
    if sizes_end > bytes.len() {
        return Err(Status::BadArgument);
    }
    let mut pairs = Vec::with_capacity(count);
    let mut cursor = sizes_end;
    for i in 0..count {
        let key_len = read_u32(4 + i * 8)?;
        let value_len = read_u32(8 + i * 8)?;
        let key = take_terminated(bytes, &mut cursor, key_len)?;
        let value = take_terminated(bytes, &mut cursor, value_len)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn take_terminated<'a>(
    bytes: &'a [u8],
    cursor: &mut usize,
    len: usize,
) -> Result<&'a [u8], Status> {
    let end = cursor.checked_add(len).ok_or(Status::BadArgument)?;
    let field = bytes.get(*cursor..end).ok_or(Status::BadArgument)?;
    if bytes.get(end) != Some(&0) {
        return Err(Status::BadArgument);
    }
    *cursor = end + 1;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let map: HeaderMap = [(":path", "/a"), ("X-Two", "2"), ("x-two", "")]
            .into_iter()
            .collect();
        let bytes = map.serialize();
        let back = deserialize_pairs(&bytes).unwrap();
        assert_eq!(back, map.pairs().to_vec());
    }

    #[test]
    fn serialization_is_the_abi_layout() {
        let map: HeaderMap = [("a", "bc")].into_iter().collect();
        assert_eq!(
            map.serialize(),
            vec![1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]
        );
    }

    #[test]
    fn malformed_pairs_are_bad_arguments() {
        assert_eq!(deserialize_pairs(&[1, 0, 0]), Err(Status::BadArgument));
        assert_eq!(
            deserialize_pairs(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]),
            Err(Status::BadArgument)
        );
        assert_eq!(
            deserialize_pairs(&[255, 255, 255, 255]),
            Err(Status::BadArgument)
        );
        // Right lengths, missing NUL.
        assert_eq!(
            deserialize_pairs(&[1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'a', b'x', 0]),
            Err(Status::BadArgument)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_pairs_survive_the_round_trip(pairs in proptest::collection::vec(("[a-z0-9:-]{0,12}", "[ -~]{0,24}"), 0..16)) {
            let bytes = serialize_pairs(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
            proptest::prop_assert_eq!(deserialize_pairs(&bytes).unwrap(), pairs);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_parser(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = deserialize_pairs(&bytes);
        }
    }

    #[test]
    fn replace_keeps_first_position_and_drops_the_rest() {
        let mut map: HeaderMap = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        map.replace("A", "9");
        assert_eq!(
            map.pairs(),
            &[("a".into(), "9".into()), ("b".into(), "2".into())]
        );
    }
}
