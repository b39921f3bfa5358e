//! The records that travel between the airport services: frames (camera →
//! collector), statistics (collector → section), alerts (collector → alerts),
//! camera state and control, and the JSON error body.
//!
//! Identifiers and timestamps validate themselves while they are deserialized,
//! so a handler never sees a malformed one; the `validate` methods check what
//! serde cannot (ranges, lengths, consistency).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::contract::BoundingBox;
use crate::error::ApiError;
use crate::time::Timestamp;

fn id_chars_ok(s: &str, extra: &[char]) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || extra.contains(&c)
    })
}

/// A section or camera identifier: 1 to 64 characters of `[A-Za-z0-9._-]`.
/// Accepts a JSON string or a non-negative integer (the seed's camera list
/// writes `"id": 1, "section": 1`) and always serializes as a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    /// Validates an identifier.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > 64 || !id_chars_ok(&s, &[]) {
            return Err(format!(
                "invalid id {:?}: expected 1-64 characters of A-Z a-z 0-9 . _ -",
                s.chars().take(80).collect::<String>()
            ));
        }
        Ok(Self(s))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Id {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        let raw = Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("invalid id: expected a string or a non-negative integer")
        })?;
        let s = match raw {
            Raw::S(s) => s,
            Raw::N(n) => n.to_string(),
        };
        Id::new(s).map_err(serde::de::Error::custom)
    }
}

/// A frame's unique identifier, chosen by the camera and kept for every retry
/// of that frame: 1 to 128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FrameId(String);

impl FrameId {
    /// Validates a frame id.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > 128 || !id_chars_ok(&s, &[':']) {
            return Err(format!(
                "invalid frame_id {:?}: expected 1-128 characters of A-Z a-z 0-9 . _ : -",
                s.chars().take(140).collect::<String>()
            ));
        }
        Ok(Self(s))
    }

    /// The frame id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FrameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FrameId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        FrameId::new(s).map_err(serde::de::Error::custom)
    }
}

/// Where a camera stands: at the entry of its section or at the exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// People entering the section.
    Entry,
    /// People leaving the section.
    Exit,
}

impl Event {
    /// `entry` or `exit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Entry => "entry",
            Event::Exit => "exit",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Event {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "entry" => Ok(Event::Entry),
            "exit" => Ok(Event::Exit),
            other => Err(format!("invalid event {other:?}: expected entry or exit")),
        }
    }
}

/// Estimated gender of a face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    /// Female.
    Female,
    /// Male.
    Male,
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gender::Female => "female",
            Gender::Male => "male",
        })
    }
}

/// The classic age brackets of the Adience benchmark, as the seed's dashboard
/// prints them (`age: 38-43`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AgeBracket {
    /// 0 to 2 years.
    #[serde(rename = "0-2")]
    A0To2,
    /// 4 to 6 years.
    #[serde(rename = "4-6")]
    A4To6,
    /// 8 to 12 years.
    #[serde(rename = "8-12")]
    A8To12,
    /// 15 to 20 years.
    #[serde(rename = "15-20")]
    A15To20,
    /// 25 to 32 years.
    #[serde(rename = "25-32")]
    A25To32,
    /// 38 to 43 years.
    #[serde(rename = "38-43")]
    A38To43,
    /// 48 to 53 years.
    #[serde(rename = "48-53")]
    A48To53,
    /// 60 years and more.
    #[serde(rename = "60-100")]
    A60To100,
}

impl AgeBracket {
    /// Every bracket, youngest first.
    pub const ALL: [AgeBracket; 8] = [
        AgeBracket::A0To2,
        AgeBracket::A4To6,
        AgeBracket::A8To12,
        AgeBracket::A15To20,
        AgeBracket::A25To32,
        AgeBracket::A38To43,
        AgeBracket::A48To53,
        AgeBracket::A60To100,
    ];

    /// The bracket for an estimated age. The brackets leave gaps (3, 7,
    /// 13-14, ...); an age in a gap goes to the nearer bracket, split at the
    /// midpoint between them.
    pub fn from_age(age: f32) -> Self {
        const SPLITS: [(f32, AgeBracket); 7] = [
            (3.0, AgeBracket::A0To2),
            (7.0, AgeBracket::A4To6),
            (13.5, AgeBracket::A8To12),
            (22.5, AgeBracket::A15To20),
            (35.0, AgeBracket::A25To32),
            (45.5, AgeBracket::A38To43),
            (56.5, AgeBracket::A48To53),
        ];
        if age.is_nan() {
            return AgeBracket::A25To32;
        }
        SPLITS
            .iter()
            .find(|(split, _)| age < *split)
            .map_or(AgeBracket::A60To100, |(_, b)| *b)
    }

    /// The bracket as the dashboard prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            AgeBracket::A0To2 => "0-2",
            AgeBracket::A4To6 => "4-6",
            AgeBracket::A8To12 => "8-12",
            AgeBracket::A15To20 => "15-20",
            AgeBracket::A25To32 => "25-32",
            AgeBracket::A38To43 => "38-43",
            AgeBracket::A48To53 => "48-53",
            AgeBracket::A60To100 => "60-100",
        }
    }
}

impl fmt::Display for AgeBracket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One frame from a camera agent, as it is posted to the collector
/// (`POST /frames`). The image is base64 (standard alphabet, padded) JPEG or PNG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    /// Unique per frame; a retry of the frame carries the same id.
    pub frame_id: FrameId,
    /// The camera that took it.
    pub camera_id: Id,
    /// The airport section the camera watches.
    pub section: Id,
    /// Entry or exit camera.
    pub event: Event,
    /// When the frame was taken.
    pub timestamp: Timestamp,
    /// The image, base64-encoded JPEG or PNG.
    pub image: String,
}

/// One person seen in a frame, as the section stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Estimated gender.
    pub gender: Gender,
    /// Confidence of the gender estimate, 0 to 1.
    pub gender_confidence: f32,
    /// Estimated age in years.
    pub age: f32,
    /// The age's bracket.
    pub age_bracket: AgeBracket,
    /// Where the face is in the image, in pixels.
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BoundingBox>,
}

/// The frame's image kept with its statistics, for the v2 dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameImage {
    /// `image/jpeg` or `image/png`.
    pub content_type: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The image, base64.
    pub data: String,
}

/// The statistics of one frame (collector → section, `POST /stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsRecord {
    /// The frame's id: the section stores each frame once.
    pub frame_id: FrameId,
    /// The camera that took the frame.
    pub camera_id: Id,
    /// The section.
    pub section: Id,
    /// Entry or exit.
    pub event: Event,
    /// When the frame was taken.
    pub timestamp: Timestamp,
    /// How many people image analysis counted.
    pub count: u32,
    /// One entry per analysed face.
    pub people: Vec<Person>,
    /// The photo, when the collector forwards it (absent in listings unless asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<FrameImage>,
}

/// Upper bound on faces per frame accepted anywhere in the pipeline.
pub const MAX_PEOPLE_PER_FRAME: usize = 1000;

fn check_unit(name: &str, v: f32) -> Result<(), ApiError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_field",
            format!("{name} must be a number from 0 to 1, got {v}"),
        ))
    }
}

impl StatsRecord {
    /// Checks what deserialization cannot.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.people.len() > MAX_PEOPLE_PER_FRAME {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("people: at most {MAX_PEOPLE_PER_FRAME} entries"),
            ));
        }
        if (self.count as usize) < self.people.len() {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!(
                    "count ({}) is smaller than the number of people ({})",
                    self.count,
                    self.people.len()
                ),
            ));
        }
        for (i, p) in self.people.iter().enumerate() {
            check_unit(
                &format!("people[{i}].gender_confidence"),
                p.gender_confidence,
            )?;
            if !(p.age.is_finite() && (0.0..=150.0).contains(&p.age)) {
                return Err(ApiError::unprocessable(
                    "invalid_field",
                    format!("people[{i}].age must be from 0 to 150, got {}", p.age),
                ));
            }
            if let Some(b) = &p.bbox {
                b.validate(&format!("people[{i}].box"))?;
            }
        }
        if let Some(img) = &self.image
            && img.content_type != "image/jpeg"
            && img.content_type != "image/png"
        {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!(
                    "image.content_type must be image/jpeg or image/png, got {:?}",
                    img.content_type
                ),
            ));
        }
        Ok(())
    }
}

/// `GET /stats` of a section: the latest record and the most recent ones,
/// latest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsPage {
    /// The section.
    pub section: Id,
    /// How many frames the section has stored in all.
    pub total: u64,
    /// The latest frame's statistics, if any.
    pub latest: Option<StatsRecord>,
    /// The most recent frames, latest first (`limit` of them at most).
    pub recent: Vec<StatsRecord>,
}

/// A person of interest seen by a camera (collector → alerts, `POST /alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// The frame the person was seen in; with `name`, the alert's identity.
    pub frame_id: FrameId,
    /// The camera.
    pub camera_id: Id,
    /// The section.
    pub section: Id,
    /// Entry or exit.
    pub event: Event,
    /// When the frame was taken.
    pub timestamp: Timestamp,
    /// The person of interest's name on the watchlist.
    pub name: String,
    /// How sure face recognition is (cosine similarity), 0 to 1.
    pub confidence: f32,
    /// Where the face is in the image, in pixels.
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BoundingBox>,
}

impl Alert {
    /// Checks what deserialization cannot.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_name(&self.name)?;
        check_unit("confidence", self.confidence)?;
        if let Some(b) = &self.bbox {
            b.validate("box")?;
        }
        Ok(())
    }
}

/// A watchlist name: 1 to 100 characters, no control characters.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "name must be 1-100 characters without control characters",
        ));
    }
    Ok(())
}

/// `GET /alerts`: alerts latest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsPage {
    /// How many alerts are stored in all.
    pub total: u64,
    /// The alerts, latest first.
    pub alerts: Vec<Alert>,
}

/// What a store answers to a `POST`: whether this call stored the record or it
/// was already there (a retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOutcome {
    /// The frame id of the record.
    pub frame_id: FrameId,
    /// `true` if this call stored it, `false` if it was already stored.
    pub stored: bool,
}

/// What the collector did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameStatus {
    /// Analysed and stored by this call.
    Processed,
    /// Already processed earlier (a retry): nothing was done again.
    Duplicate,
}

/// The collector's answer to `POST /frames`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameOutcome {
    /// The frame.
    pub frame_id: FrameId,
    /// Processed now or a duplicate.
    pub status: FrameStatus,
    /// People counted (0 for a duplicate).
    pub people: u32,
    /// Persons of interest recognised (0 for a duplicate).
    pub matches: u32,
}

/// `GET /state` of a camera agent, in exactly the seed's shape and field order:
/// `{"streaming":true,"cycle":7,"fps":0,"section":"1","destination":"http://...","event":"exit"}`.
/// `section`, `destination` and `event` are `null` until the camera is first started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraState {
    /// Whether the camera is sending frames.
    pub streaming: bool,
    /// Frames accepted by the destination since the agent started.
    pub cycle: u64,
    /// Measured frames per second over the last few seconds.
    pub fps: u32,
    /// The section it reports for.
    pub section: Option<Id>,
    /// Where frames go (the collector's base URL).
    pub destination: Option<String>,
    /// Entry or exit.
    pub event: Option<Event>,
}

/// `POST /start` of a camera agent (every field falls back to the agent's own config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraStart {
    /// The section to report for.
    #[serde(default)]
    pub section: Option<Id>,
    /// Entry or exit.
    #[serde(default)]
    pub event: Option<Event>,
    /// The collector's base URL.
    #[serde(default)]
    pub destination: Option<String>,
    /// Frames per second to send (0.1 to 100).
    #[serde(default)]
    pub fps: Option<f64>,
}

/// The JSON body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, such as `invalid_json` or `overloaded`.
    pub error: String,
    /// What is wrong, for a person.
    pub message: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn ids_accept_strings_and_numbers() {
        let id: Id = serde_json::from_str("1").unwrap();
        assert_eq!(id.as_str(), "1");
        let id: Id = serde_json::from_str("\"gate-b.2\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"gate-b.2\"");
        assert!(serde_json::from_str::<Id>("\"\"").is_err());
        assert!(serde_json::from_str::<Id>("\"a b\"").is_err());
        assert!(serde_json::from_str::<Id>("-1").is_err());
        assert!(serde_json::from_str::<Id>("true").is_err());
    }

    #[test]
    fn frame_ids_allow_colons_but_not_slashes() {
        assert!(FrameId::new("cam1:abc-7").is_ok());
        assert!(FrameId::new("../etc").is_err());
        assert!(FrameId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn age_brackets_cover_every_age() {
        let cases = [
            (0.0, "0-2"),
            (2.9, "0-2"),
            (3.0, "4-6"),
            (10.0, "8-12"),
            (14.0, "15-20"),
            (24.0, "25-32"),
            (38.5, "38-43"),
            (45.0, "38-43"),
            (50.0, "48-53"),
            (57.0, "60-100"),
            (99.0, "60-100"),
        ];
        for (age, want) in cases {
            assert_eq!(AgeBracket::from_age(age).as_str(), want, "age {age}");
        }
        for b in AgeBracket::ALL {
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{b}\""));
        }
    }

    #[test]
    fn camera_state_has_the_seed_shape() {
        let idle = CameraState {
            streaming: false,
            cycle: 0,
            fps: 0,
            section: None,
            destination: None,
            event: None,
        };
        assert_eq!(
            serde_json::to_string(&idle).unwrap(),
            r#"{"streaming":false,"cycle":0,"fps":0,"section":null,"destination":null,"event":null}"#
        );
        let busy = CameraState {
            streaming: true,
            cycle: 7,
            fps: 0,
            section: Some(Id::new("1").unwrap()),
            destination: Some("http://collector.default.svc.cluster.local:8080".into()),
            event: Some(Event::Exit),
        };
        assert_eq!(
            serde_json::to_string(&busy).unwrap(),
            r#"{"streaming":true,"cycle":7,"fps":0,"section":"1","destination":"http://collector.default.svc.cluster.local:8080","event":"exit"}"#
        );
    }

    #[test]
    fn stats_validation_names_the_bad_field() {
        let mut rec: StatsRecord = serde_json::from_value(serde_json::json!({
            "frame_id": "f1", "camera_id": "1", "section": "1", "event": "exit",
            "timestamp": "2020-02-25T14:35:38.204522Z", "count": 1,
            "people": [{"gender": "male", "gender_confidence": 0.9, "age": 40.0, "age_bracket": "38-43"}]
        }))
        .unwrap();
        assert!(rec.validate().is_ok());
        rec.people[0].gender_confidence = 1.5;
        let err = rec.validate().unwrap_err();
        assert!(err.message().contains("people[0].gender_confidence"));
        rec.people[0].gender_confidence = 0.5;
        rec.count = 0;
        assert!(rec.validate().unwrap_err().message().contains("count"));
    }

    #[test]
    fn frames_refuse_unknown_fields_and_bad_events() {
        let ok = serde_json::json!({
            "frame_id": "f1", "camera_id": 1, "section": 1, "event": "entry",
            "timestamp": "2020-02-25T14:35:38Z", "image": ""
        });
        assert!(serde_json::from_value::<Frame>(ok.clone()).is_ok());
        let mut bad = ok.clone();
        bad["event"] = "sideways".into();
        assert!(serde_json::from_value::<Frame>(bad).is_err());
        let mut extra = ok;
        extra["colour"] = "red".into();
        assert!(serde_json::from_value::<Frame>(extra).is_err());
    }
}
