"""Optional stages beyond the core fingerprint, each behind the same small protocol.

A stage has ``name``, ``working_side``, a pure ``compute(image, ...)`` run in worker processes,
and ``add``, ``remove``, ``search``, ``save``, ``close``, ``stats`` on an instance that owns its
files in the data folder. ``local`` (crops, pasted-in and screenshotted copies) needs only
OpenCV; ``deep`` (similar images, labels, colour) needs the ``deep`` extra.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from .._errors import PicoriginError, SettingError

__all__ = ["KNOWN", "open_stages", "stage_class"]

logger = logging.getLogger("picorigin")

KNOWN = {
    "local": ("picorigin._stages.local", "LocalStage"),
    "deep": ("picorigin._stages.deep", "DeepStage"),
}


def stage_class(name: str) -> type:
    """The class of a stage, imported on first use (heavy imports stay lazy)."""
    module, attribute = KNOWN[name]
    return getattr(importlib.import_module(module), attribute)


def requested(settings: dict[str, Any]) -> list[str]:
    """The stage names the ``stages`` setting asks for, validated."""
    names = [n.strip() for n in str(settings["stages"]).split(",") if n.strip()]
    unknown = sorted(set(names) - set(KNOWN))
    if unknown:
        raise SettingError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    return list(dict.fromkeys(names))


def open_stages(folder: Path, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Open every requested stage that can run here.

    Returns
    -------
    (stages, off) : (dict of name -> stage, dict of name -> reason)
        A stage whose extra is missing is off, with the reason a person can act on; search
        still works without it.
    """
    stages: dict[str, Any] = {}
    off: dict[str, str] = {}
    for name in requested(settings):
        try:
            cls = stage_class(name)
            check = getattr(cls, "check", None)
            if check is not None:
                check()
            stages[name] = cls(folder, settings)
        except (ImportError, PicoriginError) as error:
            off[name] = str(error)
            logger.info("the %s stage is off: %s", name, error)
    return stages, off
