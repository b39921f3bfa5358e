//! Where tract spends a model's time: milliseconds per run by op kind and
//! for the slowest nodes, on one input shape, one thread. The benchmark's
//! per-stage table says which stage is slow; this says why. Its onnxruntime
//! twin is `reference.py ops`.
//!
//! ```sh
//! cargo run --release -p vision-bench --example tract_ops -- .models/centerface.onnx 1x3x384x480 [runs]
//! ```
//!
//! The model file is loaded as it is, without the two load-time graph edits
//! `airport-vision` makes (tiny weights zeroed, PRelu as Max): the age model
//! and MobileFaceNet run slower here than in the pipeline.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tract_onnx::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, shape, rest @ ..] = args.as_slice() else {
        bail!("usage: tract_ops <model.onnx> <shape, e.g. 1x3x384x480> [runs]");
    };
    let shape: Vec<usize> = shape
        .split('x')
        .map(|d| d.parse().with_context(|| format!("bad dimension {d:?}")))
        .collect::<Result<_>>()?;
    let runs: usize = match rest.first() {
        Some(r) => r.parse().with_context(|| format!("bad run count {r:?}"))?,
        None => 20,
    }
    .max(1);
    let plan = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_path(path)?
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &*shape))?
        .into_optimized()?
        .into_runnable()?;
    // A deterministic, image-like input (0-255).
    let len: usize = shape.iter().product();
    let data: Vec<f32> = (0..len).map(|i| ((i * 7919) % 255) as f32).collect();
    let input = Tensor::from_shape(&shape, &data)?;
    let mut state = plan.spawn()?;
    let mut by_op: HashMap<String, Duration> = HashMap::new();
    let mut by_node: HashMap<String, (Duration, String)> = HashMap::new();
    let mut total = Duration::ZERO;
    // Run 0 is a warm-up.
    for run in 0..=runs {
        let start = Instant::now();
        state.run_plan_with_eval(
            tvec!(input.clone().into_tvalue()),
            |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                if run > 0 {
                    let took = t.elapsed();
                    *by_op.entry(node.op().name().to_string()).or_default() += took;
                    by_node
                        .entry(node.name.clone())
                        .or_insert_with(|| (Duration::ZERO, format!("{:?}", node.op())))
                        .0 += took;
                }
                out
            },
        )?;
        if run > 0 {
            total += start.elapsed();
        }
    }
    let per_run = |d: Duration| d.as_secs_f64() * 1000.0 / runs as f64;
    // Written at once at the end: a closed pipe (`| head`) is not an error.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{path} {shape:?}: {:.2} ms per run ({runs} runs)",
        per_run(total)
    );
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    let _ = writeln!(out, "by op kind:");
    for (op, took) in ops.iter().take(12) {
        let _ = writeln!(out, "  {op:<32} {:8.2} ms", per_run(*took));
    }
    let mut nodes: Vec<_> = by_node.into_iter().collect();
    nodes.sort_by_key(|(_, (took, _))| std::cmp::Reverse(*took));
    let _ = writeln!(out, "slowest nodes:");
    for (name, (took, op)) in nodes.iter().take(10) {
        let op: String = op.chars().take(100).collect();
        let _ = writeln!(out, "  {:7.2} ms {name:<28} {op}", per_run(*took));
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(())
}
