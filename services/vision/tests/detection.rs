//! Face detection on real photos: one face in each public-domain portrait,
//! everyone in the group photos, nothing in a blank frame; and one loaded
//! model shared by several threads gives the same answers as one thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use airport_vision::{DetectedFace, DetectorConfig, FaceDetector, RgbImage};

/// The landmarks sit where a face's features are: inside the box, eyes
/// left to right and above the nose, the nose above the mouth corners.
fn assert_plausible(face: &DetectedFace, what: &str) {
    let b = face.bbox;
    let [le, re, nose, lm, rm] = face.landmarks;
    for p in face.landmarks {
        assert!(
            p[0] >= b.x - 2.0
                && p[0] <= b.x + b.width + 2.0
                && p[1] >= b.y - 2.0
                && p[1] <= b.y + b.height + 2.0,
            "{what}: landmark {p:?} outside the box {b:?}"
        );
    }
    assert!(
        le[0] < re[0] && lm[0] < rm[0],
        "{what}: left and right swapped: {:?}",
        face.landmarks
    );
    assert!(
        le[1].max(re[1]) < nose[1] && nose[1] < lm[1].min(rm[1]),
        "{what}: features out of order: {:?}",
        face.landmarks
    );
    assert!(
        face.score > 0.5 && face.score <= 1.0,
        "{what}: score {}",
        face.score
    );
}

#[test]
fn one_face_in_each_public_domain_portrait() {
    for name in ["astronaut.png", "grace_hopper_512x512.jpg"] {
        let image = support::load(&support::testdata(name));
        let analysis = support::analyzer().analyze(&image).unwrap();
        assert_eq!(analysis.faces.len(), 1, "{name}: {:?}", analysis.faces);
        let face = &analysis.faces[0].face;
        assert_plausible(face, name);
        // A portrait: the face is a sizeable part of the frame, in its upper
        // two thirds, not at an edge.
        let b = face.bbox;
        let area = f64::from(b.width * b.height) / f64::from(image.width() * image.height());
        assert!(
            (0.02..0.4).contains(&area),
            "{name}: face is {area:.3} of the image"
        );
        let (cx, cy) = (b.x + b.width / 2.0, b.y + b.height / 2.0);
        assert!(
            cx > 100.0 && cx < 412.0 && cy > 50.0 && cy < 340.0,
            "{name}: face centre ({cx}, {cy})"
        );
        let a = analysis.faces[0].attributes;
        assert!(a.age > 15.0 && a.age < 90.0, "{name}: age {}", a.age);
        assert!((0.5..=1.0).contains(&a.gender_confidence));
        for stage in ["detect", "align", "gender", "age"] {
            assert!(
                analysis.timings.get(stage).is_some(),
                "{name}: no {stage} timing"
            );
        }
    }
}

#[test]
fn everyone_in_insightfaces_group_photo() {
    // t1.jpg: six people around a table, all facing the camera.
    let image = support::load(&support::installed("images/t1.jpg"));
    let faces = support::analyzer().detector().detect(&image).unwrap();
    assert_eq!(faces.len(), 6, "{faces:?}");
    for (i, f) in faces.iter().enumerate() {
        assert_plausible(f, &format!("t1 face {i}"));
    }
}

#[test]
fn the_whole_team_in_the_basketball_photo() {
    // players.jpg: the team, 16 people (11 standing, 5 crouching), in front
    // of a crowd whose faces are small. Every team face is 40-60 pixels
    // high at full size; the crowd's are under 30.
    let image = support::load(&support::installed("images/players.jpg"));
    let faces = support::analyzer().detector().detect(&image).unwrap();
    let team: Vec<&DetectedFace> = faces.iter().filter(|f| f.bbox.height > 35.0).collect();
    assert_eq!(team.len(), 16, "{faces:?}");
    for (i, f) in team.iter().enumerate() {
        assert_plausible(f, &format!("players face {i}"));
    }
}

#[test]
fn the_three_players_in_the_spurs_photo() {
    // gdp.jpg: three players in front of a blurred crowd.
    let image = support::load(&support::installed("images/gdp.jpg"));
    let faces = support::analyzer().detector().detect(&image).unwrap();
    let players: Vec<&DetectedFace> = faces.iter().filter(|f| f.bbox.height > 60.0).collect();
    assert_eq!(players.len(), 3, "{faces:?}");
}

#[test]
fn no_face_in_a_blank_or_tiny_frame() {
    let detector = support::analyzer().detector();
    assert!(
        detector
            .detect(&RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128])))
            .unwrap()
            .is_empty()
    );
    assert!(detector.detect(&RgbImage::new(1, 1)).unwrap().is_empty());
    let analysis = support::analyzer().analyze(&RgbImage::new(7, 300)).unwrap();
    assert!(analysis.faces.is_empty());
}

#[test]
fn frames_are_shrunk_to_the_detection_size_and_padded_to_32() {
    let detector = support::analyzer().detector();
    assert_eq!(detector.config().max_side, 480);
    let size = |w, h| {
        let s = detector.detection_size(w, h);
        (s.width, s.height, s.input_width, s.input_height)
    };
    assert_eq!(size(1280, 886), (480, 332, 480, 352));
    assert_eq!(size(640, 480), (480, 360, 480, 384));
    assert_eq!(size(233, 287), (233, 287, 256, 288));
    assert_eq!(size(800, 3000), (128, 480, 128, 480));
}

#[test]
fn a_smaller_detection_size_still_finds_the_portrait_face_and_maps_it_back() {
    let dir = support::model_dir();
    let small = FaceDetector::load(
        &dir.join(airport_vision::DETECTOR_FILE),
        DetectorConfig {
            max_side: 256,
            ..DetectorConfig::default()
        },
    )
    .unwrap();
    let image = support::load(&support::testdata("grace_hopper_512x512.jpg"));
    let full = support::analyzer().detector().detect(&image).unwrap();
    let half = small.detect(&image).unwrap();
    assert_eq!((full.len(), half.len()), (1, 1));
    // Same face in image coordinates, whichever resolution found it.
    let (a, b) = (full[0].bbox, half[0].bbox);
    assert!(
        airport_vision::geometry::iou(&a, &b) > 0.7,
        "{a:?} vs {b:?}"
    );
}

#[test]
fn threads_sharing_one_analyzer_get_the_same_answers() {
    let images: Vec<RgbImage> = ["astronaut.png", "grace_hopper_512x512.jpg"]
        .iter()
        .map(|n| support::load(&support::testdata(n)))
        .chain([support::load(&support::installed("images/t1.jpg"))])
        .collect();
    let analyzer = support::analyzer();
    let alone: Vec<_> = images
        .iter()
        .map(|i| analyzer.analyze(i).unwrap().faces)
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|k| {
                let image = &images[k % images.len()];
                s.spawn(move || (k % 3, analyzer.analyze(image).unwrap().faces))
            })
            .collect();
        for h in handles {
            let (k, faces) = h.join().unwrap();
            assert_eq!(faces, alone[k], "image {k} analysed concurrently");
        }
    });
}
