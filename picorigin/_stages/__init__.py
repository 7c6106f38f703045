"""The stages: each a signal computed from an image, stored in the catalog and searched through
an index derived from it, behind one type (:class:`~picorigin._stages.base.Stage`).

``fingerprint`` is always on. The ``stages`` setting adds ``local`` (crops, pasted-in and
screenshotted copies; needs only OpenCV) and ``deep`` (similar images, labels, colour; needs the
``deep`` extra). Classes are imported on first use, so heavy imports stay lazy.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from .._errors import PicoriginError, SettingError
from .._settings import Settings
from .._store import Catalog
from .base import Stage

__all__ = ["KNOWN", "Stage", "open_stages", "requested", "stage_class"]

logger = logging.getLogger("picorigin")

KNOWN = {
    "fingerprint": ("picorigin._stages.fingerprint", "FingerprintStage"),
    "local": ("picorigin._stages.local", "LocalStage"),
    "deep": ("picorigin._stages.deep", "DeepStage"),
}
OPTIONAL = ("local", "deep")


def stage_class(name: str) -> type[Stage]:
    """The class of a stage, imported on first use."""
    module, attribute = KNOWN[name]
    return getattr(importlib.import_module(module), attribute)


def requested(settings: Settings) -> list[str]:
    """The optional stage names the ``stages`` setting asks for, validated."""
    names = [n.strip() for n in str(settings.stages).split(",") if n.strip()]
    unknown = sorted(set(names) - set(OPTIONAL))
    if unknown:
        raise SettingError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(OPTIONAL)}")
    return list(dict.fromkeys(names))


def open_stages(catalog: Catalog, folder: Path,
                settings: Settings) -> tuple[dict[str, Stage], dict[str, str]]:
    """Open the fingerprint and every requested stage that can run here.

    Returns
    -------
    (stages, off) : (dict of name -> Stage, dict of name -> reason)
        ``stages`` starts with ``fingerprint``. A stage whose extra is missing is off, with the
        reason a person can act on; search still works without it.
    """
    stages: dict[str, Stage] = {"fingerprint": stage_class("fingerprint")(catalog, folder, settings)}
    off: dict[str, str] = {}
    for name in requested(settings):
        try:
            cls = stage_class(name)
            cls.check()
            stages[name] = cls(catalog, folder, settings)
        except (ImportError, PicoriginError) as error:
            off[name] = str(error)
            logger.info("the %s stage is off: %s", name, error)
    return stages, off
