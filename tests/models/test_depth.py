"""Depth masks: normalisation, the model registry and loader, and the `depth` stage.

Models are tiny random DPT / Depth Anything networks built from configs and saved with
`save_pretrained`; they load through `load_depth_model` exactly as downloaded ones do.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import moving_frames

torch = pytest.importorskip("torch")
torch.set_num_threads(2)


def _randomise(model, seed: int) -> None:
    """Spread the random weights so that the tiny model's output varies over the image."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim > 1 else 0.1))


def _tiny_dpt(folder: Path) -> Path:
    from transformers import DPTConfig, DPTForDepthEstimation
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                    image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
                    neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5])
    model = DPTForDepthEstimation(cfg).eval()
    _randomise(model, 1)
    model.save_pretrained(folder)
    # Intel/dpt-large's processor: square resize, mean/std 0.5 (here 32 px instead of 384).
    DPTImageProcessorPil(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder


def _tiny_depth_anything(folder: Path) -> Path:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                            image_size=28, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                              head_hidden_size=8, reassemble_hidden_size=32, patch_size=14)
    model = DepthAnythingForDepthEstimation(cfg).eval()
    _randomise(model, 2)
    model.save_pretrained(folder)
    # Depth-Anything-V2-*-hf's processor: keep aspect, multiple of 14, ImageNet mean/std, bicubic.
    DPTImageProcessorPil(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                         resample=3).save_pretrained(folder)
    return folder


def _tiny_dpt_backbone(folder: Path, kind: str) -> Path:
    """Tiny DPT with the backbone of the registry's other entries: BiT hybrid, BEiT or Swin V2."""
    from transformers import BeitConfig, BitConfig, DPTConfig, DPTForDepthEstimation, Swinv2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    stages = ["stage1", "stage2", "stage3", "stage4"]
    if kind == "hybrid":       # Intel/dpt-hybrid-midas: ViT on a BiT ResNet stem, two BiT stages in the neck
        bit = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[128, 256, 512],
                        embedding_size=32, out_features=stages[:3], embedding_dynamic_padding=True)
        cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, image_size=32,
                        patch_size=16, is_hybrid=True, backbone_config=bit, backbone_featmap_shape=[1, 512, 2, 2],
                        backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[128, 256, 32, 32], fusion_hidden_size=32,
                        reassemble_factors=[1, 1, 1, 0.5])
        proc = {"keep_aspect_ratio": False}
    elif kind == "beit":       # Intel/dpt-beit-base-384
        beit = BeitConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                          image_size=32, patch_size=8, out_features=stages, reshape_hidden_states=False,
                          use_relative_position_bias=True)
        cfg = DPTConfig(backbone_config=beit, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                        reassemble_factors=[4, 2, 1, 0.5], neck_ignore_stages=[], add_projection=False,
                        readout_type="project")
        proc = {"keep_aspect_ratio": True, "ensure_multiple_of": 8}
    else:                      # Intel/dpt-swinv2-tiny-256 (its projection is fixed at 256 channels)
        swin = Swinv2Config(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], image_size=32, patch_size=2,
                            window_size=2, out_features=stages, reshape_hidden_states=False)
        cfg = DPTConfig(backbone_config=swin, neck_hidden_sizes=[8, 16, 32, 64], fusion_hidden_size=256,
                        reassemble_factors=[1, 1, 1, 1], neck_ignore_stages=[], add_projection=True,
                        readout_type="ignore")
        proc = {"keep_aspect_ratio": False}
    model = DPTForDepthEstimation(cfg).eval()
    _randomise(model, 3)
    model.save_pretrained(folder)
    DPTImageProcessorPil(size={"height": 32, "width": 32}, **proc).save_pretrained(folder)
    return folder


# registry entry -> the tiny model family that stands for its architecture
FAMILY = {"dpt_large": "dpt", "dpt_hybrid": "hybrid", "midas_v21": "beit", "midas_v21_small": "swinv2",
          "depth-anything-v2-small": "depth-anything", "depth-anything-v2-base": "depth-anything",
          "depth-anything-v2-large": "depth-anything"}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth-models")
    models = {"dpt": _tiny_dpt(root / "dpt"), "depth-anything": _tiny_depth_anything(root / "da")}
    for kind in ("hybrid", "beit", "swinv2"):
        models[kind] = _tiny_dpt_backbone(root / kind, kind)
    return models


def _reference_depth(folder: Path, image: np.ndarray) -> np.ndarray:
    """The raw model run by hand: its processor, predicted_depth, bicubic resize, min-max by formula."""
    from transformers import AutoModelForDepthEstimation
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    proc = DPTImageProcessorPil.from_pretrained(folder)
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    with torch.no_grad():
        pred = model(**proc(images=u8, return_tensors="pt")).predicted_depth
    h, w = image.shape[:2]
    d = torch.nn.functional.interpolate(pred[:, None], size=(h, w), mode="bicubic", align_corners=False)
    d = d[0, 0].double().numpy()
    return (d - d.min()) / (d.max() - d.min())


# ---------------------------------------------------------------- pure normalisation

def test_normalize_depth_maps_far_to_0_and_near_to_1():
    from vid2vid.models.depth import normalize_depth

    out = normalize_depth(np.array([[1.0, 3.0], [5.0, 9.0]]))
    assert out.shape == (2, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.25], [0.5, 1.0]])


def test_normalize_depth_flat_and_nonfinite_maps_do_not_divide_by_zero():
    from vid2vid.models.depth import normalize_depth

    assert not normalize_depth(np.full((3, 4), 7.0)).any()
    out = normalize_depth(np.array([[np.nan, 2.0], [4.0, np.inf]]))
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.0], [1.0, 0.0]])


# ---------------------------------------------------------------- loading and prediction

@pytest.mark.parametrize("family", ["dpt", "hybrid", "beit", "swinv2", "depth-anything"])
def test_folder_model_predicts_normalised_disparity_near_bright(tiny_models, family):
    from vid2vid.models.depth import DepthModel, load_depth_model

    model = load_depth_model(str(tiny_models[family]), device="cpu")
    assert isinstance(model, DepthModel)
    image = moving_frames(1, width=64, height=48)[0]
    out = model.predict(image)
    assert out.shape == (48, 64, 1) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    ref = _reference_depth(tiny_models[family], image)
    assert ref.std() > 0.05                       # the tiny model's output really varies
    # The raw output is disparity: larger = nearer, so it is normalised without inverting.
    np.testing.assert_allclose(out[..., 0], ref, atol=2e-5)
    assert np.abs(out[..., 0] - (1 - ref)).max() > 0.5


def _fake_hub_cache(cache: Path, repo: str, folder: Path) -> None:
    """Lay `folder` out as the hub cache does after `hf download repo`."""
    entry = cache / ("models--" + repo.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, entry / "snapshots" / commit)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)


def test_every_registry_name_loads_from_the_hub_cache(tiny_models, tmp_path):
    from vid2vid.models.depth import DEPTH_MODELS, load_depth_model

    assert set(FAMILY) == set(DEPTH_MODELS)
    for name, spec in DEPTH_MODELS.items():
        _fake_hub_cache(tmp_path, spec.repo, tiny_models[FAMILY[name]])
    image = moving_frames(1, width=40, height=30)[0]
    for name in DEPTH_MODELS:
        model = load_depth_model(name, device="cpu", cache_dir=tmp_path, local_files_only=True)
        assert model.name == name
        assert model.predict(image).shape == (30, 40, 1)
    # the seed's spelling with dashes or capitals names the same entry
    assert load_depth_model("DPT-Hybrid", device="cpu", cache_dir=tmp_path, local_files_only=True).name == "dpt_hybrid"


def test_missing_registry_model_says_how_to_get_it(tmp_path):
    from vid2vid.core.errors import ModelNotFound
    from vid2vid.models.depth import DEPTH_MODELS, load_depth_model

    for name, spec in DEPTH_MODELS.items():
        with pytest.raises(ModelNotFound) as err:
            load_depth_model(name, device="cpu", cache_dir=tmp_path, local_files_only=True)
        msg = str(err.value)
        assert spec.repo in msg and f"hf download {spec.repo}" in msg and "folder" in msg


def test_unknown_names_and_bad_paths_are_bad_input(tmp_path):
    from vid2vid.core.errors import BadInput, ModelNotFound
    from vid2vid.models.depth import load_depth_model

    with pytest.raises(ModelNotFound, match="dpt_hybrid"):
        load_depth_model("no-such-depth-model")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(BadInput, match="folder"):
        load_depth_model(str(tmp_path / "weights.bin"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="config.json"):
        load_depth_model(str(tmp_path / "empty"), device="cpu")


# ---------------------------------------------------------------- the stage

def test_depth_stage_writes_16bit_masks_and_resumes(tiny_models, workspace_factory, monkeypatch):
    import vid2vid.models.depth
    from vid2vid import config
    from vid2vid.core.imageops import read_image, read_mask
    from vid2vid.core.progress import Job
    from vid2vid.models.depth import load_depth_model
    from vid2vid.stages import depth

    ws = workspace_factory(moving_frames(4, width=64, height=48))
    settings = config.Settings()
    settings.depth.model = str(tiny_models["dpt"])
    events = []
    info = depth.run(ws, settings, Job(on_progress=events.append))
    masks = sorted(ws.path("depthmask").iterdir())
    assert [m.name for m in masks] == ["00001.png", "00002.png", "00003.png", "00004.png"]
    assert info["masks"] == 4 and ws.is_complete("depth")
    assert [e.done for e in events] == [1, 2, 3, 4]

    model = load_depth_model(str(tiny_models["dpt"]), device="cpu")
    for frame, mask in zip(ws.frames(), masks):
        with Image.open(mask) as im:
            assert im.mode.startswith("I;16") or im.mode == "I"
            stored = np.asarray(im, dtype=np.float64) / 65535
        expected = model.predict(read_image(frame))[..., 0]
        assert np.abs(stored - expected).max() <= 0.5 / 65535 + 1e-7    # 16-bit rounding, not 8-bit
        assert np.abs(stored * 255 - np.rint(stored * 255)).max() > 0.01  # finer than 8-bit levels
        np.testing.assert_allclose(read_mask(mask)[..., 0], stored, atol=1e-7)  # what later stages read

    # resume: two masks lost in a crash are redone, the others are left alone
    kept = {m.name: m.stat().st_mtime_ns for m in masks[:2]}
    masks[2].unlink()
    masks[3].unlink()
    ws.manifest["stages"]["depth"]["complete"] = False
    events.clear()
    depth.run(ws, settings, Job(on_progress=events.append))
    assert [e.done for e in events] == [3, 4] and events[0].resumed == 2
    assert {m.name: m.stat().st_mtime_ns for m in masks[:2]} == kept
    assert all(m.exists() for m in masks)

    # a model that cannot be loaded does not cost the masks made with the other one
    from vid2vid.core.errors import ModelNotFound

    other = config.Settings()
    other.depth.model = "no-such-depth-model"
    with pytest.raises(ModelNotFound):
        depth.run(ws, other, Job())
    assert all(m.exists() for m in masks) and ws.is_complete("depth")

    # done: nothing to predict, so the model is not even loaded
    def no_load(*a, **k):
        raise AssertionError("the model must not be loaded when every mask exists")

    monkeypatch.setattr(vid2vid.models.depth, "load_depth_model", no_load)
    assert depth.run(ws, settings, Job())["masks"] == 4
