"""The ``picorigin`` command: thin click commands over ``Engine``; tables for people, --json for
programs."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from ._engine import Engine, default_data_folder
from ._errors import PicoriginError, SettingError
from ._models import KINDS, IndexReport, SearchResult
from ._results import SORTS, normalise_domain
from ._settings import SETTINGS

__all__ = ["cli", "main"]


def _parse_settings(values: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--setting")
        settings[name.strip()] = value
    return settings


class _BadOption(click.ClickException):
    """A bad option value, said on one line (no usage block) with the usage exit status, 2."""

    exit_code = 2


def _engine_options(func: Callable) -> Callable:
    """``--db`` and ``--setting``: taken by the group and by every engine command, so they may
    come before or after the command's name."""
    func = click.option(
        "--setting",
        "-s",
        "settings",
        multiple=True,
        metavar="NAME=VALUE",
        help="Override a setting (see `picorigin settings`); repeatable.",
    )(func)
    return click.option(
        "--db",
        "db",
        type=click.Path(path_type=Path),  # a file given is refused on one line, below
        default=None,
        help="Data folder [default: $PICORIGIN_DB, else ./picorigin-data].",
    )(func)


def engine_command(func: Callable) -> Callable:
    """Give a command ``--db`` and ``--setting`` and pass it an open Engine."""

    @_engine_options
    @functools.wraps(func)
    def wrapper(db: Path | None, settings: tuple[str, ...], **kwargs: Any) -> Any:
        outer = click.get_current_context().find_root().obj or {}
        db = db or outer.get("db")
        settings = (*outer.get("settings", ()), *settings)  # after the command wins
        try:
            engine = Engine(db or default_data_folder(), settings=_parse_settings(settings))
        except PicoriginError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:  # the data folder cannot be created or opened
            where = error.filename or db or default_data_folder()
            raise _BadOption(
                f"--db: cannot use {where} as the data folder: {error.strerror or error}"
            ) from None
        with engine:
            return func(engine, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="picorigin")
@_engine_options
@click.pass_context
def cli(ctx: click.Context, db: Path | None, settings: tuple[str, ...]) -> None:
    """picorigin: find where an image came from and every copy of it.

    Index folders, files, URLs and list files, then search with an image. Everything lives in one
    data folder (SQLite catalog + FAISS index files). --db and -s go before or after the command.
    """
    ctx.obj = {"db": db, "settings": settings}


class _Progress:
    """A one-line progress bar with rate and ETA, drawn only on a terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = time.monotonic()
        self.first_done: int | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.first_done is None:
            self.first_done = done  # skipped files are not part of the rate
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (done - self.first_done) / elapsed
        left = (total - done) / rate if rate > 0 else 0
        width = 30
        filled = int(width * done / total) if total else width
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if rate > 0 else "--:--:--"
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
            f"  {rate:6.1f} img/s  ETA {eta} "
        )
        self.stream.flush()
        if done >= total:
            self.stream.write("\n")


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--workers", "-w", type=int, default=None, help="Processes [default: one per core].")
@click.option("--dask", "dask", default=None, metavar="ADDRESS",
              help="Analyse on a Dask cluster's workers (tcp://scheduler:8786) [default: "
                   "the setting ingest, else local processes].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@engine_command
def index(engine: Engine, sources: tuple[str, ...], workers: int | None, dask: str | None,
          as_json: bool) -> None:
    """Index images from files, folders (recursive), http(s) URLs and text files listing them.

    Re-running resumes: files already indexed (same path, size and time) are skipped unread.
    Exits with status 1 when some sources failed; each is listed with its reason.
    """
    try:
        report = engine.index(sources, workers=workers, progress=_Progress(), ingest=dask)
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    _print_report(report, as_json)
    if report.failed:
        sys.exit(1)


def _print_report(report: IndexReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    for source, reason in report.failed:
        click.echo(f"failed: {source}: {reason}", err=True)
    rate = report.indexed / report.seconds if report.seconds else 0.0
    click.echo(
        f"indexed {report.indexed}, skipped {report.skipped}, failed {len(report.failed)}"
        f" in {report.seconds:.1f} s ({rate:.1f} images/s)"
    )


@cli.command()
@click.argument("queries", nargs=-1, required=True)
@click.option("-k", type=int, default=10, show_default=True, help="Most matches per query.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    help="Only matches of this kind; repeatable.",
)
@click.option("--label", default=None, metavar="TEXT",
              help="Only images whose best-guess labels include this (dog, fox squirrel, ...).")
@click.option("--colour", "--color", "colour", default=None, metavar="COLOUR",
              help="Only images with at least 10 % of this colour (a name or #rrggbb).")
@click.option("--fast", is_flag=True,
              help="Fingerprint only: exact and near-duplicate copies, no other stage.")
@click.option("--sort", type=click.Choice(SORTS), default="best", show_default=True,
              help="Order: best match, most changed, biggest (genuine resolution; upscales "
                   "after), oldest or newest first seen. Copies always come before similar.")
@click.option("--domain", default=None, metavar="HOST[/FOLDER]",
              help="Only matches seen on this host (and its subdomains) or in this folder.")
@click.option("--larger-only", is_flag=True,
              help="Only copies genuinely larger than the query (an upscale is not).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per query, one per line.")
@engine_command
def search(
    engine: Engine,
    queries: tuple[str, ...],
    k: int,
    kinds: tuple[str, ...],
    label: str | None,
    colour: str | None,
    fast: bool,
    sort: str,
    domain: str | None,
    larger_only: bool,
    as_json: bool,
) -> None:
    """Find copies of each query image (a path or an http(s) URL), then similar images.

    Exits with status 1 when a query could not be read.
    """
    if domain is not None:
        try:
            normalise_domain(domain)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--domain") from None
    failed = False
    for query in queries:
        try:
            result = engine.search(
                query, k=k, kinds=kinds or None, label=label, colour=colour, fast=fast,
                sort=sort, domain=domain, larger_only=larger_only,
            )
        except PicoriginError as error:
            failed = True
            if as_json:
                click.echo(json.dumps({"query": query, "error": str(error)}))
            else:
                click.echo(f"error: {error}", err=True)
            continue
        if as_json:
            click.echo(json.dumps(result.to_dict()))
        else:
            _print_result(result)
    if failed:
        sys.exit(1)


def _print_result(result: SearchResult) -> None:
    click.secho(
        f"{result.query}  ({result.width}x{result.height}, {result.elapsed_ms:.1f} ms)", bold=True
    )
    labels = result.extra.get("labels")
    if labels:
        guess = ", ".join(f"{label['name']} {label['p']:.0%}" for label in labels[:3])
        click.echo(f"  best guess: {guess}")
    for name, reason in result.extra.get("stages_off", {}).items():
        click.echo(f"  ({name} stage off: {reason})")
    if not result.copies:
        click.echo("  no copies found")
    if not result.matches:
        return
    click.echo(f"  {'kind':<15}{'score':>6}  {'orientation':<14}{'size':>11}  {'id':>6}  uri")
    for match in result.matches:
        size = f"{match.width}x{match.height}"
        larger = "+" if match.larger_than_query else ("^" if match.extra.get("upscaled") else " ")
        click.echo(
            f"  {match.kind:<15}{match.score:>6.3f}  {match.orientation or '-':<14}"
            f"{size:>11}{larger} {match.id:>6}  {match.uri}"
        )
        box = match.extra.get("match_box")
        if box and match.kind == "partial":
            click.echo(
                f"{'':>23}query region {match.extra['query_box']} is region {box} of the match"
                f" ({match.extra['match_overlap']:.0%} of it), rotated {match.extra['rotation']:.0f}°,"
                f" scale {match.extra['scale']:.2f}{', mirrored' if match.extra.get('mirror') else ''}"
            )
    if any(m.larger_than_query or m.extra.get("upscaled") for m in result.matches):
        click.echo("  (+ larger than the query; ^ an upscale of a smaller copy)")
    if result.extra.get("query_upscaled"):
        click.echo("  the query itself is an upscale of a smaller copy")
    copies = result.copies
    creator = next((m.creator for m in copies if m.creator), None)
    if creator:
        click.echo(f"  creator: {creator['name']}  (from {creator['source']})")
    original = result.extra.get("likely_original")
    if original:
        evidence = "; ".join(str(e) for e in original.get("evidence", [])[:3])
        click.echo(f"  likely original: id {original['id']} {original['uri']}  ({evidence})")
    pages = {p["page_url"]: p for m in copies for p in m.extra.get("pages", [])}
    for page in list(pages.values())[:10]:
        title = f" \"{page['title']}\"" if page.get("title") else ""
        click.echo(f"  seen on {page['page_url']}{title}  first {page['first_seen']}")
    if len(pages) > 10:
        click.echo(f"  ... and {len(pages) - 10} more pages (--json lists them all)")


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a PNG showing the two aligned and the changed regions boxed.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@engine_command
def compare(engine: Engine, a: str, b: str, out: Path | None, as_json: bool) -> None:
    """Say what changed between two images of the same picture (paths or URLs).

    Crop box, rotation, scale, mirror, colour shift, and the regions whose content differs
    after alignment (a caption or logo added, an object removed). Exits with status 1 when the
    two do not match at all.
    """
    try:
        result = engine.compare(a, b, diff_path=out)
    except PicoriginError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(result))
    elif not result["matched"]:
        click.echo(f"{a} and {b} show no common picture ({result['inliers']} consistent keypoints)")
    else:
        click.echo(f"{result['kind']}: {result['inliers']} consistent keypoints")
        click.echo(f"  common region: {result['a_box']} in A ({result['a_overlap']:.0%} of A),"
                   f" {result['b_box']} in B ({result['b_overlap']:.0%} of B)")
        click.echo(f"  rotation {result['rotation']:.1f}°, scale {result['scale']:.3f}"
                   f"{', mirrored' if result['mirror'] else ''}")
        shift = result["colour_shift"]
        if shift.get("changed"):
            click.echo(f"  colour shift: mean {shift['mean']}, gain {shift['gain']}")
        for region in result["changed"]:
            click.echo(f"  changed: {region['a_box']} in A, {region['b_box']} in B "
                       f"({region['share']:.1%} of the overlap)")
        if not result["changed"]:
            click.echo("  no region differs after alignment")
        if out:
            click.echo(f"  picture of the differences: {out}")
    if not result["matched"]:
        sys.exit(1)


@cli.group()
def vocab() -> None:
    """The visual vocabulary of the local-feature stage."""


@vocab.command("train")
@click.option("--max-images", type=int, default=5000, show_default=True,
              help="Stored images whose descriptors train it.")
@engine_command
def vocab_train(engine: Engine, max_images: int) -> None:
    """Train a vocabulary on this collection (instead of the packaged default), re-quantise
    every stored image and rebuild the inverted file. Worth it past ~100,000 images."""
    try:
        stage = engine.stage("local")
    except PicoriginError as error:
        raise click.ClickException(str(error)) from None
    started = time.monotonic()
    stage.train_vocabulary(max_images=max_images)
    click.echo(f"trained a vocabulary on up to {max_images} images in "
               f"{time.monotonic() - started:.1f} s; stats: {json.dumps(stage.stats())}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@engine_command
def reindex(engine: Engine, as_json: bool) -> None:
    """Compute the stage signals that indexed images lack.

    Needed after enabling a stage (or installing the deep extra) on an existing collection, and
    after a crash between the catalog's commit and a stage's. Each image is re-read from a
    location that still holds it.
    """
    report = engine.reindex(progress=_Progress())
    _print_report(report, as_json)
    if report.failed:
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@engine_command
def check(engine: Engine, as_json: bool) -> None:
    """Check that every index agrees with the catalog; exit 1 when one does not."""
    findings = engine.check()
    if as_json:
        click.echo(json.dumps(findings))
    else:
        click.echo(f"database      {', '.join(findings['database'])}")
        for index in findings["indexes"]:
            state = "ok" if index["ok"] else (
                f"DISAGREES: {len(index['missing'])} rows not indexed, {len(index['extra'])} "
                f"entries without rows, checkpoint usable: {index['checkpoint_usable']}")
            click.echo(f"index {index['signal']:<8}{index['entries']} entries, "
                       f"{index['rows']} rows: {state}")
        for name, count in findings["missing_signals"].items():
            click.echo(f"stage {name:<8}{count} images lack its signal")
        if not findings["ok"]:
            click.echo("run `picorigin repair` to rebuild what disagrees")
    if not findings["ok"]:
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@engine_command
def repair(engine: Engine, as_json: bool) -> None:
    """Rebuild every index from the catalog and compute missing signals; then check."""
    outcome = engine.repair()
    if as_json:
        click.echo(json.dumps(outcome))
    else:
        click.echo(f"rebuilt {', '.join(outcome['rebuilt'])}; "
                   f"reindexed {outcome['reindexed']['indexed']} images")
        click.echo("check: " + ("ok" if outcome["check"]["ok"] else "still disagrees"))
    if not outcome["check"]["ok"]:
        sys.exit(1)


@cli.command()
@click.argument("destination", type=click.Path(path_type=Path))
@engine_command
def backup(engine: Engine, destination: Path) -> None:
    """Write a consistent copy of the data folder into DESTINATION, while it is in use."""
    try:
        click.echo(f"backed up to {engine.backup(destination)}")
    except PicoriginError as error:
        raise click.ClickException(str(error)) from None


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace the catalog the data folder holds.")
@_engine_options
def restore(source: Path, force: bool, db: Path | None, settings: tuple[str, ...]) -> None:
    """Restore a backup made by `picorigin backup` into the data folder (--db)."""
    from . import _maintenance

    outer = click.get_current_context().find_root().obj or {}
    folder = db or outer.get("db") or default_data_folder()
    try:
        click.echo(f"restored into {_maintenance.restore(source, folder, force=force)}")
    except PicoriginError as error:
        raise click.ClickException(str(error)) from None


@cli.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--depth", type=int, default=2, show_default=True, help="Links followed from a seed.")
@click.option("--max-pages", type=int, default=100, show_default=True, help="Pages read at most.")
@click.option("--same-site/--any-site", default=True, show_default=True,
              help="Stay on the seeds' sites, or follow links anywhere.")
@click.option("--allow", "allow", multiple=True, metavar="DOMAIN",
              help="Also follow links to this domain; repeatable.")
@click.option("--rate", type=float, default=2.0, show_default=True,
              help="Requests per second per host (robots.txt Crawl-delay wins if slower).")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Requests in flight.")
@click.option("--allow-private", is_flag=True,
              help="Crawl private, loopback and link-local addresses (off: SSRF protection).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@engine_command
def crawl(
    engine: Engine,
    urls: tuple[str, ...],
    depth: int,
    max_pages: int,
    same_site: bool,
    allow: tuple[str, ...],
    rate: float,
    concurrency: int,
    allow_private: bool,
    as_json: bool,
) -> None:
    """Crawl web pages from URLS and index every image they show, with where it appeared.

    Honours robots.txt and a per-host rate; resumes an interrupted crawl; a re-crawl refreshes
    last-seen dates and notes images that are gone. Exits with status 1 when something failed.
    """
    from ._provenance.crawl import crawl as run_crawl

    report = run_crawl(
        engine,
        urls,
        depth=depth,
        max_pages=max_pages,
        same_site=same_site,
        allow=allow,
        rate=rate,
        concurrency=concurrency,
        allow_private=allow_private or engine.settings["allow_private_urls"],
    )
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        for url, reason in report.failed:
            click.echo(f"failed: {url}: {reason}", err=True)
        click.echo(
            f"{report.pages} pages, {report.images} image sightings ({len(report.image_ids)} "
            f"images), {report.removed} removed, {len(report.blocked)} blocked by robots.txt, "
            f"{len(report.failed)} failed in {report.seconds:.1f} s"
        )
    if report.failed:
        sys.exit(1)


@cli.command()
@click.argument("image_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@engine_command
def info(engine: Engine, image_id: int, as_json: bool) -> None:
    """Show everything known about an indexed image."""
    try:
        record = engine.info(image_id)
    except PicoriginError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(record))
        return
    click.echo(f"image {record['id']}: {record['width']}x{record['height']} {record['format']}, "
               f"{record['byte_size']} bytes, added {record['added_at']}")
    click.echo(f"  sha256 {record['sha256']}")
    for name, value in sorted(record["metadata"].items()):
        if not name.endswith("_source"):
            source = record["metadata"].get(f"{name}_source")
            click.echo(f"  {name}: {value}" + (f"  ({source})" if source else ""))
    for name, value in sorted(record["signals"].items()):
        click.echo(f"  {name}: {value}")
    for location in record["locations"]:
        removed = f", removed {location['removed_at']}" if location["removed_at"] else ""
        page = f" on {location['page_url']}" if location["page_url"] else ""
        click.echo(f"  seen at {location['uri']}{page} "
                   f"({location['first_seen']} .. {location['last_seen']}{removed})")


@cli.command()
@click.argument("image_ids", type=int, nargs=-1, required=True)
@engine_command
def remove(engine: Engine, image_ids: tuple[int, ...]) -> None:
    """Remove indexed images (their locations and signals too)."""
    for image_id in image_ids:
        try:
            engine.remove(image_id)
        except PicoriginError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"removed {image_id}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@engine_command
def stats(engine: Engine, as_json: bool) -> None:
    """Counts and sizes of the collection."""
    figures = engine.stats()
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(f"data folder   {figures['data_folder']}")
    click.echo(f"images        {figures['images']}")
    click.echo(f"locations     {figures['locations']}")
    click.echo(f"disk          {figures['disk_bytes'] / 1e6:.1f} MB")
    index = figures["index"]
    click.echo(f"index         {index['backend']}, {index['fingerprints']} fingerprints, "
               f"{index['memory_bytes'] / 1e6:.1f} MB in RAM")
    for name, facts in figures["stages"].items():
        click.echo(f"stage {name:<8}{facts.get('images', 0)} images, "
                   f"{facts.get('bytes_on_disk', 0) / 1e6:.1f} MB on disk, "
                   f"{facts.get('bytes_in_ram', 0) / 1e6:.1f} MB in RAM")
        if facts["missing"]:
            click.echo(f"              {facts['missing']} images lack its signals: run `picorigin reindex`")
    for name, reason in figures["stages_off"].items():
        click.echo(f"stage {name:<8}off: {reason}")


def _not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise _BadOption("--api-key must not be blank; leave it out to run without a key")
    return value


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; beyond loopback, writes need an API key.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--api-key", envvar="PICORIGIN_API_KEY", default=None, callback=_not_blank,
              help="Key required on write endpoints [env: PICORIGIN_API_KEY].")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME[:PORT]",
              help="Also answer requests for this host name (a proxy's or the LAN's name); "
              "repeatable; others get 421 [env: PICORIGIN_ALLOWED_HOSTS, comma-separated].")
@engine_command
def serve(engine: Engine, host: str, port: int, api_key: str | None,
          allowed_hosts: tuple[str, ...]) -> None:
    """Serve the web page and the HTTP API (OpenAPI at /docs).

    Requests must name this server's host (127.0.0.1, localhost, [::1], the bound address or
    an --allowed-host): others are refused, so a web page cannot reach it by DNS rebinding.
    """
    try:
        from .server import serve as run_server
    except ImportError as error:
        raise click.ClickException(
            f"the server needs its extra: pip install 'picorigin[server]' ({error})"
        ) from None
    from ._watch import watcher

    watching = watcher(engine)
    watching.start()  # new images checked against watches, webhooks sent, every few seconds
    try:
        run_server(engine, host=host, port=port, api_key=api_key,
                   allowed_hosts=allowed_hosts or None, announce=click.echo)
    except SettingError as error:  # a malformed --allowed-host
        raise _BadOption(str(error)) from None
    finally:
        watching.stop()


@cli.command()
@click.option("--markdown", is_flag=True, help="As the README's table.")
def settings(markdown: bool) -> None:
    """List every setting with its default; set one with -s NAME=VALUE or PICORIGIN_<NAME>."""
    if markdown:
        click.echo(settings_table())
        return
    for setting in SETTINGS:
        click.echo(f"{setting.name} = {setting.default!r}  ({setting.type.__name__})")
        click.echo(f"    {setting.help}")


def settings_table() -> str:
    """The settings as the README's Markdown table (the README is checked against this)."""
    rows = ["| name | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | `{s.default!r}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-images"),
              show_default=True, help="Where to write the demo photos.")
@engine_command
def demo(engine: Engine, out: Path) -> None:
    """Index a small demo collection of real photos, then search with edited copies of them."""
    from ._demo import make_demo

    collection, queries = make_demo(out)
    report = engine.index([str(p) for p in collection], progress=_Progress())
    _print_report(report, as_json=False)
    for query in queries:
        _print_result(engine.search(str(query), k=3))


def main() -> None:
    cli(prog_name="picorigin")


@cli.command()
@click.argument("folder", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--kinds", default="exact,near_duplicate", show_default=True, metavar="KINDS",
              help="Copy kinds that link two files, comma-separated: exact, near_duplicate, "
                   "partial (partial also groups crops, often a deliberate second picture).")
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@click.option("--report", "html_report", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write a self-contained HTML page of the groups.")
@click.option("--move-to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Move every copy but the best of each group here, keeping relative paths "
                   "(never deletes); writes a manifest for --undo.")
@click.option("--undo", "undo", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, metavar="MANIFEST", help="Move back the files a --move-to moved.")
@engine_command
def dedupe(
    engine: Engine,
    folder: Path | None,
    kinds: str,
    as_json: bool,
    html_report: Path | None,
    move_to: Path | None,
    undo: Path | None,
) -> None:
    """Find every group of copies in FOLDER and the best copy of each, and say why.

    Indexes what is not indexed yet, then groups each image with its copies. The best copy has
    the largest genuine resolution (an upscale never wins), is least recompressed, not cropped
    or framed, in colour, with camera metadata, earliest. Exits with status 1 when a file could
    not be read or moved.
    """
    from ._dedupe import check_move_target, undo_moves
    from ._dedupe import dedupe as find_groups

    if undo is not None:
        if folder is not None or move_to is not None:
            raise click.UsageError("--undo takes only the manifest")
        try:
            restored = undo_moves(undo)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        _print_moves(restored, as_json, "restored")
        sys.exit(0 if restored.ok else 1)
    if folder is None:
        raise click.UsageError("give a FOLDER (or --undo MANIFEST)")
    wanted = tuple(k.strip() for k in kinds.split(",") if k.strip())
    bars: dict[str, _Progress] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if phase not in bars:
            bars[phase] = _Progress()
            if bars[phase].enabled:
                click.echo("indexing" if phase == "index" else "finding copies", err=True)
        bars[phase](done, total)

    try:
        if move_to is not None:
            check_move_target(folder, move_to)  # before indexing, not after minutes of it
        report = find_groups(engine, folder, kinds=wanted, progress=progress)
        if html_report is not None:
            report.write_html(html_report)
        moves = report.move_copies(move_to) if move_to is not None else None
    except (ValueError, OSError, PicoriginError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        out = report.to_dict()
        if moves is not None:
            out["moves"] = moves.to_dict()
        click.echo(json.dumps(out))
    else:
        _print_groups(report, html_report)
        if moves is not None:
            _print_moves(moves, False, "moved")
    if report.failed or (moves is not None and not moves.ok):
        sys.exit(1)


def _print_groups(report: Any, html_report: Path | None) -> None:
    for source, reason in report.failed:
        click.echo(f"failed: {source}: {reason}", err=True)
    for number, group in enumerate(report.groups, 1):
        click.secho(f"group {number}: keep {group.best.relative}  ({group.best.width}x"
                    f"{group.best.height}, {group.best.byte_size / 1e3:.0f} kB)", bold=True)
        click.echo(f"  why: {'; '.join(group.reasons[:3]) or 'all copies equal'}")
        for file in group.others:
            notes = f"  [{', '.join(file.notes)}]" if file.notes else ""
            click.echo(f"  {file.kind:<15}{file.width:>6}x{file.height:<6}"
                       f"{file.byte_size / 1e3:>8.0f} kB  {file.relative}{notes}")
    saved = sum(f.byte_size for f in report.duplicates)
    click.echo(f"{len(report.groups)} groups, {len(report.duplicates)} copies to clean "
               f"({saved / 1e6:.1f} MB) among {report.images} images in {report.seconds:.1f} s")
    if html_report is not None:
        click.echo(f"report: {html_report}")


def _print_moves(moves: Any, as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps(moves.to_dict()))
        return
    for path, reason in moves.skipped:
        click.echo(f"not {verb}: {path}: {reason}", err=True)
    click.echo(f"{verb} {len(moves.moved)} files, {len(moves.skipped)} left"
               + (f"; manifest {moves.manifest}" if moves.manifest else ""))


# Watches and alerts live in their own package; registered last (they use engine_command).
from ._watch._commands import alerts as _alerts, watch as _watch  # noqa: E402

cli.add_command(_watch)
cli.add_command(_alerts)
