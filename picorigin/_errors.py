"""Every exception picorigin raises, in one tree.

::

    PicoriginError                  base of everything below
    ├── ImageError                  an input could not become an image
    │   ├── UnsupportedFormat       not an image, or a format no decoder is installed for
    │   ├── CorruptImage            truncated or damaged data
    │   └── ImageTooLarge           decompression bomb, absurd dimensions, byte cap exceeded
    ├── FetchError                  an http(s) source could not be fetched
    │   └── ForbiddenAddress        the URL resolves to a private, loopback or link-local address
    ├── NotFound                    no indexed image with that id
    ├── SettingError                an unknown setting, or a value of the wrong type
    └── StageUnavailable            an optional stage was asked for but its extra is not installed

Every error carries a message a person can act on; ``ImageError`` and ``FetchError`` also carry
the ``source`` (path, URL or ``"<bytes>"``) they concern.
"""

from __future__ import annotations

__all__ = [
    "CorruptImage",
    "FetchError",
    "ForbiddenAddress",
    "ImageError",
    "ImageTooLarge",
    "NotFound",
    "PicoriginError",
    "SettingError",
    "StageUnavailable",
    "UnsupportedFormat",
]


class PicoriginError(Exception):
    """Base class of every picorigin error."""


class ImageError(PicoriginError):
    """An input could not be turned into an image."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.source}: {message}" if self.source else message


class UnsupportedFormat(ImageError):
    """The data is not an image, or is in a format no installed decoder reads."""


class CorruptImage(ImageError):
    """The data looks like an image but is truncated or damaged."""


class ImageTooLarge(ImageError):
    """A decompression bomb, absurd dimensions, or more bytes than the cap allows."""


class FetchError(PicoriginError):
    """An http(s) source could not be fetched (status, timeout, too many redirects, too big)."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.source}: {message}" if self.source else message


class ForbiddenAddress(FetchError):
    """The URL resolves to a private, loopback or link-local address and those are not allowed."""


class NotFound(PicoriginError, LookupError):
    """No indexed image has that id."""


class SettingError(PicoriginError, ValueError):
    """An unknown setting name, or a value that does not fit the setting."""


class StageUnavailable(PicoriginError):
    """An optional stage (deep model, Milvus, ...) was asked for but its extra is not installed."""
