"""Put this folder first on PYTHONPATH and `import fcntl` fails in every Python started so, as on
Windows (tests/test_locking.py runs the workspace and lock tests like that)."""
import sys

sys.modules["fcntl"] = None  # type: ignore[assignment]   # an import of a None entry raises ImportError
