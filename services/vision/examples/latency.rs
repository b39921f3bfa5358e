//! Per-stage latency of the two pipelines on one image, on this machine,
//! one thread (the services run one inference per worker thread):
//!
//! ```sh
//! cargo run --release -p airport-vision --example latency -- <image> [runs] [max_side]
//! ```
//!
//! A quick look, not the benchmark (`make bench` compares against the
//! onnxruntime pipeline); it prints the median and the minimum of each
//! stage over `runs` frames (default 20) after a warm-up frame.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use airport_vision::{
    Analyzer, AnalyzerConfig, DecodeLimits, Recognizer, RecognizerConfig, Timings, VisionError,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let image = args
        .next()
        .ok_or("usage: latency <image> [runs] [max_side]")?;
    let runs: usize = args
        .next()
        .map(|r| r.parse().map_err(|_| format!("runs {r:?} is not a number")))
        .transpose()?
        .unwrap_or(20)
        .max(1);
    let max_side: Option<u32> = args
        .next()
        .map(|s| {
            s.parse()
                .map_err(|_| format!("max_side {s:?} is not a number"))
        })
        .transpose()?;
    let bytes = std::fs::read(&image).map_err(|e| format!("{image}: {e}"))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir: PathBuf = airport_vision::model_dir(&root);
    let fail = |e: VisionError| e.to_string();

    let mut analyzer_config = AnalyzerConfig::from_dir(&dir);
    let mut recognizer_config = RecognizerConfig::from_dir(&dir);
    if let Some(side) = max_side {
        analyzer_config.detector.max_side = side;
        recognizer_config.detector.max_side = side;
    }
    let started = Instant::now();
    let analyzer = Analyzer::new(&analyzer_config).map_err(fail)?;
    let recognizer = Recognizer::new(&recognizer_config).map_err(fail)?;
    println!("models loaded in {:.0} ms", ms(started.elapsed()));

    let limits = DecodeLimits::default();
    let first = analyzer.analyze_bytes(&bytes, &limits).map_err(fail)?;
    let size = analyzer
        .detector()
        .detection_size(first.width, first.height);
    println!(
        "{image}: {}x{}, detected at {}x{} (input {}x{}), {} faces",
        first.width,
        first.height,
        size.width,
        size.height,
        size.input_width,
        size.input_height,
        first.faces.len()
    );
    recognizer.recognize_bytes(&bytes, &limits).map_err(fail)?;

    let mut analysis = Vec::with_capacity(runs);
    let mut recognition = Vec::with_capacity(runs);
    for _ in 0..runs {
        analysis.push(timed(|| {
            analyzer.analyze_bytes(&bytes, &limits).map(|a| a.timings)
        })?);
        recognition.push(timed(|| {
            recognizer
                .recognize_bytes(&bytes, &limits)
                .map(|r| r.timings)
        })?);
    }
    report("image analysis", &analysis);
    report("face recognition", &recognition);
    Ok(())
}

/// Runs one frame; its stage timings plus the end-to-end `total`.
fn timed(
    frame: impl FnOnce() -> Result<Timings, VisionError>,
) -> Result<BTreeMap<String, Duration>, String> {
    let start = Instant::now();
    let timings = frame().map_err(|e| e.to_string())?;
    let total = start.elapsed();
    let mut stages: BTreeMap<String, Duration> =
        timings.iter().map(|(s, d)| (s.to_string(), d)).collect();
    stages.insert("total".into(), total);
    Ok(stages)
}

fn report(name: &str, frames: &[BTreeMap<String, Duration>]) {
    println!("{name} ({} frames): median / min ms", frames.len());
    let Some(first) = frames.first() else {
        return;
    };
    for stage in first.keys() {
        let mut values: Vec<Duration> = frames
            .iter()
            .filter_map(|f| f.get(stage).copied())
            .collect();
        values.sort();
        let median = values[values.len() / 2];
        println!("  {stage:8} {:8.1} {:8.1}", ms(median), ms(values[0]));
    }
    let mut totals: Vec<Duration> = frames
        .iter()
        .filter_map(|f| f.get("total").copied())
        .collect();
    totals.sort();
    if let Some(median) = totals.get(totals.len() / 2) {
        println!(
            "  = {:.1} frames/s on one thread",
            1.0 / median.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
