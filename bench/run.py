"""Entry point of ``make bench``: ``python bench/run.py [--quick]``.

``--quick`` (or ``PICORIGIN_BENCH_QUICK=1`` in the environment, handy through make) runs a
third of the photos and a smaller scale test. See ``bench/README.md``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Run as a script, so the repository root (holding the ``bench`` package) goes on the path.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

if __name__ == "__main__":
    if os.environ.get("PICORIGIN_BENCH_QUICK", "").lower() in {"1", "true", "yes"}:
        sys.argv.append("--quick")
    from bench.__main__ import main

    raise SystemExit(main())
