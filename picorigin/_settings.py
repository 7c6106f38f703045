"""The one table of settings: it drives CLI help, validation and the README's settings section.

A setting is read, in order of precedence, from an explicit argument (``Engine(settings={...})``
or a CLI option), from the environment variable ``PICORIGIN_<NAME>`` (upper case), or from its
default here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from ._errors import SettingError

__all__ = ["SETTINGS", "Setting", "resolve_settings"]


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str

    @property
    def type(self) -> type:
        return type(self.default)

    def parse(self, value: Any) -> Any:
        """Coerce ``value`` (possibly a string from the environment or the CLI) to this type."""
        kind = self.type
        try:
            if kind is bool and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            if kind is bool:
                return bool(value)
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return kind(value)
        except (TypeError, ValueError):
            raise SettingError(
                f"setting {self.name!r} takes a {kind.__name__}, got {value!r}"
            ) from None


SETTINGS: tuple[Setting, ...] = (
    Setting("max_bytes", 50_000_000, "Largest input file or download accepted, in bytes."),
    Setting("max_pixels", 100_000_000, "Largest image accepted, in pixels (width x height); "
            "larger ones are refused as decompression bombs."),
    Setting("max_side", 30_000, "Largest width or height accepted, in pixels."),
    Setting("fetch_timeout", 20.0, "Seconds to wait for an http(s) source before giving up."),
    Setting("fetch_max_redirects", 5, "Redirects followed when fetching an http(s) source."),
    Setting("allow_private_urls", False, "Fetch URLs that resolve to private, loopback or "
            "link-local addresses (off by default so a server cannot be used as an SSRF proxy)."),
    Setting("near_duplicate_distance", 64, "Largest Hamming distance (of 256 bits) between "
            "fingerprints that counts as a near-duplicate; see README for how it was measured."),
    Setting("stages", "local,deep", "Stages run beside the fingerprint, comma-separated: local "
            "(crops, pasted-in, screenshots; needs only OpenCV), deep (similar images, labels, "
            "colour; needs the deep extra, off with a notice without it). Empty for "
            "fingerprint only."),
    Setting("similar_min_score", 0.8, "Lowest calibrated score for a `similar` match (0-1, "
            "the same scale in every collection): at 0.5, 79 % of same-kind and 10 % of "
            "different-kind photo pairs pass; at 0.9, 54 % and 1.2 %."),
    Setting("measure_detail", True, "Measure each image's true detail at ingest (a full-size "
            "decode, ~10-40 ms) so upscaled copies are not reported as higher resolution."),
    Setting("workers", 0, "Processes used by `index`; 0 means one per CPU core."),
    Setting("checkpoint_seconds", 60.0, "Seconds between index checkpoints while indexing; "
            "the catalog commits every image, and an index older than it is rebuilt on open."),
    Setting("thumbnail_side", 256, "Longer side of the JPEG thumbnail kept per image "
            "(0 keeps none)."),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def resolve_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return every setting's value: overrides beat ``PICORIGIN_<NAME>`` beats the default."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_BY_NAME))
    if unknown:
        known = ", ".join(sorted(_BY_NAME))
        raise SettingError(f"unknown setting(s) {', '.join(unknown)}; known: {known}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if overrides.get(setting.name) is not None:
            values[setting.name] = setting.parse(overrides[setting.name])
        elif f"PICORIGIN_{setting.name.upper()}" in environ:
            values[setting.name] = setting.parse(environ[f"PICORIGIN_{setting.name.upper()}"])
        else:
            values[setting.name] = setting.default
    return values
