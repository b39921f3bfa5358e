//! The figures of every round, and the Markdown report: medians over the
//! rounds, ratios computed round by round (both sides measured under the
//! same load), the parity check's worst differences.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::BenchImage;
use crate::parity::{Comparison, Tolerances, compare};
use crate::python_side::PythonMode;
use crate::results::{ImageRun, Samples, Throughput};
use crate::stats::{median, percentile, range};
use crate::tract_side::Pipeline;

/// One throughput configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThroughputRow {
    /// airport-vision in this process, N threads sharing the models.
    Tract,
    /// The service binary over HTTP, N concurrent clients.
    Http,
    /// reference.py.
    Python(PythonMode),
    /// reference.py as N processes, detecting at another long side: not the
    /// same pipeline, so outside the ratios; what the resolution is worth.
    PythonDetectingAt(u32),
}

impl ThroughputRow {
    /// For the report.
    pub fn label(self, workers: usize) -> String {
        match self {
            ThroughputRow::Tract => {
                format!("tract (airport-vision), {workers} threads sharing one loaded model")
            }
            ThroughputRow::Http => format!(
                "the service over HTTP (loopback, {workers} workers, {workers} concurrent clients)"
            ),
            ThroughputRow::Python(mode) => mode.label(workers),
            ThroughputRow::PythonDetectingAt(side) => format!(
                "*not the same pipeline:* {}, detecting at a long side of {side}",
                PythonMode::Processes.label(workers)
            ),
        }
    }
}

/// Everything measured, round by round.
#[derive(Debug)]
pub struct Report {
    options: String,
    python_versions: String,
    images: Vec<String>,
    main: usize,
    loads: Vec<String>,
    notes: Vec<String>,
    /// Per round: tract's and onnxruntime's runs, one per image.
    rounds: Vec<(Vec<ImageRun>, Vec<ImageRun>)>,
    /// (image, pipeline, configuration) → (round, measurement).
    throughput: BTreeMap<(usize, u8, ThroughputRow), Vec<(usize, Throughput)>>,
    http_faces: BTreeMap<(usize, u8), u64>,
    tolerances: Tolerances,
}

fn key(p: Pipeline) -> u8 {
    match p {
        Pipeline::Analysis => 0,
        Pipeline::Recognition => 1,
    }
}

/// `median (min–max)` of per-round values.
fn spread(values: &[f64], digits: usize) -> String {
    let (lo, hi) = range(values);
    if values.len() > 1 {
        format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            median(values),
            lo,
            hi
        )
    } else {
        format!("{:.digits$}", median(values))
    }
}

fn stage_median(samples: &Samples, stage: &str) -> Option<f64> {
    if stage == "frame" {
        return Some(median(&samples.frame_ms));
    }
    samples.stages.get(stage).map(|v| median(v))
}

impl Report {
    /// An empty report.
    pub fn new(options: &str, python_versions: &str, images: &[BenchImage], main: usize) -> Self {
        Self {
            options: options.to_string(),
            python_versions: python_versions.to_string(),
            images: images.iter().map(|i| i.name.clone()).collect(),
            main,
            loads: Vec::new(),
            notes: Vec::new(),
            rounds: Vec::new(),
            throughput: BTreeMap::new(),
            http_faces: BTreeMap::new(),
            tolerances: Tolerances::default(),
        }
    }

    /// A line for the report's notes.
    pub fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    /// The load average at a point of the run.
    pub fn load(&mut self, load: String) {
        self.loads.push(load);
    }

    /// The faces the service reported for the main frame.
    pub fn http_faces(&mut self, image: usize, pipeline: Pipeline, faces: u64) {
        self.http_faces.insert((image, key(pipeline)), faces);
    }

    /// One round of per-stage runs.
    pub fn stages_round(&mut self, tract: &[ImageRun], ort: &[ImageRun]) {
        self.rounds.push((tract.to_vec(), ort.to_vec()));
    }

    /// One throughput measurement.
    pub fn throughput(
        &mut self,
        round: usize,
        image: usize,
        pipeline: Pipeline,
        row: ThroughputRow,
        measured: Throughput,
    ) {
        self.throughput
            .entry((image, key(pipeline), row))
            .or_default()
            .push((round, measured));
    }

    fn comparisons(&self) -> Vec<(usize, &'static str, Comparison)> {
        let mut out: Vec<(usize, &'static str, Comparison)> = Vec::new();
        for (tract, ort) in &self.rounds {
            for (i, (t, o)) in tract.iter().zip(ort).enumerate() {
                for (name, tf, of) in [
                    ("analysis", &t.analysis_faces, &o.analysis_faces),
                    ("recognition", &t.recognition_faces, &o.recognition_faces),
                ] {
                    let c = compare(tf, of, &self.tolerances);
                    match out.iter_mut().find(|(j, n, _)| *j == i && *n == name) {
                        Some((_, _, worst)) => merge(worst, c),
                        None => out.push((i, name, c)),
                    }
                }
            }
        }
        out
    }

    /// Whether the parity check passed on every image, pipeline and round.
    pub fn parity_ok(&self) -> bool {
        !self.rounds.is_empty() && self.comparisons().iter().all(|(_, _, c)| c.ok())
    }

    /// Per-round medians of one stage of one image, both sides.
    fn stage_rounds(
        &self,
        image: usize,
        pipeline: Pipeline,
        stage: &str,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut tract = Vec::new();
        let mut ort = Vec::new();
        let mut ratios = Vec::new();
        for (t, o) in &self.rounds {
            let pick = |run: &ImageRun| match pipeline {
                Pipeline::Analysis => stage_median(&run.analysis, stage),
                Pipeline::Recognition => stage_median(&run.recognition, stage),
            };
            if let (Some(a), Some(b)) = (t.get(image).and_then(pick), o.get(image).and_then(pick)) {
                tract.push(a);
                ort.push(b);
                if b > 0.0 {
                    ratios.push(a / b);
                }
            }
        }
        (tract, ort, ratios)
    }

    /// The report, in Markdown.
    pub fn render(&self, workers: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## Vision: tract (airport-vision) against onnxruntime (reference.py)\n"
        );
        let _ = writeln!(
            s,
            "Run of {} (UTC), {} cores. {}.",
            airport_common::Timestamp::now(),
            std::thread::available_parallelism().map_or(1, usize::from),
            self.options
        );
        let _ = writeln!(
            s,
            "Python side: {}. Load average (1/5/15 min) at the start of each round and at the end: {}.\n",
            self.python_versions,
            self.loads.join("; ")
        );
        for note in &self.notes {
            let _ = writeln!(s, "- {note}");
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }

        // Parity.
        let _ = writeln!(
            s,
            "### Parity (worst over the rounds; tolerances: {} px per 200 px of face height, detection score {}, male probability {}, age {} years, embedding cosine at least {})\n",
            self.tolerances.pixels,
            self.tolerances.score,
            self.tolerances.male_probability,
            self.tolerances.age,
            self.tolerances.cosine
        );
        let _ = writeln!(
            s,
            "| image | size | pipeline | faces tract / ort | box px | landmarks px | Δ score | Δ male prob. | Δ age | min cosine | check |"
        );
        let _ = writeln!(s, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
        for (i, pipeline, c) in self.comparisons() {
            let size = self
                .rounds
                .first()
                .and_then(|(t, _)| t.get(i))
                .map(|r| format!("{}x{}", r.width, r.height))
                .unwrap_or_default();
            let analysis = pipeline == "analysis";
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} | {:.2} | {:.2} | {:.3} | {} | {} | {} | {} |",
                self.images.get(i).map_or("?", String::as_str),
                size,
                pipeline,
                c.tract_faces,
                c.ort_faces,
                c.box_px,
                c.landmark_px,
                c.score,
                if analysis {
                    format!("{:.3}", c.male_probability)
                } else {
                    "".into()
                },
                if analysis {
                    format!("{:.2}", c.age)
                } else {
                    "".into()
                },
                if analysis {
                    "".into()
                } else {
                    format!("{:.4}", c.min_cosine)
                },
                if c.ok() {
                    "ok".to_string()
                } else {
                    format!("**FAILED**: {}", c.failures.join("; "))
                }
            );
        }
        for ((image, pipeline), faces) in &self.http_faces {
            let tract_faces = self
                .rounds
                .first()
                .and_then(|(t, _)| t.get(*image))
                .map(|r| {
                    if *pipeline == 0 {
                        r.analysis_faces.len()
                    } else {
                        r.recognition_faces.len()
                    }
                });
            let _ = writeln!(
                s,
                "\nThe {} service found {faces} faces in {} over HTTP (tract in process: {}).",
                if *pipeline == 0 {
                    "image analysis"
                } else {
                    "face recognition"
                },
                self.images.get(*image).map_or("?", String::as_str),
                tract_faces.map_or("?".to_string(), |n| n.to_string())
            );
        }
        s.push('\n');

        // Per-stage latency on the main image.
        let main_name = self.images.get(self.main).map_or("?", String::as_str);
        let _ = writeln!(
            s,
            "### Per-stage latency, one thread, {main_name} (ms, median of the rounds' medians, min–max over rounds)\n"
        );
        let _ = writeln!(
            s,
            "| pipeline | stage | tract ms | onnxruntime ms | tract / onnxruntime |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|");
        for (pipeline, stages) in [
            (
                Pipeline::Analysis,
                &["decode", "detect", "align", "gender", "age", "frame"][..],
            ),
            (
                Pipeline::Recognition,
                &["decode", "detect", "align", "embed", "frame"][..],
            ),
        ] {
            for stage in stages {
                let (t, o, r) = self.stage_rounds(self.main, pipeline, stage);
                let label = if *stage == "frame" {
                    "**whole frame**"
                } else {
                    stage
                };
                let _ = writeln!(
                    s,
                    "| {} | {label} | {} | {} | {:.2} |",
                    pipeline.name(),
                    spread(&t, 2),
                    spread(&o, 2),
                    median(&r)
                );
            }
        }
        s.push('\n');

        // Every image.
        let _ = writeln!(
            s,
            "### Every image, one thread (ms per whole frame, decode included; ratios tract / onnxruntime per stage)\n"
        );
        let _ = writeln!(
            s,
            "| image | size | faces | analysis tract | analysis ort | ratio | recognition tract | recognition ort | ratio | detect | gender | age | embed |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for (i, name) in self.images.iter().enumerate() {
            let (ta, oa, ra) = self.stage_rounds(i, Pipeline::Analysis, "frame");
            let (tr, or, rr) = self.stage_rounds(i, Pipeline::Recognition, "frame");
            let ratio = |p, stage| {
                let (_, _, r) = self.stage_rounds(i, p, stage);
                if r.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.2}", median(&r))
                }
            };
            let first = self.rounds.first().and_then(|(t, _)| t.get(i));
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} | {} | {} | {} | {} |",
                first.map_or(String::new(), |r| format!("{}x{}", r.width, r.height)),
                first.map_or(0, |r| r.analysis_faces.len()),
                median(&ta),
                median(&oa),
                median(&ra),
                median(&tr),
                median(&or),
                median(&rr),
                ratio(Pipeline::Analysis, "detect"),
                ratio(Pipeline::Analysis, "gender"),
                ratio(Pipeline::Analysis, "age"),
                ratio(Pipeline::Recognition, "embed"),
            );
        }
        s.push('\n');

        let mut throughput_images: Vec<usize> = self.throughput.keys().map(|k| k.0).collect();
        throughput_images.dedup();
        for image in throughput_images {
            self.render_throughput(&mut s, image, workers);
        }
        s
    }

    fn render_throughput(&self, s: &mut String, image: usize, workers: usize) {
        let name = self.images.get(image).map_or("?", String::as_str);
        let _ = writeln!(
            s,
            "### Throughput, {name}, {workers} workers on {} cores (frames/s, median of the rounds, min–max; `vs best ort`: against the best onnxruntime configuration of the same round; `scaling`: against the same side's one-thread frame rate of the same round)\n",
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        let _ = writeln!(
            s,
            "| configuration | analysis frames/s | p50 ms | vs best ort | scaling | recognition frames/s | p50 ms | vs best ort | scaling |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        let mut rows: Vec<ThroughputRow> = self
            .throughput
            .keys()
            .filter(|k| k.0 == image)
            .map(|k| k.2)
            .collect();
        rows.sort();
        rows.dedup();
        for row in rows {
            let mut cells = Vec::new();
            for pipeline in [0u8, 1] {
                let Some(measured) = self.throughput.get(&(image, pipeline, row)) else {
                    cells.push("– | – | – | –".to_string());
                    continue;
                };
                // Against the same side's one-thread frame rate of the same
                // round (the per-stage runs): how well the workers scale.
                let scaling: Vec<f64> = measured
                    .iter()
                    .filter_map(|(round, t)| {
                        if matches!(row, ThroughputRow::PythonDetectingAt(_)) {
                            return None;
                        }
                        let (tract, ort) = self.rounds.get(*round)?;
                        let runs = match row {
                            ThroughputRow::Python(_) => ort,
                            _ => tract,
                        };
                        let run = runs.get(image)?;
                        let samples = if pipeline == 0 {
                            &run.analysis
                        } else {
                            &run.recognition
                        };
                        let single_fps = 1000.0 / median(&samples.frame_ms);
                        Some(t.fps() / single_fps)
                    })
                    .collect();
                let fps: Vec<f64> = measured.iter().map(|(_, t)| t.fps()).collect();
                let latencies: Vec<f64> = measured
                    .iter()
                    .flat_map(|(_, t)| t.latencies_ms.iter().copied())
                    .collect();
                let ratios: Vec<f64> = measured
                    .iter()
                    .filter_map(|(round, t)| {
                        let best = self.best_python(image, pipeline, *round)?;
                        Some(t.fps() / best)
                    })
                    .collect();
                cells.push(format!(
                    "{} | {:.0} | {:.2} | {}",
                    spread(&fps, 2),
                    percentile(&latencies, 0.5),
                    median(&ratios),
                    if scaling.is_empty() {
                        "–".to_string()
                    } else {
                        format!("{:.2}x", median(&scaling))
                    }
                ));
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                row.label(workers),
                cells[0],
                cells[1]
            );
        }
        // The whole service against the other-resolution Python row, round by
        // round.
        for pipeline in [0u8, 1] {
            let ours = self
                .throughput
                .get(&(image, pipeline, ThroughputRow::Http))
                .or_else(|| {
                    self.throughput
                        .get(&(image, pipeline, ThroughputRow::Tract))
                });
            for ((_, _, row), other) in self
                .throughput
                .iter()
                .filter(|((i, p, _), _)| *i == image && *p == pipeline)
            {
                let ThroughputRow::PythonDetectingAt(side) = row else {
                    continue;
                };
                let ratios: Vec<f64> = other
                    .iter()
                    .filter_map(|(round, theirs)| {
                        let (_, mine) = ours?.iter().find(|(r, _)| r == round)?;
                        Some(mine.fps() / theirs.fps())
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "\n{}: the service (or tract in process) at its own detection size against onnxruntime detecting at {side}: {:.2}x the frames/s (median of per-round ratios).",
                    if pipeline == 0 {
                        "Image analysis"
                    } else {
                        "Face recognition"
                    },
                    median(&ratios)
                );
            }
        }
        s.push('\n');
    }

    fn best_python(&self, image: usize, pipeline: u8, round: usize) -> Option<f64> {
        PythonMode::ALL
            .iter()
            .filter_map(|m| {
                self.throughput
                    .get(&(image, pipeline, ThroughputRow::Python(*m)))?
                    .iter()
                    .find(|(r, _)| *r == round)
                    .map(|(_, t)| t.fps())
            })
            .max_by(f64::total_cmp)
    }
}
fn merge(worst: &mut Comparison, c: Comparison) {
    worst.tract_faces = worst.tract_faces.max(c.tract_faces);
    worst.ort_faces = worst.ort_faces.max(c.ort_faces);
    worst.box_px = worst.box_px.max(c.box_px);
    worst.landmark_px = worst.landmark_px.max(c.landmark_px);
    worst.pixel_ratio = worst.pixel_ratio.max(c.pixel_ratio);
    worst.score = worst.score.max(c.score);
    worst.male_probability = worst.male_probability.max(c.male_probability);
    worst.age = worst.age.max(c.age);
    worst.min_cosine = worst.min_cosine.min(c.min_cosine);
    for f in c.failures {
        if !worst.failures.contains(&f) {
            worst.failures.push(f);
        }
    }
}
