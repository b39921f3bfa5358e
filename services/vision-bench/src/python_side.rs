//! The Python side: `reference.py` (the same pipeline on onnxruntime), run as
//! a child process per measurement, its JSON answer read back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::results::{Face, ImageRun, Samples, Throughput};
use crate::tract_side::Pipeline;

/// How the Python pipeline uses the two cores in a throughput row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PythonMode {
    /// N processes, each with its own sessions on one thread.
    Processes,
    /// One process, N Python threads sharing one set of sessions (one thread
    /// each), as the Rust service shares its models.
    Threads,
    /// One process, one frame at a time, N intra-op threads per session.
    Intra,
}

impl PythonMode {
    /// Every mode, in report order.
    pub const ALL: [PythonMode; 3] = [
        PythonMode::Processes,
        PythonMode::Threads,
        PythonMode::Intra,
    ];

    /// As reference.py spells it.
    pub fn name(self) -> &'static str {
        match self {
            PythonMode::Processes => "processes",
            PythonMode::Threads => "threads",
            PythonMode::Intra => "intra",
        }
    }

    /// For the report.
    pub fn label(self, workers: usize) -> String {
        match self {
            PythonMode::Processes => {
                format!("onnxruntime, {workers} processes x 1 thread (models loaded {workers}x)")
            }
            PythonMode::Threads => {
                format!("onnxruntime, 1 process, {workers} Python threads sharing the sessions")
            }
            PythonMode::Intra => {
                format!("onnxruntime, 1 process, 1 frame at a time, {workers} intra-op threads")
            }
        }
    }
}

/// Where the interpreter and the script are.
#[derive(Debug, Clone)]
pub struct PythonSide {
    /// `.venv/bin/python`.
    pub python: PathBuf,
    /// `reference.py`.
    pub script: PathBuf,
    /// The model directory.
    pub models: PathBuf,
    /// Detection resolution (long side at most), as the tract side's.
    pub max_side: u32,
}

#[derive(Deserialize)]
struct ImageAnswer {
    width: u32,
    height: u32,
    analysis: RunAnswer,
    recognition: RunAnswer,
}

#[derive(Deserialize)]
struct RunAnswer {
    stages: BTreeMap<String, Vec<f64>>,
    frame_ms: Vec<f64>,
    #[serde(default)]
    faces: Vec<FaceAnswer>,
}

#[derive(Deserialize)]
struct FaceAnswer {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    score: f32,
    landmarks: [[f32; 2]; 5],
    male_probability: Option<f32>,
    age: Option<f32>,
    embedding: Option<Vec<f32>>,
}

impl From<FaceAnswer> for Face {
    fn from(f: FaceAnswer) -> Self {
        Face {
            bbox: f.bbox,
            score: f.score,
            landmarks: f.landmarks,
            male_probability: f.male_probability,
            age: f.age,
            embedding: f.embedding,
        }
    }
}

#[derive(Deserialize)]
struct ThroughputAnswer {
    frames: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl PythonSide {
    /// Fails with the command to run when onnxruntime is not installed.
    pub fn check(&self) -> Result<String> {
        if !self.python.is_file() {
            bail!(
                "{} not found: run scripts/install-vision-bench.sh (make bench-vision does)",
                self.python.display()
            );
        }
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import onnxruntime, cv2, numpy, onnx; print('onnxruntime', onnxruntime.__version__, '/ opencv', cv2.__version__, '/ numpy', numpy.__version__)",
            ])
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        if !out.status.success() {
            bail!(
                "the benchmark's Python packages are not installed in {}: run scripts/install-vision-bench.sh (make bench-vision does)",
                self.python.display()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn run(&self, args: &[String]) -> Result<Vec<u8>> {
        let out = Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.script.display()))?;
        if !out.status.success() {
            bail!(
                "{} {} failed ({})",
                self.script.display(),
                args.join(" "),
                out.status
            );
        }
        Ok(out.stdout)
    }

    /// Starts `reference.py serve`: the models loaded once in a child
    /// process that answers per-image stage runs on request.
    pub fn serve(&self) -> Result<StageServer> {
        let mut child = Command::new(&self.python)
            .arg(&self.script)
            .args([
                "serve".to_string(),
                "--models".to_string(),
                self.models.display().to_string(),
                "--max-side".to_string(),
                self.max_side.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} serve", self.script.display()))?;
        let stdin = child.stdin.take().context("no stdin to reference.py")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout from reference.py")?);
        let mut server = StageServer {
            child,
            stdin,
            stdout,
            runtime: String::new(),
        };
        let hello: serde_json::Value = server.read_line()?;
        server.runtime = hello
            .get("runtime")
            .and_then(serde_json::Value::as_str)
            .context("reference.py serve did not name its runtime")?
            .to_string();
        Ok(server)
    }

    /// Frames per second of the Python pipeline on `image`, detecting at
    /// `max_side` (the tract side's unless told otherwise).
    pub fn throughput(
        &self,
        pipeline: Pipeline,
        mode: PythonMode,
        max_side: Option<u32>,
        image: &Path,
        workers: usize,
        seconds: f64,
    ) -> Result<Throughput> {
        let args = vec![
            "throughput".to_string(),
            "--models".to_string(),
            self.models.display().to_string(),
            "--max-side".to_string(),
            max_side.unwrap_or(self.max_side).to_string(),
            "--pipeline".to_string(),
            pipeline.name().to_string(),
            "--mode".to_string(),
            mode.name().to_string(),
            "--workers".to_string(),
            workers.to_string(),
            "--seconds".to_string(),
            seconds.to_string(),
            image.display().to_string(),
        ];
        let answer: ThroughputAnswer = serde_json::from_slice(&self.run(&args)?)
            .context("reading reference.py's throughput answer")?;
        Ok(Throughput {
            frames: answer.frames,
            seconds: answer.seconds,
            latencies_ms: answer.latencies_ms,
        })
    }
}

/// `reference.py serve`: per-image stage runs on request, models loaded once;
/// the child is ended when this is dropped.
#[derive(Debug)]
pub struct StageServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The runtime it reported ("onnxruntime 1.31.1").
    pub runtime: String,
}

impl Drop for StageServer {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StageServer {
    fn read_line<T: DeserializeOwned>(&mut self) -> Result<T> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading from reference.py serve")?;
        if n == 0 {
            bail!("reference.py serve stopped (see its error above)");
        }
        serde_json::from_str(&line).context("reading reference.py serve's answer")
    }

    /// Both pipelines on `image`: `warmup` untimed, then `iterations` timed runs.
    pub fn run_image(
        &mut self,
        image: &Path,
        warmup: usize,
        iterations: usize,
    ) -> Result<ImageRun> {
        let request = serde_json::json!({
            "image": image.display().to_string(),
            "warmup": warmup,
            "iterations": iterations,
        });
        writeln!(self.stdin, "{request}").context("writing to reference.py serve")?;
        self.stdin.flush()?;
        let i: ImageAnswer = self.read_line()?;
        Ok(ImageRun {
            width: i.width,
            height: i.height,
            analysis: Samples {
                stages: i.analysis.stages,
                frame_ms: i.analysis.frame_ms,
            },
            recognition: Samples {
                stages: i.recognition.stages,
                frame_ms: i.recognition.frame_ms,
            },
            analysis_faces: i.analysis.faces.into_iter().map(Face::from).collect(),
            recognition_faces: i.recognition.faces.into_iter().map(Face::from).collect(),
        })
    }
}
