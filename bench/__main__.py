"""``python -m bench [--quick]``: the whole benchmark suite, as ``make bench`` runs it.

Copy detection first (both cores, for making the edited queries and the anchors' codes), then
whole searches with 100,000 images in the local stage (10,000 with ``--quick``), speed in a
separate process pinned to one core, similar-image quality and speed, and crawl throughput
against a local server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import copy_detection


def main() -> int:
    args = sys.argv[1:]
    quick = [a for a in args if a == "--quick"]
    copy_detection.main(args)
    root = Path(__file__).resolve().parent.parent
    status = subprocess.call([sys.executable, "-m", "bench.search_at_scale", *quick], cwd=root)
    for module in ("bench.speed", "bench.similar", "bench.crawl"):
        status |= subprocess.call([sys.executable, "-m", module, *quick], cwd=root)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
