"""``picorigin watch ...`` and ``picorigin alerts ...``: thin click commands over the watcher
(registered on the main group by ``picorigin._cli``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .._cli import _engine_options, engine_command
from .._errors import PicoriginError
from ._watcher import STATUSES, watcher

__all__ = ["alerts", "watch"]


def _fail(error: PicoriginError) -> click.ClickException:
    return click.ClickException(str(error))


@click.group()
def watch() -> None:
    """Watch pictures: an alert (and a webhook) whenever a copy of one is indexed."""


@watch.command("add")
@click.argument("sources", nargs=-1, required=True)
@click.option("--label", default=None, help="A name for this watch.")
@click.option("--webhook", default=None, metavar="URL",
              help="POST each new alert here as signed JSON (private addresses allowed: you "
              "gave it).")
@click.option("--kinds", default="exact,near_duplicate,partial", show_default=True,
              metavar="KINDS", help="Kinds of copy that alert, comma-separated.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@engine_command
def watch_add(engine: Any, sources: tuple[str, ...], label: str | None, webhook: str | None,
              kinds: str, as_json: bool) -> None:
    """Watch the pictures in SOURCES (files, folders, URLs, list files); copies already indexed
    are reported at once."""
    try:
        added = watcher(engine).add(sources, label=label, webhook=webhook,
                                    kinds=kinds.split(","), allow_private=True)
    except PicoriginError as error:
        raise _fail(error) from None
    if as_json:
        click.echo(json.dumps(added))
        return
    click.echo(f"watch {added['watch']}: {added['pictures']} pictures; "
               f"{added['alerts']} alerts for copies already indexed")
    if added["secret"]:
        click.echo(f"webhook secret (HMAC-SHA256 key of X-Picorigin-Signature): "
                   f"{added['secret']}")


@watch.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per watch, per line.")
@engine_command
def watch_list(engine: Any, as_json: bool) -> None:
    """Every watch, its pictures and their alert counts."""
    for item in watcher(engine).watches():
        if as_json:
            click.echo(json.dumps(item))
            continue
        hook = f", webhook {item['webhook']}" if item["webhook"] else ""
        click.echo(f"watch {item['id']}  {item['label'] or '(no label)'}: "
                   f"{len(item['pictures'])} pictures, kinds {','.join(item['kinds'])}{hook}")
        for picture in item["pictures"]:
            counts = picture["alerts"]
            click.echo(f"  {picture['id']:>5}  {picture['uri']}  "
                       + ", ".join(f"{counts[s]} {s}" for s in STATUSES))


@watch.command("remove")
@click.argument("watch_ids", type=int, nargs=-1, required=True)
@engine_command
def watch_remove(engine: Any, watch_ids: tuple[int, ...]) -> None:
    """Stop watching (the watch's alerts and pending webhooks go too)."""
    for watch_id in watch_ids:
        try:
            watcher(engine).remove(watch_id)
        except PicoriginError as error:
            raise _fail(error) from None
        click.echo(f"removed watch {watch_id}")


@watch.command("run")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@engine_command
def watch_run(engine: Any, as_json: bool) -> None:
    """Check new images against the watches and send due webhooks once (serve does this every
    few seconds)."""
    counts = watcher(engine).run()
    if as_json:
        click.echo(json.dumps(counts))
        return
    click.echo(", ".join(f"{value} {name}" for name, value in counts.items()))


@click.group(invoke_without_command=True)
@click.option("--since", default=None, metavar="DATE",
              help="Only alerts raised at or after this ISO date or time.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert, per line.")
@_engine_options
@click.pass_context
def alerts(ctx: click.Context, since: str | None, status: str | None, as_json: bool,
           db: Path | None, settings: tuple[str, ...]) -> None:
    """Alerts, newest first (images indexed by any process are checked first);
    `alerts dismiss N`, `alerts ack N`."""
    root = ctx.find_root()
    outer = root.obj or {}
    root.obj = {"db": db or outer.get("db"), "settings": (*outer.get("settings", ()), *settings)}
    if ctx.invoked_subcommand is None:
        engine_command(_list_alerts)(db=None, settings=(), since=since, status=status,
                                     as_json=as_json)


def _list_alerts(engine: Any, since: str | None, status: str | None, as_json: bool) -> None:
    try:
        found = watcher(engine).alerts(since=since, status=status)
    except PicoriginError as error:
        raise _fail(error) from None
    for alert in found:
        if as_json:
            click.echo(json.dumps(alert))
            continue
        image = alert["image"] or {}
        page = alert["pages"][0]["page_url"] if alert["pages"] else image.get("uri")
        creator = f", creator {alert['creator']['name']}" if alert["creator"] else ""
        click.echo(f"#{alert['id']:<5} {alert['kind']:<15} {alert['score']:.2f}  "
                   f"{alert['status']:<12} {Path(alert['picture'] or '?').name} -> "
                   f"{page or '(removed)'}{creator}  ({alert['created_at']})")


@alerts.command("dismiss")
@click.argument("alert_id", type=int)
@click.option("--reason", default=None, help="Why (licensed, own copy, ...).")
@engine_command
def alerts_dismiss(engine: Any, alert_id: int, reason: str | None) -> None:
    """Dismiss an alert: this copy never alerts for this picture again."""
    try:
        watcher(engine).dismiss(alert_id, reason)
    except PicoriginError as error:
        raise _fail(error) from None
    click.echo(f"dismissed alert {alert_id}")


@alerts.command("ack")
@click.argument("alert_id", type=int)
@engine_command
def alerts_ack(engine: Any, alert_id: int) -> None:
    """Acknowledge an alert (seen; kept in the list)."""
    try:
        watcher(engine).acknowledge(alert_id)
    except PicoriginError as error:
        raise _fail(error) from None
    click.echo(f"acknowledged alert {alert_id}")
