//! Face recognition on real photos: a person enrolled from one photo is
//! found in another photo of them and nobody else is; different people stay
//! below the threshold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use airport_vision::{EmbedderConfig, Embedding, FaceEmbedder, VisionError};

/// The service's threshold for this model (the issue suggests 0.35-0.40).
const THRESHOLD: f32 = 0.35;

fn embeddings(relative: &str) -> (Vec<airport_vision::EmbeddedFace>, airport_vision::RgbImage) {
    let image = support::load(&support::installed(relative));
    (
        support::recognizer().recognize(&image).unwrap().faces,
        image,
    )
}

#[test]
fn yao_ming_enrolled_from_his_portrait_is_found_in_the_team_photo() {
    let (portrait, _) = embeddings("images/yaoming.jpg");
    assert_eq!(portrait.len(), 1, "the portrait has one face");
    let enrolled = &portrait[0].embedding;
    let (team, _) = embeddings("images/players.jpg");
    let mut scored: Vec<(f32, &airport_vision::EmbeddedFace)> = team
        .iter()
        .map(|f| (f.embedding.cosine(enrolled), f))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let above: Vec<f32> = scored
        .iter()
        .map(|s| s.0)
        .filter(|s| *s >= THRESHOLD)
        .collect();
    assert_eq!(
        above.len(),
        1,
        "similarities: {:?}",
        scored.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    // The match is Yao Ming: the tallest player, so the highest face of the
    // team in the frame (the crowd's faces are the small ones).
    let best = scored[0].1;
    let highest = team
        .iter()
        .filter(|f| f.face.bbox.height > 35.0)
        .min_by(|a, b| a.face.bbox.y.total_cmp(&b.face.bbox.y))
        .unwrap();
    assert_eq!(best.face.bbox, highest.face.bbox);
    // And clearly apart from everyone else.
    assert!(
        scored[0].0 - scored[1].0 > 0.15,
        "best {} next {}",
        scored[0].0,
        scored[1].0
    );
}

#[test]
fn different_people_stay_below_the_threshold() {
    let (friends, _) = embeddings("images/t1.jpg");
    assert_eq!(friends.len(), 6);
    for (i, a) in friends.iter().enumerate() {
        for b in &friends[i + 1..] {
            let s = a.embedding.cosine(&b.embedding);
            assert!(s < THRESHOLD, "two different people at {s}");
        }
    }
    let astronaut = support::recognizer()
        .recognize(&support::load(&support::testdata("astronaut.png")))
        .unwrap()
        .faces;
    let hopper = support::recognizer()
        .recognize(&support::load(&support::testdata(
            "grace_hopper_512x512.jpg",
        )))
        .unwrap()
        .faces;
    let s = astronaut[0].embedding.cosine(&hopper[0].embedding);
    assert!(s < THRESHOLD, "Eileen Collins and Grace Hopper at {s}");
}

#[test]
fn the_same_face_shrunk_and_mirrored_stays_the_same_person() {
    let image = support::load(&support::testdata("grace_hopper_512x512.jpg"));
    let recognizer = support::recognizer();
    let original = &recognizer.recognize(&image).unwrap().faces[0].embedding;
    let small = image::imageops::resize(&image, 300, 300, image::imageops::FilterType::Triangle);
    let mirrored = image::imageops::flip_horizontal(&image);
    for (what, other) in [("shrunk", small), ("mirrored", mirrored)] {
        let faces = recognizer.recognize(&other).unwrap().faces;
        assert_eq!(faces.len(), 1, "{what}");
        let s = faces[0].embedding.cosine(original);
        assert!(s > 0.6, "{what}: {s}");
    }
}

#[test]
fn embeddings_are_unit_vectors_of_the_models_length() {
    let recognizer = support::recognizer();
    assert_eq!(recognizer.embedding_len(), 512);
    let (faces, _) = embeddings("images/yaoming.jpg");
    let e: &Embedding = &faces[0].embedding;
    assert_eq!(e.len(), 512);
    let norm: f32 = e.as_slice().iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    let again = Embedding::new(e.as_slice().iter().map(|v| v * 3.0).collect()).unwrap();
    assert!((again.cosine(e) - 1.0).abs() < 1e-5);
}

#[test]
fn the_embedding_model_is_configuration() {
    let dir = support::model_dir();
    // The same model declared by hand: the same embeddings.
    let config =
        EmbedderConfig::arcface(dir.join(airport_vision::EMBEDDER_FILE)).with_input_size(112);
    let embedder = FaceEmbedder::load(config.clone()).unwrap();
    let image = support::load(&support::testdata("astronaut.png"));
    let face = support::recognizer()
        .detector()
        .detect(&image)
        .unwrap()
        .remove(0);
    let ours = embedder.embed(&image, std::slice::from_ref(&face)).unwrap();
    let default = support::recognizer()
        .embedder()
        .embed(&image, std::slice::from_ref(&face))
        .unwrap();
    assert!((ours[0].cosine(&default[0]) - 1.0).abs() < 1e-5);
    // Feeding BGR to an RGB model changes what it sees.
    let bgr = FaceEmbedder::load(EmbedderConfig {
        bgr: true,
        ..config
    })
    .unwrap();
    let swapped = bgr.embed(&image, &[face]).unwrap();
    assert!(swapped[0].cosine(&default[0]) < 0.99);
}

#[test]
fn a_missing_or_broken_model_is_a_clear_error() {
    let missing =
        FaceEmbedder::load(EmbedderConfig::arcface("/nonexistent/arcface.onnx")).unwrap_err();
    assert!(
        matches!(missing, VisionError::ModelMissing { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("make models"), "{missing}");
    let not_onnx = support::testdata("PROVENANCE.md");
    let broken = FaceEmbedder::load(EmbedderConfig::arcface(&not_onnx)).unwrap_err();
    assert!(
        matches!(broken, VisionError::ModelLoad { .. }),
        "{broken:?}"
    );
    assert!(!broken.is_client_error());
    let config = EmbedderConfig {
        input_size: 0,
        ..EmbedderConfig::arcface(&not_onnx)
    };
    assert!(matches!(
        FaceEmbedder::load(config),
        Err(VisionError::InvalidConfig(_))
    ));
}
