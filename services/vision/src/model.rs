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
        let onnx = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true);
        let mut proto = onnx.proto_model_for_path(path).map_err(load_error)?;
        flush_tiny_weights(&mut proto);
        rewrite_prelu_as_max(&mut proto);
        let mut model = onnx.model_for_proto_model(&proto).map_err(load_error)?;
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

/// Weights smaller than this in magnitude are set to zero at load time.
///
/// Some models carry weights around 1e-40 (the age model has about 6,700
/// subnormal ones and 11,000 below 1e-30). Multiplying them gives subnormal
/// floats, which x86 handles in slow microcode: the age model ran 7 times
/// slower on real faces than on a blank input. No activation is large enough
/// for such a weight to matter (1e-30 * 1e6 is still 1e-24), so zeroing them
/// changes no output (the parity tests hold) and restores full speed.
const TINY_WEIGHT: f32 = 1e-30;

/// Zeroes the negligible float weights of a parsed ONNX file (see
/// [`TINY_WEIGHT`]), in both of the encodings ONNX allows.
fn flush_tiny_weights(proto: &mut tract_onnx::pb::ModelProto) {
    const FLOAT: i32 = 1;
    let Some(graph) = proto.graph.as_mut() else {
        return;
    };
    let flush = |v: f32| if v.abs() < TINY_WEIGHT { 0.0 } else { v };
    for tensor in graph
        .initializer
        .iter_mut()
        .filter(|t| t.data_type == FLOAT)
    {
        for v in tensor.float_data.iter_mut() {
            *v = flush(*v);
        }
        for bytes in tensor.raw_data.chunks_exact_mut(4) {
            let v = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            bytes.copy_from_slice(&flush(v).to_le_bytes());
        }
    }
}

/// The float values of an initializer (either encoding).
fn initializer_floats(tensor: &tract_onnx::pb::TensorProto) -> Vec<f32> {
    if tensor.raw_data.is_empty() {
        tensor.float_data.clone()
    } else {
        tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// Replaces `PRelu(x, slope)` by `Max(x, Mul(x, slope))` where every slope
/// is at most 1, which is the same function: for x >= 0, `slope * x <= x`;
/// for x < 0, `slope * x >= x`. Both forms compute the same product, so the
/// result is bit for bit the same.
///
/// Why: tract 0.23 expands PRelu into a comparison, a multiplication and a
/// select over three full tensors; MobileFaceNet has 34 of them and spent 37%
/// of its time there. Mul + Max runs the face embedding 35% faster
/// (34 ms to 22 ms a face here).
fn rewrite_prelu_as_max(proto: &mut tract_onnx::pb::ModelProto) {
    const FLOAT: i32 = 1;
    let Some(graph) = proto.graph.as_mut() else {
        return;
    };
    let slopes_at_most_one: std::collections::HashSet<String> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == FLOAT)
        .filter(|t| {
            let values = initializer_floats(t);
            !values.is_empty() && values.iter().all(|v| v.is_finite() && *v <= 1.0)
        })
        .map(|t| t.name.clone())
        .collect();
    let nodes = std::mem::take(&mut graph.node);
    for node in nodes {
        let rewritable = node.op_type == "PRelu"
            && node.domain.is_empty()
            && node.input.len() == 2
            && node.output.len() == 1
            && slopes_at_most_one.contains(&node.input[1]);
        if !rewritable {
            graph.node.push(node);
            continue;
        }
        let scaled = format!("{}::prelu_slope_times_x", node.output[0]);
        graph.node.push(tract_onnx::pb::NodeProto {
            input: node.input.clone(),
            output: vec![scaled.clone()],
            name: format!("{}::prelu_mul", node.name),
            op_type: "Mul".into(),
            ..Default::default()
        });
        graph.node.push(tract_onnx::pb::NodeProto {
            input: vec![node.input[0].clone(), scaled],
            output: node.output,
            name: node.name,
            op_type: "Max".into(),
            ..Default::default()
        });
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use tract_onnx::pb;

    fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: values.to_vec(),
            ..Default::default()
        }
    }

    fn prelu_model(slopes: &[f32]) -> pb::ModelProto {
        let value = |name: &str| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 11,
            }],
            graph: Some(pb::GraphProto {
                name: "prelu".into(),
                node: vec![pb::NodeProto {
                    input: vec!["x".into(), "slope".into()],
                    output: vec!["y".into()],
                    name: "act".into(),
                    op_type: "PRelu".into(),
                    ..Default::default()
                }],
                initializer: vec![float_tensor("slope", &[slopes.len() as i64, 1, 1], slopes)],
                input: vec![value("x")],
                output: vec![value("y")],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(proto: &pb::ModelProto, input: &Tensor) -> Vec<f32> {
        let plan = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .unwrap()
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), input.shape()))
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let out = plan.run(tvec!(input.clone().into_tvalue())).unwrap();
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn prelu_rewrite_gives_the_same_values() {
        let slopes = [0.25, -0.5, 1.0];
        let original = prelu_model(&slopes);
        let mut rewritten = original.clone();
        rewrite_prelu_as_max(&mut rewritten);
        let ops: Vec<&str> = rewritten
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert_eq!(ops, ["Mul", "Max"]);
        let values: Vec<f32> = (0..48).map(|i| (i as f32 - 23.5) * 0.37).collect();
        let input = Tensor::from_shape(&[2, 3, 2, 4], &values).unwrap();
        let (a, b) = (run(&original, &input), run(&rewritten, &input));
        assert_eq!(a, b);
        // And it is PRelu: channel 1 (slope -0.5) maps -1.0 to 0.5.
        let probe = Tensor::from_shape(&[1, 3, 1, 1], &[-2.0f32, -1.0, -3.0]).unwrap();
        assert_eq!(run(&rewritten, &probe), [-0.5, 0.5, -3.0]);
    }

    #[test]
    fn prelu_with_a_slope_above_one_is_left_alone() {
        let mut proto = prelu_model(&[0.5, 2.0]);
        rewrite_prelu_as_max(&mut proto);
        let ops: Vec<&str> = proto
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert_eq!(ops, ["PRelu"]);
    }

    #[test]
    fn negligible_weights_are_zeroed_in_both_encodings() {
        let values = [1e-40f32, -1e-31, 1e-29, -3.0];
        let mut proto = prelu_model(&[0.5]);
        let graph = proto.graph.as_mut().unwrap();
        graph
            .initializer
            .push(float_tensor("listed", &[4], &values));
        graph.initializer.push(pb::TensorProto {
            name: "raw".into(),
            dims: vec![4],
            data_type: 1,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        flush_tiny_weights(&mut proto);
        let graph = proto.graph.as_ref().unwrap();
        let want = [0.0, 0.0, 1e-29, -3.0];
        assert_eq!(initializer_floats(&graph.initializer[1]), want);
        assert_eq!(initializer_floats(&graph.initializer[2]), want);
        assert_eq!(initializer_floats(&graph.initializer[0]), [0.5]);
    }
}
