"""picorigin: a self-hosted reverse image search engine.

Find where an image came from and every copy of it in the collections you index::

    from picorigin import Engine

    with Engine("picorigin-data") as engine:
        engine.index(["photos/"])
        for match in engine.search("suspicious.jpg").matches:
            print(match.kind, match.score, match.uri)
"""

from ._dedupe import DedupeReport, dedupe
from ._engine import Engine
from ._errors import (
    CorruptImage,
    FetchError,
    ForbiddenAddress,
    ImageError,
    ImageTooLarge,
    NotFound,
    PicoriginError,
    SettingError,
    StageUnavailable,
    UnsupportedFormat,
)
from ._models import COPY_KINDS, KINDS, IndexReport, Match, SearchResult
from ._settings import SETTINGS, Setting

__version__ = "0.1.0"

__all__ = [
    "COPY_KINDS",
    "CorruptImage",
    "DedupeReport",
    "Engine",
    "FetchError",
    "ForbiddenAddress",
    "ImageError",
    "ImageTooLarge",
    "IndexReport",
    "KINDS",
    "Match",
    "NotFound",
    "PicoriginError",
    "SETTINGS",
    "SearchResult",
    "Setting",
    "SettingError",
    "StageUnavailable",
    "UnsupportedFormat",
    "__version__",
    "dedupe",
]
