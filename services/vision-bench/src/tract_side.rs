//! The Rust side: `airport-vision` on tract, in this process, exactly as the
//! services call it (`analyze_bytes` / `recognize_bytes`: decode included).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use airport_vision::{Analyzer, DecodeLimits, Recognizer, Timings};
use anyhow::{Context, Result};

use crate::results::{Face, ImageRun, Samples, Throughput};

/// The two pipelines, loaded once and shared by the worker threads.
#[derive(Debug)]
pub struct TractSide {
    /// Detection + gender + age.
    pub analyzer: Analyzer,
    /// Detection + embeddings.
    pub recognizer: Recognizer,
    limits: DecodeLimits,
}

/// Which pipeline a throughput row runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// Image analysis.
    Analysis,
    /// Face recognition.
    Recognition,
}

impl Pipeline {
    /// As reference.py spells it.
    pub fn name(self) -> &'static str {
        match self {
            Pipeline::Analysis => "analysis",
            Pipeline::Recognition => "recognition",
        }
    }
}

fn record(samples: &mut Samples, timings: &Timings, frame: Duration) {
    for (stage, took) in timings.iter() {
        samples
            .stages
            .entry(stage.to_string())
            .or_default()
            .push(took.as_secs_f64() * 1000.0);
    }
    samples.frame_ms.push(frame.as_secs_f64() * 1000.0);
}

impl TractSide {
    /// Loads the models of `dir`.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        Ok(Self {
            analyzer: Analyzer::from_dir(dir).context("loading the analysis models")?,
            recognizer: Recognizer::from_dir(dir).context("loading the recognition models")?,
            limits: DecodeLimits::default(),
        })
    }

    /// `warmup` untimed runs, then `iterations` timed runs of both pipelines
    /// on `bytes`, alternating analysis and recognition as reference.py does.
    pub fn stages(&self, bytes: &[u8], warmup: usize, iterations: usize) -> Result<ImageRun> {
        for _ in 0..warmup {
            self.analyzer.analyze_bytes(bytes, &self.limits)?;
            self.recognizer.recognize_bytes(bytes, &self.limits)?;
        }
        let mut run = ImageRun::default();
        for _ in 0..iterations {
            let start = Instant::now();
            let analysis = self.analyzer.analyze_bytes(bytes, &self.limits)?;
            record(&mut run.analysis, &analysis.timings, start.elapsed());
            let start = Instant::now();
            let recognition = self.recognizer.recognize_bytes(bytes, &self.limits)?;
            record(&mut run.recognition, &recognition.timings, start.elapsed());

            run.width = analysis.width;
            run.height = analysis.height;
            run.analysis_faces = analysis
                .faces
                .iter()
                .map(|f| Face {
                    bbox: [
                        f.face.bbox.x,
                        f.face.bbox.y,
                        f.face.bbox.width,
                        f.face.bbox.height,
                    ],
                    score: f.face.score,
                    landmarks: f.face.landmarks,
                    male_probability: Some(f.attributes.male_probability),
                    age: Some(f.attributes.age),
                    embedding: None,
                })
                .collect();
            run.recognition_faces = recognition
                .faces
                .iter()
                .map(|f| Face {
                    bbox: [
                        f.face.bbox.x,
                        f.face.bbox.y,
                        f.face.bbox.width,
                        f.face.bbox.height,
                    ],
                    score: f.face.score,
                    landmarks: f.face.landmarks,
                    male_probability: None,
                    age: None,
                    embedding: Some(f.embedding.as_slice().to_vec()),
                })
                .collect();
        }
        Ok(run)
    }

    /// Frames per second of `workers` threads sharing the loaded models,
    /// each running whole frames of `bytes` back to back for `seconds` (the
    /// service's design: one worker per core, one model in memory).
    pub fn throughput(
        &self,
        pipeline: Pipeline,
        bytes: &[u8],
        workers: usize,
        seconds: f64,
    ) -> Result<Throughput> {
        let frame = || -> Result<()> {
            match pipeline {
                Pipeline::Analysis => self.analyzer.analyze_bytes(bytes, &self.limits).map(drop)?,
                Pipeline::Recognition => self
                    .recognizer
                    .recognize_bytes(bytes, &self.limits)
                    .map(drop)?,
            }
            Ok(())
        };
        frame()?;
        let barrier = Barrier::new(workers);
        let budget = Duration::from_secs_f64(seconds);
        let start_line = std::sync::OnceLock::new();
        let per_worker: Vec<Result<(Vec<f64>, Instant)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| -> Result<(Vec<f64>, Instant)> {
                        barrier.wait();
                        let start = *start_line.get_or_init(Instant::now);
                        let mut latencies = Vec::new();
                        loop {
                            let t0 = Instant::now();
                            if t0 >= start + budget {
                                break;
                            }
                            frame()?;
                            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                        Ok((latencies, Instant::now()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")))
                })
                .collect()
        });
        let start = *start_line
            .get()
            .context("no worker started the throughput clock")?;
        let mut latencies = Vec::new();
        let mut end = start;
        for worker in per_worker {
            let (l, e) = worker?;
            latencies.extend(l);
            end = end.max(e);
        }
        Ok(Throughput {
            frames: latencies.len(),
            seconds: (end - start).as_secs_f64(),
            latencies_ms: latencies,
        })
    }
}
