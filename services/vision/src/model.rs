//! Loading ONNX files with tract, and plans optimised per concrete input
//! shape. tract optimises best when every dimension is known, so a model is
//! parsed once and an optimised plan is built (lazily, then cached) for each
//! input shape actually seen: one per detector resolution, one per batch size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tract_onnx::prelude::*;

use crate::error::VisionError;

/// An optimised, runnable plan; `run` takes `&self`, so worker threads share it.
pub(crate) type Plan = Arc<TypedRunnableModel>;

/// A parsed ONNX model and its optimised plans by input shape.
pub(crate) struct ShapedModel {
    path: PathBuf,
    model: InferenceModel,
    outputs: usize,
    plans: Mutex<HashMap<Vec<usize>, Plan>>,
    max_plans: usize,
}

impl std::fmt::Debug for ShapedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<Vec<usize>> = self
            .plans
            .lock()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("ShapedModel")
            .field("path", &self.path)
            .field("plans", &shapes)
            .finish()
    }
}

impl ShapedModel {
    /// Parses `path`. The file's declared output shapes are ignored (some
    /// files declare a fixed batch or a 32x32 input their graph does not
    /// need); tract infers them from the input shape given at plan time.
    /// At most `max_plans` plans are kept; past that the cache starts over.
    pub(crate) fn load(path: &Path, max_plans: usize) -> Result<Self, VisionError> {
        if !path.is_file() {
            return Err(VisionError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let load_error = |e: TractError| VisionError::ModelLoad {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let mut model = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .model_for_path(path)
            .map_err(load_error)?;
        let outputs = model.output_outlets().map_err(load_error)?.len();
        for i in 0..outputs {
            model = model
                .with_output_fact(i, InferenceFact::default())
                .map_err(load_error)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            model,
            outputs,
            plans: Mutex::new(HashMap::new()),
            max_plans: max_plans.max(1),
        })
    }

    /// The file this model came from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The plan for an f32 input of `shape`, built on first use.
    pub(crate) fn plan(&self, shape: &[usize]) -> Result<Plan, VisionError> {
        if let Some(plan) = self.lock().get(shape) {
            return Ok(plan.clone());
        }
        // Built outside the lock: optimising takes a while and other shapes
        // must not wait. Two threads may build the same plan once; harmless.
        let plan = self.build(shape)?;
        let mut plans = self.lock();
        if plans.len() >= self.max_plans {
            plans.clear();
        }
        Ok(plans.entry(shape.to_vec()).or_insert(plan).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<usize>, Plan>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.plans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn build(&self, shape: &[usize]) -> Result<Plan, VisionError> {
        let load_error = |e: TractError| VisionError::ModelLoad {
            path: self.path.clone(),
            message: format!("for input shape {shape:?}: {e:#}"),
        };
        let fact = InferenceFact::dt_shape(f32::datum_type(), shape);
        self.model
            .clone()
            .with_input_fact(0, fact)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(load_error)
    }

    /// Runs the model on one input tensor and returns its outputs.
    pub(crate) fn run(
        &self,
        name: &'static str,
        input: Tensor,
    ) -> Result<TVec<TValue>, VisionError> {
        let plan = self.plan(input.shape())?;
        let outputs = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| VisionError::inference(name, e))?;
        if outputs.len() != self.outputs {
            return Err(VisionError::inference(
                name,
                format!("expected {} outputs, got {}", self.outputs, outputs.len()),
            ));
        }
        Ok(outputs)
    }
}

/// A zeroed f32 tensor of `shape`, filled in place by `fill`.
pub(crate) fn tensor_with(
    name: &'static str,
    shape: &[usize],
    fill: impl FnOnce(&mut [f32]),
) -> Result<Tensor, VisionError> {
    let mut tensor = Tensor::zero::<f32>(shape).map_err(|e| VisionError::inference(name, e))?;
    {
        let mut view = tensor
            .try_as_plain_ram_mut()
            .map_err(|e| VisionError::inference(name, e))?;
        let data = view
            .as_slice_mut::<f32>()
            .map_err(|e| VisionError::inference(name, e))?;
        fill(data);
    }
    Ok(tensor)
}

/// The f32 data of a tensor, checking its element count.
pub(crate) fn floats<'a>(
    name: &'static str,
    tensor: &'a Tensor,
    expected_len: usize,
) -> Result<&'a [f32], VisionError> {
    let data = tensor
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>())
        .map_err(|e| VisionError::inference(name, e))?;
    if data.len() != expected_len {
        return Err(VisionError::inference(
            name,
            format!(
                "output of shape {:?} has {} values, expected {expected_len}",
                tensor.shape(),
                data.len()
            ),
        ));
    }
    Ok(data)
}
