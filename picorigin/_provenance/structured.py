"""Credit and licence from a page's structured data: schema.org ``ImageObject`` in JSON-LD,
microdata and RDFa, read by ``extruct``.

:func:`read_structured` parses a page once (lxml) and runs extruct's extractors on it, each
JSON-LD block on its own so one broken block costs only itself. :func:`image_claims` walks what
they return (``@graph``, arrays, nested values such as ``NewsArticle.image``) for every
``ImageObject`` or ``Photograph``, and returns, for each, the URLs that name the image it
describes (``contentUrl``, ``url``, ``thumbnailUrl``, a ``Photograph``'s ``image``) and its
claims: ``{"field", "value", "source"}`` with ``field`` one of :data:`FIELDS` and ``source``
``<syntax>:<property>`` (``jsonld:creator``, ``microdata:license``, ``rdfa:creditText``).

Nothing is resolved over the network; every walk and list is capped, so a hostile page costs
bounded time and memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["FIELDS", "DescribedImage", "image_claims", "read_structured"]

logger = logging.getLogger("picorigin")

# schema.org property -> the claim's field; the order is the order claims are listed in.
_PROPERTIES = {
    "creator": "creator",
    "author": "creator",
    "creditText": "credit",
    "copyrightNotice": "copyright_notice",
    "copyrightHolder": "copyright_holder",
    "license": "license",
    "acquireLicensePage": "acquire_license_page",
    "dateCreated": "date_created",
}
FIELDS = ("creator", "credit", "copyright_notice", "copyright_holder", "license",
          "acquire_license_page", "date_created")
"""Every field a claim can have."""

_URL_FIELDS = frozenset({"license", "acquire_license_page"})
_IMAGE_TYPES = frozenset({"ImageObject", "ImageObjectSnapshot", "Photograph"})
_URL_PROPERTIES = ("contentUrl", "url", "thumbnailUrl")
_SYNTAXES = {"json-ld": "jsonld", "microdata": "microdata", "rdfa": "rdfa"}

# Caps: a page's structured data is small; these only stop a hostile one.
MAX_NODES = 5000          # dicts and lists visited per syntax
MAX_DEPTH = 16
MAX_IMAGES = 200          # described images kept per page
MAX_VALUES = 8            # values kept per property (a list of eight creators is plenty)
MAX_TEXT = 1000


@dataclass
class DescribedImage:
    """One ``ImageObject`` (or ``Photograph``): the URLs that name it and what it claims."""

    urls: list[str] = field(default_factory=list)
    content_urls: list[str] = field(default_factory=list)
    claims: list[dict[str, str]] = field(default_factory=list)


def read_structured(html: str, base_url: str, syntaxes: set[str]) -> dict[str, list]:
    """Run extruct's JSON-LD, microdata and RDFa extractors over ``html``.

    Parameters
    ----------
    html : str
        The page's text (already decoded).
    base_url : str
        What relative URLs resolve against (the page's URL, or its ``<base href>``).
    syntaxes : set of str
        Which of ``"json-ld"``, ``"microdata"``, ``"rdfa"`` to run (the caller knows which the
        page uses; RDFa is the slow one).

    Returns
    -------
    dict
        ``{"json-ld": [...], "microdata": [...], "rdfa": [...]}`` as extruct gives them
        (microdata in its uniform, JSON-LD-like shape); a syntax that fails is logged and empty.
    """
    import extruct
    from extruct.jsonld import JsonLdExtractor
    from extruct.utils import parse_xmldom_html

    out: dict[str, list] = {name: [] for name in _SYNTAXES}
    try:
        tree = parse_xmldom_html(html.encode("utf-8", errors="replace"), encoding="UTF-8")
    except Exception as error:  # noqa: BLE001 - unparseable markup has no structured data
        logger.info("structured data: cannot parse %s: %s", base_url, error)
        return out
    if "json-ld" in syntaxes:
        reader = JsonLdExtractor()
        for script in tree.xpath('//script[@type="application/ld+json"]')[:64]:
            try:
                out["json-ld"].extend(reader.extract_items(script))
            except Exception as error:  # noqa: BLE001 - one broken block costs only itself
                logger.info("structured data: bad JSON-LD block on %s: %s", base_url, error)
    for syntax, options in (("microdata", {"uniform": True}), ("rdfa", {})):
        if syntax in syntaxes:
            try:
                found = extruct.extract(tree, base_url=base_url, syntaxes=[syntax],
                                        errors="strict", **options)
                out[syntax] = found.get(syntax) or []
            except Exception as error:  # noqa: BLE001 - damaged markup must not cost the page
                logger.info("structured data: %s failed on %s: %s", syntax, base_url, error)
    return out


def image_claims(
    structured: dict[str, list], resolve: Callable[[str], str | None]
) -> list[DescribedImage]:
    """Every described image in extruct's output, with its URLs (resolved) and claims.

    Parameters
    ----------
    structured : dict
        What :func:`read_structured` returns.
    resolve : callable
        Turns a URL as written (maybe relative) into its canonical absolute form, or ``None``.
    """
    images: list[DescribedImage] = []
    for syntax, prefix in _SYNTAXES.items():
        items = structured.get(syntax) or []
        if syntax == "rdfa":
            items = _compact_rdfa(items)
        for node in _walk(items):
            if len(images) >= MAX_IMAGES:
                return images
            if _IMAGE_TYPES & _types(node):
                described = _describe(node, prefix, resolve)
                if described.urls:
                    images.append(described)
    return images


def _types(node: dict) -> set[str]:
    """A node's ``@type``s by local name: ``schema:ImageObject`` and the full IRI included."""
    raw = node.get("@type")
    names = raw if isinstance(raw, list) else [raw]
    return {name.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]
            for name in names if isinstance(name, str)}


def _walk(root: Any):
    """Every dict in ``root`` (lists and nested values included), breadth first, capped."""
    queue, visited = [(root, 0)], 0
    while queue and visited < MAX_NODES:
        value, depth = queue.pop(0)
        visited += 1
        if isinstance(value, dict):
            yield value
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth < MAX_DEPTH:
            queue.extend((child, depth + 1) for child in children
                         if isinstance(child, (dict, list)))


def _values(value: Any) -> list:
    return (value if isinstance(value, list) else [value])[:MAX_VALUES]


def _text(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())[:MAX_TEXT]
    return text or None


def _name(value: Any) -> str | None:
    """A person's or organisation's name: the text itself, or a node's ``name``."""
    if isinstance(value, dict):
        for key in ("name", "legalName", "alternateName"):
            for item in _values(value.get(key)):
                if (text := _text(item.get("@value") if isinstance(item, dict) else item)):
                    return text
        return _text(value.get("url") or value.get("@id"))
    return _text(value)


def _url(value: Any, resolve: Callable[[str], str | None]) -> str | None:
    """A URL, resolved: the text itself, or a node's ``url`` / ``@id``."""
    if isinstance(value, dict):
        value = value.get("url") or value.get("@id") or value.get("contentUrl")
        if isinstance(value, list):
            value = value[0] if value else None
    text = _text(value)
    if text is None:
        return None
    return resolve(text) or text


def _describe(node: dict, prefix: str, resolve: Callable[[str], str | None]) -> DescribedImage:
    described = DescribedImage()

    def add_url(raw: Any, content: bool) -> None:
        url = resolve(raw) if isinstance(raw, str) else None
        if url and url not in described.urls:
            described.urls.append(url)
            if content:
                described.content_urls.append(url)

    for key in _URL_PROPERTIES:
        for value in _values(node.get(key)):
            add_url(value if isinstance(value, str) else _url(value, resolve),
                    content=key == "contentUrl")
    # A Photograph (a CreativeWork, not a MediaObject) names its file through ``image``.
    if "Photograph" in _types(node):
        for value in _values(node.get("image")):
            if isinstance(value, dict):
                for key in _URL_PROPERTIES:
                    for url in _values(value.get(key)):
                        add_url(url if isinstance(url, str) else None, content=key == "contentUrl")
            else:
                add_url(value, content=True)
    seen: set[tuple[str, str]] = set()
    for prop, name in _PROPERTIES.items():
        for value in _values(node.get(prop)):
            if name in _URL_FIELDS:
                text = _url(value, resolve)
            elif name in ("creator", "copyright_holder"):
                text = _name(value)
            else:
                text = _text(value.get("@value") if isinstance(value, dict) else value)
            if text and (name, text) not in seen:
                seen.add((name, text))
                described.claims.append({"field": name, "value": text,
                                         "source": f"{prefix}:{prop}"})
    return described


_SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")


def _compact_rdfa(nodes: list) -> list[dict]:
    """extruct's RDFa (expanded JSON-LD: full IRIs, ``[{"@value"}]``, ``{"@id"}`` links) as
    compact schema.org nodes, with links to other nodes (a creator's blank node) inlined."""
    by_id = {node["@id"]: node for node in nodes[:MAX_NODES]
             if isinstance(node, dict) and isinstance(node.get("@id"), str)}

    def compact(node: dict, depth: int) -> dict:
        out: dict[str, Any] = {"@type": node.get("@type") or []}
        if not node["@id"].startswith("_:"):            # a blank node's id names nothing
            out["@id"] = node["@id"]
        for key, values in node.items():
            local = next((key[len(p):] for p in _SCHEMA_PREFIXES if key.startswith(p)), None)
            if not local or not isinstance(values, list):
                continue
            items = []
            for value in values[:MAX_VALUES]:
                if not isinstance(value, dict):
                    continue
                if "@value" in value:
                    items.append(value["@value"])
                elif isinstance(value.get("@id"), str):
                    target = by_id.get(value["@id"])
                    if target is not None and depth < 4 and len(target) > 1:
                        items.append(compact(target, depth + 1))
                    elif not value["@id"].startswith("_:"):
                        items.append(value["@id"])
            out[local] = items if len(items) != 1 else items[0]
        return out

    return [compact(node, 0) for node in by_id.values()]
