"""Taggers: preprocessing per family, thresholds, ranking, prompts, the registry and the `tags` stage.

The ONNX models are built in code with the `onnx` helper API: NHWC input -> 4x4 block means
per channel (NCHW order) -> one "probability" per block and channel. Their output is thus a
known function of the input tensor, so the preprocessing can be checked against an
independent computation in the test.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

SIDE = 32          # model input side (448 / 512 in the real models)
GRID = 4           # 4x4 blocks -> 3 * 16 = 48 outputs
N_OUT = 3 * GRID * GRID
SPECIAL = {3: "long_hair", 4: "hatsune_miku_(cosplay)", 5: "^_^"}


def _names(ratings: list[str]) -> list[str]:
    names = [f"tag{i:02d}" for i in range(N_OUT)]
    names[:len(ratings)] = ratings
    for i, n in SPECIAL.items():
        names[i] = n
    return names


def _block_model(path: Path, scale: float, batch: int | str = 1, metadata: dict | None = None) -> Path:
    """ONNX: x (batch, SIDE, SIDE, 3) -> block means of each channel * scale, shape (batch, 48)."""
    from onnx import TensorProto, helper

    k = SIDE // GRID
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[k, k], strides=[k, k]),
        helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
        helper.make_node("Mul", ["flat", "scale"], ["probs"]),
    ]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, N_OUT]),
             helper.make_tensor("scale", TensorProto.FLOAT, [], [scale])]
    graph = helper.make_graph(nodes, "blocks",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, SIDE, SIDE, 3])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, N_OUT])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _wd14_folder(folder: Path) -> Path:
    """model.onnx (0..255 input -> /255) + selected_tags.csv with 3 rating rows (category 9)."""
    _block_model(folder / "model.onnx", 1 / 255, batch="batch")
    names = _names(["general", "sensitive", "explicit"])
    with open(folder / "selected_tags.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["tag_id", "name", "category", "count"])
        for i, n in enumerate(names):
            w.writerow([1000 + i, n, 9 if i < 3 else (4 if n == "hatsune_miku_(cosplay)" else 0), 50 - i])
    return folder


def _deepdanbooru_folder(folder: Path) -> Path:
    """deepdanbooru.onnx (0..1 input) + tags.txt with 'rating:' lines."""
    _block_model(folder / "deepdanbooru.onnx", 1.0)
    names = _names(["rating:safe", "rating:questionable", "rating:explicit"])
    (folder / "tags.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return folder


def _block_means(x: np.ndarray) -> np.ndarray:
    """Reference for the model: (SIDE, SIDE, 3) -> 48 block means in channel, row, column order."""
    k = SIDE // GRID
    return x.reshape(GRID, k, GRID, k, 3).mean(axis=(1, 3)).transpose(2, 0, 1).reshape(-1)


def _frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random 8-bit-exact RGB image in [0, 1]."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(height, width, 3)) / 255).astype(np.float32)


# ---------------------------------------------------------------- pure functions

def test_select_tags_threshold_order_and_skip():
    from vid2vid.models.taggers import select_tags

    names = ["a", "b", "c", "d"]
    out = select_tags(names, np.array([0.2, 0.9, 0.5, 0.5]), 0.5, skip=[1])
    assert list(out.items()) == [("c", 0.5), ("d", 0.5)]          # >= threshold, b skipped, ties by name
    with pytest.raises(ValueError):
        select_tags(names, np.zeros(3), 0.5)


def test_rank_tags_mean_over_frames_counts_missing_as_zero():
    from vid2vid.models.taggers import rank_tags

    frames = [{"x": 0.9, "y": 0.6}, {"y": 0.7}, {"z": 1.0}]
    # means: x 0.3, y 0.433.., z 0.333..
    assert [n for n, _ in rank_tags(frames, 2)] == ["y", "z"]
    assert rank_tags(frames, 5)[2] == pytest.approx(("x", 0.3))
    assert rank_tags([], 3) == []


def test_prompt_tags_spaces_escapes_and_emoticons():
    from vid2vid.models.taggers import format_prompt, prompt_tag

    assert prompt_tag("long_hair") == "long hair"
    assert prompt_tag("hatsune_miku_(cosplay)") == "hatsune miku \\(cosplay\\)"
    assert prompt_tag("^_^") == "^_^" and prompt_tag("o_o") == "o_o" and prompt_tag("(o)_(o)") == "\\(o\\)_\\(o\\)"
    assert format_prompt(["1girl", "long_hair", "solo"]) == "1girl, long hair, solo"


# ---------------------------------------------------------------- preprocessing through real sessions

@pytest.mark.parametrize("height,width", [(13, 32), (32, 19), (32, 32)])
def test_wd14_input_is_bgr_0_255_white_padded_square(tmp_path, height, width):
    from vid2vid.models.taggers import load_tagger

    tagger = load_tagger(str(_wd14_folder(tmp_path)), threshold=0.0)
    image = _frame(height, width)
    # independent reference: white canvas, image centred (odd pixel to the bottom/right), BGR, 0..255
    canvas = np.full((SIDE, SIDE, 3), 255.0)
    top, left = (SIDE - height) // 2, (SIDE - width) // 2
    canvas[top:top + height, left:left + width] = np.rint(image * 255)
    expected = _block_means(canvas[..., ::-1]) / 255
    np.testing.assert_allclose(tagger.prepare(image)[0], canvas[..., ::-1], atol=1e-4)
    np.testing.assert_allclose(tagger.probabilities(image), expected, atol=1e-5)
    tags = tagger.tag(image)
    assert not {"general", "sensitive", "explicit"} & set(tags)        # ratings are not tags
    assert len(tags) == N_OUT - 3
    assert tags["long_hair"] == pytest.approx(expected[3], abs=1e-5)


def test_wd14_input_resizes_bigger_frames_to_the_model_side(tmp_path):
    from vid2vid.models.taggers import load_tagger

    tagger = load_tagger(str(_wd14_folder(tmp_path)), threshold=0.0)
    # a 64x128 frame of 2x2 constant cells: padding gives 128x128, bicubic halving keeps block means
    small = _frame(16, 32, seed=3)
    image = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    canvas = np.full((SIDE, SIDE, 3), 255.0)
    canvas[8:24, :] = np.rint(small * 255)
    expected = _block_means(canvas[..., ::-1]) / 255
    got = tagger.probabilities(image)
    assert tagger.prepare(image).shape == (1, SIDE, SIDE, 3)
    np.testing.assert_allclose(got, expected, atol=0.03)                # resampling, not identity
    assert np.abs(got - _block_means(canvas) / 255).max() > 0.05        # and not RGB order
    # noise at twice the side: a filtered (bicubic) resize keeps block means close, sampling would not
    noise = _frame(2 * SIDE, 2 * SIDE, seed=5)
    area = noise.reshape(GRID, 2 * SIDE // GRID, GRID, 2 * SIDE // GRID, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(tagger.probabilities(noise), area[..., ::-1].transpose(2, 0, 1).reshape(-1),
                               atol=0.02)


@pytest.mark.parametrize("height,width", [(13, 32), (32, 19)])
def test_deepdanbooru_input_is_rgb_0_1_edge_filled(tmp_path, height, width):
    from vid2vid.models.taggers import load_tagger

    tagger = load_tagger(str(_deepdanbooru_folder(tmp_path)), threshold=0.0)
    image = _frame(height, width, seed=1)
    top, left = (SIDE - height) // 2, (SIDE - width) // 2
    ref = np.pad(image.astype(np.float64), ((top, SIDE - height - top), (left, SIDE - width - left), (0, 0)),
                 mode="edge")
    np.testing.assert_allclose(tagger.prepare(image)[0], ref, atol=1e-6)
    np.testing.assert_allclose(tagger.probabilities(image), _block_means(ref), atol=1e-5)
    tags = tagger.tag(image)
    assert not any(t.startswith("rating:") for t in tags) and len(tags) == N_OUT - 3


def test_threshold_keeps_only_tags_at_or_above_it(tmp_path):
    from vid2vid.models.taggers import load_tagger

    image = _frame(32, 32, seed=2)
    ref = _block_means(image.astype(np.float64))
    for threshold in (0.45, 0.5, 0.55):
        tags = load_tagger(str(_deepdanbooru_folder(tmp_path)), threshold=threshold).tag(image)
        names = _names(["rating:safe", "rating:questionable", "rating:explicit"])
        expected = {names[i] for i in range(3, N_OUT) if ref[i] >= threshold}
        assert set(tags) == expected and 0 < len(expected) < N_OUT - 3
        assert list(tags.values()) == sorted(tags.values(), reverse=True)


def test_tags_from_model_metadata_and_mismatched_lists(tmp_path):
    from vid2vid.core.errors import ModelNotFound
    from vid2vid.models.taggers import load_tagger

    names = _names(["rating:safe", "rating:questionable", "rating:explicit"])
    _block_model(tmp_path / "meta" / "deepdanbooru.onnx", 1.0, metadata={"tags": repr(names)})
    tagger = load_tagger(str(tmp_path / "meta" / "deepdanbooru.onnx"), threshold=0.0)
    assert tagger.labels.names == names and len(tagger.tag(_frame(32, 32))) == N_OUT - 3

    bad = _deepdanbooru_folder(tmp_path / "bad")
    (bad / "tags.txt").write_text("one\ntwo\n")
    with pytest.raises(ModelNotFound, match="48 labels"):
        load_tagger(str(bad))
    _block_model(tmp_path / "nolist" / "m.onnx", 1.0)
    with pytest.raises(ModelNotFound, match="tags.txt"):
        load_tagger(str(tmp_path / "nolist"))
    with pytest.raises(ModelNotFound, match="wd14-vit-v2"):
        load_tagger("no-such-tagger")


# ---------------------------------------------------------------- registry

def _fake_hub_cache(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """Lay files out as the hub cache does after `hf download repo FILE...`."""
    entry = cache / ("models--" + repo.replace("/", "--"))
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    snap = entry / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, src in files.items():
        shutil.copy(src, snap / name)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(commit)


def test_every_registry_entry_loads_from_the_hub_cache(tmp_path):
    from vid2vid.models.taggers import TAGGERS, load_tagger

    wd14 = _wd14_folder(tmp_path / "wd14")
    dd = _deepdanbooru_folder(tmp_path / "dd")
    _block_model(tmp_path / "meta" / "deepdanbooru.onnx", 1.0,
                 metadata={"tags": repr(_names(["rating:safe", "rating:questionable", "rating:explicit"]))})
    cache = tmp_path / "cache"
    for spec in TAGGERS.values():
        if spec.preprocess == "wd14":
            files = {spec.model_file: wd14 / "model.onnx", spec.labels_file: wd14 / "selected_tags.csv"}
        elif spec.labels_file:
            files = {spec.model_file: dd / "deepdanbooru.onnx", spec.labels_file: dd / "tags.txt"}
        else:
            files = {spec.model_file: tmp_path / "meta" / "deepdanbooru.onnx"}
        _fake_hub_cache(cache, spec.repo, files)
    image = _frame(20, 32, seed=4)
    for name, spec in TAGGERS.items():
        tagger = load_tagger(name, threshold=0.0, cache_dir=cache, local_files_only=True)
        assert tagger.name == name and tagger.family == spec.preprocess
        assert len(tagger.tag(image)) == N_OUT - 3


def test_missing_registry_tagger_says_how_to_get_it(tmp_path):
    from vid2vid.core.errors import ModelNotFound
    from vid2vid.models.taggers import TAGGERS, load_tagger

    for name, spec in TAGGERS.items():
        with pytest.raises(ModelNotFound) as err:
            load_tagger(name, cache_dir=tmp_path, local_files_only=True)
        msg = str(err.value)
        assert f"hf download {spec.repo} {spec.model_file}" in msg and "folder" in msg
        if spec.labels_file:
            assert spec.labels_file in msg


# ---------------------------------------------------------------- the stage

def test_tags_stage_per_frame_json_topk_prompt_and_resume(tmp_path, workspace_factory, monkeypatch):
    import vid2vid.models.taggers
    from vid2vid import config
    from vid2vid.core.progress import Job
    from vid2vid.stages import tags as stage

    frames = [_frame(32, 32, seed=10 + i) for i in range(4)]
    ws = workspace_factory(frames)
    settings = config.Settings()
    settings.tags.model = str(_deepdanbooru_folder(tmp_path / "dd"))
    settings.tags.threshold = 0.52
    settings.tags.topk = 5
    events = []
    info = stage.run(ws, settings, Job(on_progress=events.append))
    assert [e.done for e in events] == [1, 2, 3, 4] and ws.is_complete("tags")

    # independent reference: block means, threshold, mean over frames with absent = 0
    names = _names(["rating:safe", "rating:questionable", "rating:explicit"])
    per_frame = []
    for i, f in enumerate(frames, 1):
        ref = _block_means(f.astype(np.float64))
        expected = {names[j]: ref[j] for j in range(3, N_OUT) if ref[j] >= 0.52}
        stored = json.loads(ws.path("tags", f"{i:05d}.json").read_text())
        assert stored["frame"] == f"{i:05d}.png"
        assert stored["tags"].keys() == expected.keys()
        for k, v in expected.items():
            assert stored["tags"][k] == pytest.approx(v, abs=1e-5)
        per_frame.append(expected)
    mean = {n: sum(d.get(n, 0.0) for d in per_frame) / 4 for n in names}
    top = sorted(mean, key=lambda n: -mean[n])[:5]
    prompt_form = {"long_hair": "long hair", "hatsune_miku_(cosplay)": "hatsune miku \\(cosplay\\)"}
    line = ", ".join(prompt_form.get(n, n) for n in top)
    assert ws.path("tags-topk.txt").read_text() == line + "\n" and info["prompt"] == line
    summary = json.loads(ws.path("tags.json").read_text())
    assert list(summary) == ["00001.png", "00002.png", "00003.png", "00004.png"]

    # resume: one lost frame is tagged again, the others are kept
    kept = ws.path("tags", "00001.json").stat().st_mtime_ns
    ws.path("tags", "00003.json").unlink()
    ws.manifest["stages"]["tags"]["complete"] = False
    events.clear()
    stage.run(ws, settings, Job(on_progress=events.append))
    assert [e.done for e in events] == [4] and events[0].resumed == 3
    assert ws.path("tags", "00001.json").stat().st_mtime_ns == kept
    assert ws.path("tags-topk.txt").read_text() == line + "\n"

    # a tagger that cannot be loaded does not cost the tags made with the other one
    from vid2vid.core.errors import ModelNotFound

    other = config.Settings()
    other.tags.model = "no-such-tagger"
    with pytest.raises(ModelNotFound):
        stage.run(ws, other, Job())
    assert len(list(ws.path("tags").iterdir())) == 4 and ws.is_complete("tags")

    # another --topk only rewrites the summary: no tagger is loaded
    def no_load(*a, **k):
        raise AssertionError("the tagger must not be loaded when every frame is tagged")

    monkeypatch.setattr(vid2vid.models.taggers, "load_tagger", no_load)
    settings.tags.topk = 2
    stage.run(ws, settings, Job())
    assert ws.path("tags-topk.txt").read_text() == ", ".join(prompt_form.get(n, n) for n in top[:2]) + "\n"
