"""A `Tagger` over an ONNX classifier run by onnxruntime (WD14 and DeepDanbooru exports).

The session's single input is NHWC 1xSxSx3; S comes from the model (fixed side) or the
family's default when the side is dynamic. Its first output holds one sigmoid probability
per label.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2vid.core import devices
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.models.taggers.base import select_tags
from vid2vid.models.taggers.labels import Labels, labels_from_metadata
from vid2vid.models.taggers.preprocess import DEFAULT_SIZE, PREPROCESS


def providers(device: str = "auto") -> list[str]:
    """onnxruntime execution providers for a device setting (devices.onnx_providers)."""
    import onnxruntime as ort

    return devices.onnx_providers(device, ort.get_available_providers())


class OnnxTagger:
    """Tag images with an ONNX model; `preprocess` is 'wd14' or 'deepdanbooru' (see preprocess.py)."""

    def __init__(self, model_path: str | Path, labels: Labels | None, preprocess: str, *, name: str = "",
                 threshold: float = 0.35, device: str = "auto"):
        import onnxruntime as ort

        if preprocess not in PREPROCESS:
            raise BadInput(f"tagger preprocessing '{preprocess}' is not known; use {' or '.join(PREPROCESS)}")
        if not 0.0 <= threshold <= 1.0:
            raise BadInput(f"tag threshold {threshold} is out of range; use 0 to 1")
        self.name = name or str(model_path)
        self.threshold = float(threshold)
        self.family = preprocess
        try:
            self.session = ort.InferenceSession(str(model_path), providers=providers(device))
        except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
                ort.capi.onnxruntime_pybind11_state.NoSuchFile, OSError) as exc:
            raise ModelNotFound(f"tagger model {model_path} cannot be loaded by onnxruntime ({exc}); "
                                "download it again") from exc
        if labels is None:
            labels = labels_from_metadata(self.session.get_modelmeta().custom_metadata_map, str(model_path))
        self.labels = labels
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if len(inp.shape) != 4 or inp.shape[3] != 3:
            raise ModelNotFound(f"tagger model {model_path} takes input {inp.shape}; expected NHWC Nx S x S x 3")
        self.size = inp.shape[1] if isinstance(inp.shape[1], int) else DEFAULT_SIZE[preprocess]
        n_out = self.session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(labels.names):
            raise ModelNotFound(f"tagger model {model_path} predicts {n_out} labels but its tag list has "
                                f"{len(labels.names)}; use the tag list that came with the model")

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The model's input tensor for one float32 HxWx3 RGB [0, 1] image."""
        return PREPROCESS[self.family](image, self.size)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """float32 vector: one probability per label (ratings included), in label order."""
        out = self.session.run(None, {self.input_name: self.prepare(image)})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def tag(self, image: np.ndarray) -> dict[str, float]:
        """float32 HxWx3 RGB [0, 1] -> {tag: probability >= threshold}, most probable first, ratings left out."""
        return select_tags(self.labels.names, self.probabilities(image), self.threshold, self.labels.ratings)
