//! `vision-bench`: the airport vision pipeline on tract (`airport-vision`,
//! what the services run) side by side with a Python reference of the same
//! pipeline on onnxruntime (`reference.py` beside this crate), in one run, on
//! the same images, the same models and the same preprocessing.
//!
//! Each round measures, alternating which side goes first:
//! - per-stage latency on one thread (decode, detect, align, gender, age,
//!   embed, and the whole frame) on every image: the demo's camera frames
//!   (640x480, `services/testdata/demo-frames`, what the camera agents send;
//!   the two-people frame is the main case), a 640x480 crowd frame made from
//!   `t1.jpg` (six faces), the camera agent's built-in 160x120 frame, the
//!   public-domain portraits and the group photos of `make models`;
//! - whole-frame throughput on the two-people demo frame and on the crowd
//!   frame with 2 workers: tract with
//!   2 threads sharing one loaded model (the services' design), the
//!   services themselves over HTTP on loopback with 2 concurrent clients
//!   (when their release binaries are built), and the Python pipeline with
//!   2 processes, with 2 threads sharing its sessions, and with 1 process on
//!   2 intra-op threads;
//! - a parity check: both sides must find the same faces (boxes and
//!   landmarks within a couple of pixels, gender and age close, embeddings
//!   nearly parallel), or the comparison would not be honest; a failed check
//!   makes the run exit non-zero.
//!
//! The report (Markdown) goes to stdout and to
//! `target/vision-bench/report.md`: medians over the rounds, ratios
//! (tract / onnxruntime) computed round by round, and the load average.
//!
//! `make bench-vision` installs the Python side and runs this; by hand:
//! `scripts/install-vision-bench.sh && cargo build --release -p vision-bench
//! -p image-analysis -p face-recognition && target/release/vision-bench`.
//! Options: `--rounds N` (5), `--iterations N` (3 timed runs per image and
//! round), `--seconds S` (8, per throughput row), `--workers N` (2),
//! `--no-http`, `--bin-dir DIR` (where the service binaries are; default:
//! beside this binary), `--ort-design-side N` (640; 0 for none: one more
//! onnxruntime row detecting at that long side, outside the same-pipeline
//! comparison, to show what the detection resolution is worth).

mod http_side;
mod parity;
mod python_side;
mod report;
mod results;
mod stats;
mod tract_side;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use crate::http_side::Service;
use crate::python_side::{PythonMode, PythonSide};
use crate::report::{Report, ThroughputRow};
use crate::tract_side::{Pipeline, TractSide};

/// What to run, from the command line.
#[derive(Debug, Clone)]
struct Options {
    rounds: usize,
    iterations: usize,
    warmup: usize,
    seconds: f64,
    workers: usize,
    http: bool,
    bin_dir: Option<PathBuf>,
    /// A detection resolution for an extra onnxruntime row (0: none).
    design_side: u32,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut o = Options {
            rounds: 5,
            iterations: 3,
            warmup: 1,
            seconds: 8.0,
            workers: 2,
            http: true,
            bin_dir: None,
            design_side: 640,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--rounds" => o.rounds = parse_count("--rounds", &value("--rounds")?)?,
                "--iterations" => {
                    o.iterations = parse_count("--iterations", &value("--iterations")?)?
                }
                "--workers" => o.workers = parse_count("--workers", &value("--workers")?)?,
                "--seconds" => {
                    let v = value("--seconds")?;
                    o.seconds = v
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .with_context(|| format!("--seconds {v:?} is not a positive number"))?;
                }
                "--no-http" => o.http = false,
                "--ort-design-side" => {
                    let v = value("--ort-design-side")?;
                    o.design_side = v
                        .parse::<u32>()
                        .ok()
                        .filter(|s| *s == 0 || *s >= 32)
                        .with_context(|| {
                            format!("--ort-design-side {v:?} is not 0 or a side of at least 32")
                        })?;
                }
                "--bin-dir" => o.bin_dir = Some(PathBuf::from(value("--bin-dir")?)),
                "--help" | "-h" => {
                    println!(
                        "vision-bench [--rounds N] [--iterations N] [--seconds S] [--workers N] [--no-http] [--bin-dir DIR] [--ort-design-side N]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        Ok(o)
    }
}

fn parse_count(name: &str, v: &str) -> Result<usize> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("{name} {v:?} is not a positive whole number"))
}

/// One image of the benchmark.
#[derive(Debug, Clone)]
pub struct BenchImage {
    /// Short name for the report.
    pub name: String,
    /// The file both sides read.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Bytes,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The 640x480 crowd frame: `t1.jpg` (1280x886, six people) scaled to
/// 480 rows and cropped to 640 columns around its centre, JPEG quality 90.
/// Written once; both sides read the same file.
fn camera_frame(source: &Path, dest: &Path) -> Result<()> {
    let bytes = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    let image = airport_vision::decode(&bytes, airport_vision::DEFAULT_MAX_PIXELS)
        .with_context(|| format!("decoding {}", source.display()))?;
    let width = (f64::from(image.width()) * 480.0 / f64::from(image.height())).round() as u32;
    if width < 640 {
        bail!("{} is too narrow for a 640x480 frame", source.display());
    }
    let scaled = image::imageops::resize(&image, width, 480, image::imageops::FilterType::Triangle);
    let cropped = image::imageops::crop_imm(&scaled, (width - 640) / 2, 0, 640, 480).to_image();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&cropped)
        .context("encoding the camera frame")?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(dest, out).with_context(|| format!("writing {}", dest.display()))
}

fn images(root: &Path, models: &Path, work: &Path) -> Result<(Vec<BenchImage>, Vec<usize>)> {
    let camera = work.join("camera-640x480.jpg");
    let t1 = models.join("images/t1.jpg");
    if !t1.is_file() {
        bail!("{} not found: run make models", t1.display());
    }
    camera_frame(&t1, &camera)?;
    let demo = root.join("services/testdata/demo-frames");
    let paths = [
        // What the camera agents send in the demo (640x480, made from the
        // public-domain portraits): the main case.
        (
            "demo frame 02-two-people.jpg",
            demo.join("02-two-people.jpg"),
        ),
        ("demo frame 01-personx.jpg", demo.join("01-personx.jpg")),
        ("demo frame 03-nobody.jpg", demo.join("03-nobody.jpg")),
        (
            "demo frame 04-astronaut-far.jpg",
            demo.join("04-astronaut-far.jpg"),
        ),
        ("crowd frame 640x480 (from t1.jpg)", camera),
        (
            "camera-agent's built-in frame-01.jpg",
            root.join("services/testdata/frames/frame-01.jpg"),
        ),
        (
            "astronaut.png",
            root.join("services/testdata/vision/astronaut.png"),
        ),
        (
            "grace_hopper_512x512.jpg",
            root.join("services/testdata/vision/grace_hopper_512x512.jpg"),
        ),
        ("t1.jpg", t1),
        ("players.jpg", models.join("images/players.jpg")),
        ("gdp.jpg", models.join("images/gdp.jpg")),
        ("yaoming.jpg", models.join("images/yaoming.jpg")),
    ];
    let mut out = Vec::new();
    for (name, path) in paths {
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (the group photos come with make models)",
                path.display()
            )
        })?;
        out.push(BenchImage {
            name: name.to_string(),
            path,
            bytes: Bytes::from(bytes),
        });
    }
    // Throughput on the main case (the first: a demo frame with two faces)
    // and the crowd frame (six faces: the per-face stages weigh more).
    Ok((out, vec![0, 4]))
}

fn run() -> Result<bool> {
    let options = Options::parse()?;
    let root = workspace_root();
    let models = airport_vision::model_dir(&root);
    let work = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("vision-bench");
    let (images, throughput_images) = images(&root, &models, &work)?;
    let main = 0;

    eprintln!("loading the models into tract");
    let tract = TractSide::load(&models)?;
    let max_side = tract.analyzer.detector().config().max_side;
    if tract.recognizer.detector().config().max_side != max_side {
        bail!("the analysis and recognition detectors run at different resolutions");
    }
    let python = PythonSide {
        python: root.join(".venv/bin/python"),
        script: root.join("services/vision-bench/reference.py"),
        models: models.clone(),
        max_side,
    };
    let python_versions = python.check()?;
    let mut report = Report::new(&options_summary(&options), &python_versions, &images, main);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP client runtime")?;
    let bin_dir = options
        .bin_dir
        .clone()
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| root.join("target/release"));
    let mut services: Vec<(Pipeline, Service)> = Vec::new();
    if options.http {
        for pipeline in [Pipeline::Analysis, Pipeline::Recognition] {
            let binary = Service::binary(&bin_dir, pipeline);
            if !binary.is_file() {
                report.note(format!(
                    "HTTP row for {} not measured: {} is not built (cargo build --release -p {})",
                    pipeline.name(),
                    binary.display(),
                    binary
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
                continue;
            }
            eprintln!("starting {}", binary.display());
            let service = Service::start(
                &bin_dir,
                pipeline,
                &models,
                options.workers,
                &work,
                &runtime,
            )?;
            services.push((pipeline, service));
        }
    } else {
        report.note("HTTP rows not measured (--no-http)".to_string());
    }

    eprintln!("loading the models into onnxruntime (reference.py serve)");
    let mut server = python.serve()?;
    eprintln!("reference.py serve runs on {}", server.runtime);
    for round in 0..options.rounds {
        eprintln!(
            "round {}/{} (load average {})",
            round + 1,
            options.rounds,
            stats::load_average()
        );
        report.load(stats::load_average());
        // Per-stage latency, one thread, image by image, alternating which
        // side goes first (so a load change hits both sides alike).
        let mut tract_runs = Vec::new();
        let mut ort_runs = Vec::new();
        for (i, image) in images.iter().enumerate() {
            let tract_first = (round + i) % 2 == 0;
            for side in if tract_first { [0, 1] } else { [1, 0] } {
                if side == 0 {
                    tract_runs.push(
                        tract
                            .stages(&image.bytes, options.warmup, options.iterations)
                            .with_context(|| format!("tract on {}", image.name))?,
                    );
                } else {
                    ort_runs.push(
                        server
                            .run_image(&image.path, options.warmup, options.iterations)
                            .with_context(|| format!("onnxruntime on {}", image.name))?,
                    );
                }
            }
        }
        report.stages_round(&tract_runs, &ort_runs);

        // Throughput, the configurations rotated per round.
        for (&frame_index, pipeline) in throughput_images
            .iter()
            .flat_map(|i| [(i, Pipeline::Analysis), (i, Pipeline::Recognition)])
        {
            let frame = &images[frame_index];
            let mut configs: Vec<ThroughputRow> = vec![ThroughputRow::Tract];
            if services.iter().any(|(p, _)| *p == pipeline) {
                configs.push(ThroughputRow::Http);
            }
            configs.extend(PythonMode::ALL.map(ThroughputRow::Python));
            if options.design_side != 0 && options.design_side != max_side {
                configs.push(ThroughputRow::PythonDetectingAt(options.design_side));
            }
            let n = configs.len();
            configs.rotate_left(round % n);
            for config in configs {
                eprintln!(
                    "  {}, {}: {}",
                    frame.name,
                    pipeline.name(),
                    config.label(options.workers)
                );
                let measured = match config {
                    ThroughputRow::Tract => tract.throughput(
                        pipeline,
                        &frame.bytes,
                        options.workers,
                        options.seconds,
                    )?,
                    ThroughputRow::Http => {
                        let service = services
                            .iter()
                            .find(|(p, _)| *p == pipeline)
                            .map(|(_, s)| s)
                            .context("no service for this pipeline")?;
                        let faces = service.faces(&runtime, &frame.bytes)?;
                        report.http_faces(frame_index, pipeline, faces);
                        service.throughput(
                            &runtime,
                            &frame.bytes,
                            options.workers,
                            options.seconds,
                        )?
                    }
                    ThroughputRow::Python(mode) => python.throughput(
                        pipeline,
                        mode,
                        None,
                        &frame.path,
                        options.workers,
                        options.seconds,
                    )?,
                    ThroughputRow::PythonDetectingAt(side) => python.throughput(
                        pipeline,
                        PythonMode::Processes,
                        Some(side),
                        &frame.path,
                        options.workers,
                        options.seconds,
                    )?,
                };
                report.throughput(round, frame_index, pipeline, config, measured);
            }
        }
    }
    report.load(stats::load_average());
    drop(services);

    let text = report.render(options.workers);
    println!("{text}");
    let path = work.join("report.md");
    std::fs::create_dir_all(&work)?;
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("report written to {}", path.display());
    Ok(report.parity_ok())
}

fn options_summary(o: &Options) -> String {
    format!(
        "{} rounds; per round {} warm-up + {} timed runs per image and pipeline; throughput rows {} s each with {} workers",
        o.rounds, o.warmup, o.iterations, o.seconds, o.workers
    )
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "error: the parity check failed: the two pipelines disagree (see the report)"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
