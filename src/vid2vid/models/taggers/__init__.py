"""Anime taggers (WD14, DeepDanbooru) behind one protocol (`Tagger.tag`) and a registry.

    from vid2vid.models.taggers import load_tagger
    tagger = load_tagger("wd14-vit-v2", threshold=0.35)   # or a folder with model.onnx + tag list
    tags = tagger.tag(image)                              # float32 HxWx3 [0, 1] -> {tag: probability}
"""
from vid2vid.models.taggers.base import Tagger, format_prompt, prompt_tag, rank_tags, select_tags
from vid2vid.models.taggers.registry import TAGGERS, load_tagger

__all__ = ["Tagger", "format_prompt", "prompt_tag", "rank_tags", "select_tags", "TAGGERS", "load_tagger"]
