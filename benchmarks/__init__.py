"""Benchmarks: scripts that print figures and same-run ratios, never assertions.

Run each from the repository root as ``python -m benchmarks.NAME [args]`` (``--help`` lists its
arguments).
"""

import os as _os
from pathlib import Path as _Path

_REPO = _Path(__file__).resolve().parents[1]
#: the Reuters-21578 corpus: NEWS_CORPUS, else ``shared/corpus`` beside the checkout (CI, /work/main)
#: or beside its parent directory (a git worktree under wt/)
DEFAULT_CORPUS = _Path(
    _os.environ.get("NEWS_CORPUS")
    or next(
        (p for p in (_REPO.parent / "shared", _REPO.parents[1] / "shared") if p.exists()),
        _REPO.parent / "shared",
    )
    / "corpus"
    / "reuters21578.jsonl"
)
