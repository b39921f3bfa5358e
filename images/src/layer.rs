//! Image layers as reproducible tar archives: entries sorted by path, parent
//! folders present, every time stamp, owner and mode fixed, and a gzip
//! stream without a time stamp or host byte, so the same files always give
//! the same digest.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result, io};

/// The time stamp of every tar entry (and the `created` date of every
/// image): the Unix epoch. A build date or the last commit's date would
/// change the digest of unchanged content, and a digest committed in the
/// manifests would change the commit that records it.
pub const EPOCH: u64 = 0;

/// The deflate level of every gzip layer (zlib's default).
const DEFLATE_LEVEL: u8 = 6;

/// Who owns an entry: numeric user and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// root:root.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };

    /// The user and the group of the same number.
    pub fn user(id: u32) -> Self {
        Self { uid: id, gid: id }
    }
}

#[derive(Debug, Clone)]
enum Content {
    Dir,
    File(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Entry {
    content: Content,
    mode: u32,
    owner: Owner,
}

/// The files and folders of one layer, in any order; [`LayerBuilder::finish`]
/// writes them sorted.
#[derive(Debug, Default, Clone)]
pub struct LayerBuilder {
    /// By path inside the image, without the leading `/` (`usr/local/bin`).
    entries: BTreeMap<String, Entry>,
}

/// A finished layer: the tar archive and its gzip stream, with their digests.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The uncompressed tar archive.
    pub tar: Vec<u8>,
    /// The gzip stream of `tar`: the blob a registry stores.
    pub gzip: Vec<u8>,
    /// `sha256:<hex>` of `tar`: the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
}

fn relative(path: &str) -> Result<String> {
    if !crate::definition::is_image_path(path) {
        return Err(Error::Oci(format!(
            "`{path}` is not an absolute path inside an image"
        )));
    }
    Ok(path.trim_start_matches('/').to_string())
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A folder at `path` (absolute in the image) with `mode`, owned by `owner`.
    pub fn dir(&mut self, path: &str, mode: u32, owner: Owner) -> Result<&mut Self> {
        let path = relative(path)?;
        self.parents(&path)?;
        self.insert(path, Content::Dir, mode, owner)?;
        Ok(self)
    }

    /// A root-owned file at `path` (absolute in the image) with `mode`; its
    /// missing parent folders are added (root, 0755).
    pub fn file(&mut self, path: &str, bytes: Vec<u8>, mode: u32) -> Result<&mut Self> {
        let path = relative(path)?;
        self.parents(&path)?;
        self.insert(path, Content::File(bytes), mode, Owner::ROOT)?;
        Ok(self)
    }

    fn parents(&mut self, path: &str) -> Result<()> {
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Entry {
                    content: Content::File(_),
                    ..
                }) => {
                    return Err(Error::Oci(format!(
                        "/{path}: /{parent} is a file, not a folder"
                    )));
                }
                Some(_) => {}
                None => {
                    self.entries.insert(
                        parent.clone(),
                        Entry {
                            content: Content::Dir,
                            mode: 0o755,
                            owner: Owner::ROOT,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, path: String, content: Content, mode: u32, owner: Owner) -> Result<()> {
        let entry = Entry {
            content,
            mode,
            owner,
        };
        match self.entries.get(&path) {
            // A folder added as a parent first may be given its own mode
            // and owner afterwards.
            Some(Entry {
                content: Content::Dir,
                ..
            }) if matches!(entry.content, Content::Dir) => {}
            Some(_) => return Err(Error::Oci(format!("/{path} is added twice"))),
            None => {}
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// The tar archive (entries sorted by path, time stamps at [`EPOCH`]),
    /// its gzip stream, and the tar's digest.
    pub fn finish(&self) -> Result<Layer> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mode(entry.mode);
            header.set_uid(u64::from(entry.owner.uid));
            header.set_gid(u64::from(entry.owner.gid));
            header.set_mtime(EPOCH);
            let (name, data): (String, &[u8]) = match &entry.content {
                Content::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    (format!("{path}/"), &[])
                }
                Content::File(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    (path.clone(), bytes)
                }
            };
            builder
                .append_data(&mut header, &name, data)
                .map_err(io(format!("cannot add /{name} to a layer")))?;
        }
        let tar = builder
            .into_inner()
            .map_err(io("cannot finish a layer's tar archive"))?;
        let gzip = gzip(&tar);
        let diff_id = sha256_digest(&tar);
        Ok(Layer { tar, gzip, diff_id })
    }
}

/// A gzip stream (RFC 1952) of `data`, with no time stamp, name or host
/// byte: only the deflate data depends on the input.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, DEFLATE_LEVEL);
    let mut out = Vec::with_capacity(deflated.len() + 18);
    // Magic, deflate, no flags, MTIME 0, no extra flags, OS 255 (unknown).
    out.extend_from_slice(&[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE: the input length modulo 2^32, as RFC 1952 defines it.
    out.extend_from_slice(&((data.len() & 0xffff_ffff) as u32).to_le_bytes());
    out
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn entries(layer: &Layer) -> Vec<(String, u32, u64, u64, u64)> {
        let mut archive = tar::Archive::new(layer.tar.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn entries_are_sorted_with_their_parents_and_fixed_metadata() {
        let mut b = LayerBuilder::new();
        b.file("/usr/local/bin/x", b"bin".to_vec(), 0o755).unwrap();
        b.dir("/data", 0o755, Owner::user(65532)).unwrap();
        b.file("/a.txt", b"a".to_vec(), 0o644).unwrap();
        let layer = b.finish().unwrap();
        assert_eq!(
            entries(&layer),
            vec![
                ("a.txt".into(), 0o644, 0, 0, 0),
                ("data/".into(), 0o755, 65532, 65532, 0),
                ("usr/".into(), 0o755, 0, 0, 0),
                ("usr/local/".into(), 0o755, 0, 0, 0),
                ("usr/local/bin/".into(), 0o755, 0, 0, 0),
                ("usr/local/bin/x".into(), 0o755, 0, 0, 0),
            ]
        );
    }

    #[test]
    fn insertion_order_does_not_change_the_bytes() {
        let mut one = LayerBuilder::new();
        one.file("/b", b"2".to_vec(), 0o644).unwrap();
        one.file("/a/c", b"1".to_vec(), 0o644).unwrap();
        let mut two = LayerBuilder::new();
        two.file("/a/c", b"1".to_vec(), 0o644).unwrap();
        two.file("/b", b"2".to_vec(), 0o644).unwrap();
        let (one, two) = (one.finish().unwrap(), two.finish().unwrap());
        assert_eq!(one.gzip, two.gzip);
        assert_eq!(one.diff_id, two.diff_id);
    }

    #[test]
    fn the_gzip_stream_decodes_to_the_tar_and_has_no_time_stamp() {
        let mut b = LayerBuilder::new();
        b.file("/plugin.wasm", vec![7; 100_000], 0o644).unwrap();
        let layer = b.finish().unwrap();
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(layer.gzip.as_slice())
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, layer.tar);
        assert_eq!(&layer.gzip[4..8], &[0, 0, 0, 0], "MTIME");
        assert_eq!(layer.gzip[9], 0xff, "OS");
        assert_eq!(layer.diff_id, sha256_digest(&layer.tar));
    }

    #[test]
    fn a_file_where_a_folder_is_needed_is_refused() {
        let mut b = LayerBuilder::new();
        b.file("/a", b"x".to_vec(), 0o644).unwrap();
        let error = b.file("/a/b", b"y".to_vec(), 0o644).unwrap_err();
        assert!(error.to_string().contains("/a is a file"), "{error}");
        assert!(b.file("/a", b"z".to_vec(), 0o644).is_err(), "added twice");
        assert!(b.file("relative", vec![], 0o644).is_err());
    }
}
