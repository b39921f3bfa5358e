//! The watchlist: persons of interest, one face embedding each, kept durably
//! in SQLite (WAL, `synchronous=FULL`: an enrolment survives a crash once
//! `POST` has answered) and in memory for matching.
//!
//! Each row records the embedding model it was computed with. Embeddings of
//! two models cannot be compared, so opening a watchlist enrolled with another
//! model (or another embedding size) fails with a message saying so, rather
//! than silently matching nobody.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use airport_common::Timestamp;
use airport_common::contract::{BoundingBox, FaceMatch, WatchlistEntry};
use rusqlite::{Connection, ErrorCode, params};

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Checks a person's name: 1 to 100 characters, no control characters, no
/// space at either end (so two names never differ only by invisible spaces).
pub fn validate_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err("the name is empty".into());
    }
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "the name is {chars} characters long, more than {MAX_NAME_CHARS}"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character".into());
    }
    if name.trim() != name {
        return Err("the name starts or ends with a space".into());
    }
    Ok(())
}

/// A storage failure or a refused change.
#[derive(Debug, thiserror::Error)]
pub enum WatchlistError {
    /// SQLite failed.
    #[error("watchlist database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The name is already enrolled.
    #[error("{0:?} is already on the watchlist; delete it first to enrol a new photo")]
    Duplicate(String),
    /// A stored row does not fit the model in use.
    #[error(
        "watchlist entry {name:?} was enrolled with embedding model {stored}, but this service runs {running}: re-enrol it or use another WATCHLIST_DB"
    )]
    ModelMismatch {
        /// The entry.
        name: String,
        /// Its model.
        stored: String,
        /// The model in use.
        running: String,
    },
    /// A stored embedding is not `dim` floats.
    #[error("watchlist entry {name:?} has a {bytes}-byte embedding; expected {expected} bytes")]
    Corrupt {
        /// The entry.
        name: String,
        /// Its size.
        bytes: usize,
        /// What the model produces.
        expected: usize,
    },
    /// A previous holder of a lock panicked.
    #[error("watchlist lock poisoned")]
    Poisoned,
}

/// One enrolled person, in memory.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The name.
    pub name: String,
    /// When enrolled.
    pub enrolled_at: Timestamp,
    /// The unit-length embedding.
    pub embedding: Arc<[f32]>,
}

/// The durable watchlist.
#[derive(Debug)]
pub struct Watchlist {
    conn: Mutex<Connection>,
    entries: RwLock<Arc<Vec<Enrolled>>>,
    model: String,
    dim: usize,
}

/// Scales `v` to unit length (left as is if zero), so cosine is a dot product.
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in v {
            *x /= norm;
        }
    }
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Watchlist {
    /// Opens (or creates) the watchlist at `path` for embeddings of `dim`
    /// floats from `model`, and loads it.
    pub fn open(path: &Path, model: &str, dim: usize) -> Result<Self, WatchlistError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS watchlist (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                enrolled_micros INTEGER NOT NULL,
                model TEXT NOT NULL,
                embedding BLOB NOT NULL
            );",
        )?;
        let mut entries = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT name, enrolled_micros, model, embedding FROM watchlist ORDER BY seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?;
            for row in rows {
                let (name, micros, stored, blob) = row?;
                if stored != model {
                    return Err(WatchlistError::ModelMismatch {
                        name,
                        stored,
                        running: model.to_string(),
                    });
                }
                if blob.len() != dim * 4 {
                    return Err(WatchlistError::Corrupt {
                        name,
                        bytes: blob.len(),
                        expected: dim * 4,
                    });
                }
                // Stored unit-length by `enrol`: used exactly as stored, so a
                // restart changes no similarity by a single bit.
                let embedding = from_blob(&blob);
                entries.push(Enrolled {
                    name,
                    enrolled_at: Timestamp::from_unix_micros(micros),
                    embedding: embedding.into(),
                });
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
            entries: RwLock::new(Arc::new(entries)),
            model: model.to_string(),
            dim,
        })
    }

    /// Everyone enrolled, in enrolment order (a cheap shared copy).
    pub fn entries(&self) -> Result<Arc<Vec<Enrolled>>, WatchlistError> {
        Ok(self
            .entries
            .read()
            .map_err(|_| WatchlistError::Poisoned)?
            .clone())
    }

    /// Whether `name` is enrolled.
    pub fn contains(&self, name: &str) -> Result<bool, WatchlistError> {
        Ok(self.entries()?.iter().any(|e| e.name == name))
    }

    /// The `GET /watchlist` listing.
    pub fn list(&self) -> Result<Vec<WatchlistEntry>, WatchlistError> {
        Ok(self
            .entries()?
            .iter()
            .map(|e| WatchlistEntry {
                name: e.name.clone(),
                enrolled_at: e.enrolled_at.to_string(),
            })
            .collect())
    }

    /// Enrols `name` with `embedding` (normalised here); refuses a name
    /// already enrolled. Durable once this returns.
    pub fn enrol(&self, name: &str, embedding: &[f32]) -> Result<WatchlistEntry, WatchlistError> {
        if embedding.len() != self.dim {
            return Err(WatchlistError::Corrupt {
                name: name.to_string(),
                bytes: embedding.len() * 4,
                expected: self.dim * 4,
            });
        }
        let mut unit = embedding.to_vec();
        normalize(&mut unit);
        let now = Timestamp::now();
        let conn = self.conn.lock().map_err(|_| WatchlistError::Poisoned)?;
        let inserted = conn.execute(
            "INSERT INTO watchlist (name, enrolled_micros, model, embedding) VALUES (?1, ?2, ?3, ?4)",
            params![name, now.unix_micros(), self.model, to_blob(&unit)],
        );
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                return Err(WatchlistError::Duplicate(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        // Updated while the connection is held, so the memory copy follows
        // the database's order of changes.
        let mut entries = self.entries.write().map_err(|_| WatchlistError::Poisoned)?;
        let mut next = entries.as_ref().clone();
        next.push(Enrolled {
            name: name.to_string(),
            enrolled_at: now,
            embedding: unit.into(),
        });
        *entries = Arc::new(next);
        Ok(WatchlistEntry {
            name: name.to_string(),
            enrolled_at: now.to_string(),
        })
    }

    /// Removes `name`; `false` if it was not enrolled.
    pub fn remove(&self, name: &str) -> Result<bool, WatchlistError> {
        let conn = self.conn.lock().map_err(|_| WatchlistError::Poisoned)?;
        let removed = conn.execute("DELETE FROM watchlist WHERE name = ?1", params![name])? > 0;
        if removed {
            let mut entries = self.entries.write().map_err(|_| WatchlistError::Poisoned)?;
            let next: Vec<Enrolled> = entries.iter().filter(|e| e.name != name).cloned().collect();
            *entries = Arc::new(next);
        }
        Ok(removed)
    }
}

/// Cosine similarity of two unit vectors (kept within [-1, 1], which
/// rounding can overstep by a few ulps).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x * y)
        .sum::<f32>()
        .clamp(-1.0, 1.0)
}

/// The watchlist matches among `faces` (box and unit embedding each): each
/// face is compared with everyone enrolled and matches its most similar
/// person if at least `threshold`; a person matched by several faces is
/// reported once, with the best. Best first.
pub fn find_matches(
    faces: &[(BoundingBox, Vec<f32>)],
    watchlist: &[Enrolled],
    threshold: f32,
) -> Vec<FaceMatch> {
    let mut best: Vec<FaceMatch> = Vec::new();
    for (bbox, embedding) in faces {
        let candidate = watchlist
            .iter()
            .map(|e| (e, cosine(embedding, &e.embedding)))
            .filter(|(_, s)| s.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((person, similarity)) = candidate else {
            continue;
        };
        if similarity < threshold {
            continue;
        }
        match best.iter_mut().find(|m| m.name == person.name) {
            Some(m) if m.similarity >= similarity => {}
            Some(m) => {
                m.similarity = similarity;
                m.bbox = *bbox;
            }
            None => best.push(FaceMatch {
                name: person.name.clone(),
                similarity,
                bbox: *bbox,
            }),
        }
    }
    best.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    best
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn bx(x: f32) -> BoundingBox {
        BoundingBox {
            x,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        normalize(&mut v);
        v
    }

    #[test]
    fn names() {
        assert!(validate_name("PersonX").is_ok());
        assert!(validate_name("Grace Hopper").is_ok());
        assert!(validate_name("Zoë").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(" x").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"é".repeat(100)).is_ok());
        assert!(validate_name(&"é".repeat(101)).is_err());
    }

    #[test]
    fn enrol_list_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = Watchlist::open(&path, "m1", 3).unwrap();
        let e = w.enrol("A", &[1.0, 0.0, 0.0]).unwrap();
        w.enrol("B", &[0.0, 2.0, 0.0]).unwrap();
        assert!(matches!(
            w.enrol("A", &[0.0, 0.0, 1.0]),
            Err(WatchlistError::Duplicate(_))
        ));
        assert!(w.enrol("C", &[1.0]).is_err(), "wrong size");
        assert!(w.remove("B").unwrap());
        assert!(!w.remove("B").unwrap());
        drop(w);

        let w = Watchlist::open(&path, "m1", 3).unwrap();
        let list = w.list().unwrap();
        assert_eq!(list, vec![e]);
        assert_eq!(&*w.entries().unwrap()[0].embedding, &[1.0, 0.0, 0.0]);
        drop(w);
        let err = Watchlist::open(&path, "m2", 3).unwrap_err();
        assert!(
            err.to_string().contains("enrolled with embedding model m1"),
            "{err}"
        );
        assert!(matches!(
            Watchlist::open(&path, "m1", 4),
            Err(WatchlistError::Corrupt { .. })
        ));
    }

    #[test]
    fn each_face_matches_its_best_person_once_above_threshold() {
        let enrolled = |name: &str, v: &[f32]| Enrolled {
            name: name.into(),
            enrolled_at: Timestamp::now(),
            embedding: unit(v).into(),
        };
        let list = vec![enrolled("A", &[1.0, 0.0]), enrolled("B", &[0.0, 1.0])];
        let faces = vec![
            (bx(0.0), unit(&[1.0, 0.1])),
            (bx(1.0), unit(&[0.9, 0.0])),
            (bx(2.0), unit(&[0.6, 0.8])),
            (bx(3.0), unit(&[-1.0, 0.0])),
        ];
        let m = find_matches(&faces, &list, 0.7);
        let got: Vec<(&str, f32)> = m.iter().map(|m| (m.name.as_str(), m.bbox.x)).collect();
        assert_eq!(got, vec![("A", 1.0), ("B", 2.0)]);
        assert!((m[1].similarity - 0.8).abs() < 1e-6);
        assert!(find_matches(&faces, &list, 1.01).is_empty());
        assert!(find_matches(&faces, &[], 0.0).is_empty());
    }
}
