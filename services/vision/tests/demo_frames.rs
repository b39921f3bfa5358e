//! The demo's camera frames (`services/testdata/demo-frames/`) and its
//! watchlist photo (`services/testdata/watchlist/PersonX.jpg`), made by the
//! code below from the two public-domain portraits of
//! `services/testdata/vision/` and nothing else:
//!
//! ```sh
//! cargo test -p airport-vision --test demo_frames -- --ignored   # rewrites them
//! ```
//!
//! The other tests check that the committed files are exactly what this code
//! makes, that each folder fits a ConfigMap (how a cluster gets them), and
//! that each frame shows the real models who its name says:
//! `make demo` counts people, their ages, and alerts on `PersonX` from these.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use airport_vision::{Embedding, RgbImage};
use image::imageops::{self, FilterType};

/// The cameras' frame size.
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
/// JPEG quality: small files, no visible blocks.
const QUALITY: u8 = 85;

/// Face recognition's default `RECOGNITION_THRESHOLD` for this model.
const THRESHOLD: f32 = 0.37;

/// The name `PersonX.jpg` enrols on the watchlist (its file stem).
const PERSON_OF_INTEREST: &str = "PersonX";

fn frames_dir() -> PathBuf {
    support::workspace_root().join("services/testdata/demo-frames")
}

fn watchlist_dir() -> PathBuf {
    support::workspace_root().join("services/testdata/watchlist")
}

/// The two portraits, decoded.
struct Portraits {
    /// Grace Hopper: `PersonX` on the demo's watchlist.
    hopper: RgbImage,
    /// Eileen Collins in her spacesuit, a flag and a shuttle model behind her.
    astronaut: RgbImage,
}

impl Portraits {
    fn load() -> Self {
        Self {
            hopper: support::load(&support::testdata("grace_hopper_512x512.jpg")),
            astronaut: support::load(&support::testdata("astronaut.png")),
        }
    }
}

/// One demo frame: its file, how it is made, and who is in it.
struct Frame {
    file: &'static str,
    make: fn(&Portraits) -> RgbImage,
    faces: usize,
    person_of_interest: bool,
}

/// In name order, which is the order a camera sends them in, in a loop.
const FRAMES: &[Frame] = &[
    Frame {
        file: "01-personx.jpg",
        make: personx_alone,
        faces: 1,
        person_of_interest: true,
    },
    Frame {
        file: "02-two-people.jpg",
        make: two_people,
        faces: 2,
        person_of_interest: true,
    },
    Frame {
        file: "03-nobody.jpg",
        make: nobody,
        faces: 0,
        person_of_interest: false,
    },
    Frame {
        file: "04-astronaut-far.jpg",
        make: astronaut_far,
        faces: 1,
        person_of_interest: false,
    },
];

/// `image` resized to `width` x `height` (no aspect kept).
fn scaled(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    imageops::resize(image, width, height, FilterType::Triangle)
}

/// The room the cameras look at, empty: the corner of the astronaut's photo
/// with the shuttle model (right of her hair, above the helmet), enlarged to
/// a frame and softened. Every frame is this room, with or without people.
fn room(p: &Portraits) -> RgbImage {
    let corner = imageops::crop_imm(&p.astronaut, 312, 0, 200, 150).to_image();
    imageops::blur(&scaled(&corner, WIDTH, HEIGHT), 2.0)
}

/// Grace Hopper alone, large and centred.
fn personx_alone(p: &Portraits) -> RgbImage {
    let mut frame = room(p);
    imageops::replace(&mut frame, &scaled(&p.hopper, 440, 440), 100, 40);
    frame
}

/// Both, side by side: Grace Hopper on the left, the astronaut on the right.
fn two_people(p: &Portraits) -> RgbImage {
    let mut frame = room(p);
    imageops::replace(&mut frame, &scaled(&p.hopper, 300, 300), 10, 110);
    imageops::replace(&mut frame, &scaled(&p.astronaut, 300, 300), 330, 110);
    frame
}

/// Nobody: the empty room.
fn nobody(p: &Portraits) -> RgbImage {
    room(p)
}

/// The astronaut alone, small and off centre, as if further from the camera.
fn astronaut_far(p: &Portraits) -> RgbImage {
    let mut frame = room(p);
    imageops::replace(&mut frame, &scaled(&p.astronaut, 240, 240), 360, 200);
    frame
}

/// The watchlist photo: Grace Hopper's head and shoulders, cropped from her
/// portrait.
fn watchlist_photo(p: &Portraits) -> RgbImage {
    scaled(
        &imageops::crop_imm(&p.hopper, 64, 0, 384, 384).to_image(),
        256,
        256,
    )
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(image)
        .unwrap();
    out
}

/// Every file the generator makes: path → JPEG bytes.
fn generated() -> BTreeMap<PathBuf, Vec<u8>> {
    let portraits = Portraits::load();
    let mut files: BTreeMap<PathBuf, Vec<u8>> = FRAMES
        .iter()
        .map(|f| (frames_dir().join(f.file), jpeg(&(f.make)(&portraits))))
        .collect();
    files.insert(
        watchlist_dir().join(format!("{PERSON_OF_INTEREST}.jpg")),
        jpeg(&watchlist_photo(&portraits)),
    );
    files
}

#[test]
#[ignore = "writes the committed demo frames and watchlist photo"]
fn regenerate_demo_frames() {
    for (path, bytes) in generated() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
}

#[test]
fn committed_files_are_what_the_generator_makes() {
    let regenerate = "cargo test -p airport-vision --test demo_frames -- --ignored";
    for (path, bytes) in generated() {
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (`{regenerate}` writes it)", path.display()));
        assert!(
            committed == bytes,
            "{} is not what the generator makes: `{regenerate}` rewrites it",
            path.display()
        );
    }
    // Nothing else in the folders: a camera streams every file of its folder,
    // and the watchlist enrols every photo of its.
    for (dir, expected) in [(frames_dir(), FRAMES.len()), (watchlist_dir(), 1)] {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), expected, "{}: {names:?}", dir.display());
    }
}

/// A cluster gets each folder as one ConfigMap (`make deploy-app-default
/// K8S=1`), which holds at most 1 MiB; small files also keep the repository
/// and every camera's memory small.
#[test]
fn each_folder_fits_a_configmap() {
    for dir in [frames_dir(), watchlist_dir()] {
        let bytes: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(bytes < 256 * 1024, "{}: {bytes} bytes", dir.display());
    }
}

/// The committed frames as the models see them: each has the faces its name
/// says, with an age and a gender; `PersonX`, enrolled from the watchlist
/// photo as face recognition does, is found where Grace Hopper is, well above
/// the threshold, and nowhere else.
#[test]
fn each_frame_shows_the_models_who_it_says() {
    let photo = support::load(&watchlist_dir().join(format!("{PERSON_OF_INTEREST}.jpg")));
    let enrolled = support::recognizer().recognize(&photo).unwrap().faces;
    assert_eq!(enrolled.len(), 1, "the watchlist photo has one face");
    let enrolled: &Embedding = &enrolled[0].embedding;

    for frame in FRAMES {
        let path = frames_dir().join(frame.file);
        let image = support::load(&path);
        assert_eq!((image.width(), image.height()), (WIDTH, HEIGHT));
        let analysis = support::analyzer().analyze(&image).unwrap();
        let ages: Vec<String> = analysis
            .faces
            .iter()
            .map(|f| {
                format!(
                    "{:?} {:.0} ({:?})",
                    f.attributes.gender, f.attributes.age, f.attributes.age_bracket
                )
            })
            .collect();
        println!("{}: {ages:?}", frame.file);
        assert_eq!(
            analysis.faces.len(),
            frame.faces,
            "{}: {ages:?}",
            frame.file
        );
        for face in &analysis.faces {
            assert!(
                (1.0..=100.0).contains(&face.attributes.age),
                "{}: {ages:?}",
                frame.file
            );
        }

        let recognised = support::recognizer().recognize(&image).unwrap().faces;
        assert_eq!(recognised.len(), frame.faces, "{}", frame.file);
        let best = recognised
            .iter()
            .map(|f| f.embedding.cosine(enrolled))
            .fold(f32::NEG_INFINITY, f32::max);
        println!(
            "{}: best similarity to {PERSON_OF_INTEREST} {best:.2}",
            frame.file
        );
        if frame.person_of_interest {
            assert!(best >= THRESHOLD + 0.2, "{}: {best}", frame.file);
        } else {
            assert!(best < THRESHOLD - 0.1, "{}: {best}", frame.file);
        }
    }
}
