"""Every name a benchmark imports from vid2vid exists: the benchmarks are not run by the suite (they
take minutes), so a renamed library function would otherwise break them unseen."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def vid2vid_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from vid2vid... import name` in the file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vid2vid":
            out += [(node.module, alias.name) for alias in node.names]
    return out


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_imports_exist(path):
    missing = []
    for module, name in vid2vid_imports(path):
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{path.name} imports names vid2vid no longer has: {missing}"


def test_the_check_sees_a_missing_name(tmp_path):
    fake = tmp_path / "bench_fake.py"
    fake.write_text("def main():\n    from vid2vid.diffusion.loading import resolve_device\n")
    assert vid2vid_imports(fake) == [("vid2vid.diffusion.loading", "resolve_device")]
    assert not hasattr(importlib.import_module("vid2vid.diffusion.loading"), "resolve_device")
