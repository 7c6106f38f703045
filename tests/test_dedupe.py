"""picorigin.dedupe: groups of copies in a folder, the best copy of each, moving and undoing.

The folder holds real photos (scikit-image) and edited copies of some of them: resized,
upscaled, recompressed, grey, mirrored, cropped to 80 % of the area, framed, and one
byte-identical copy in a subfolder. Edited copies are saved at JPEG quality 85 (a photo editor's
re-save), the originals at 95.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import jpeg_bytes, photo
from PIL import Image, ImageOps

import picorigin
from picorigin import Engine
from picorigin._cli import cli
from picorigin._dedupe import undo_moves

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")


def _crop80(image: Image.Image) -> Image.Image:
    """Keep 80 % of the area, against the top-left corner."""
    scale = math.sqrt(0.8)
    return image.crop((0, 0, round(image.width * scale), round(image.height * scale)))


def _resize(image: Image.Image, factor: float) -> Image.Image:
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC)


def _upscale(image: Image.Image) -> Image.Image:
    """2x, from a JPEG copy as a downloaded picture is (an enlargement of a lossless source
    leaves no trace to find: see picorigin._provenance.enlarged)."""
    return _resize(Image.open(io.BytesIO(jpeg_bytes(image, 85))).convert("RGB"), 2.0)


EDITS = {
    "half": lambda im: _resize(im, 0.5),
    "upscale": _upscale,
    "grey": lambda im: im.convert("L").convert("RGB"),
    "mirror": ImageOps.mirror,
    "crop": _crop80,
    "border": lambda im: ImageOps.expand(im, border=im.width // 8, fill="white"),
}
# photo -> its edited copies; the other photos have no copy in the folder.
COPIES = {
    "astronaut": ("half", "jpeg", "grey"),
    "coffee": ("mirror", "crop", "border"),
    "chelsea": ("upscale", "jpeg", "identical"),
    "rocket": ("grey", "mirror", "border"),
}
ALONE = ("immunohistochemistry", "hubble_deep_field")


def make_folder(folder: Path) -> dict[str, set[str]]:
    """Write the photos and their copies; return the expected groups, original -> members."""
    groups = {}
    for name in (*COPIES, *ALONE):
        original = photo(name)
        original.save(folder / f"{name}.jpg", quality=95)
        members = {f"{name}.jpg"}
        for edit in COPIES.get(name, ()):
            if edit == "identical":
                (folder / "backup").mkdir(exist_ok=True)
                shutil.copyfile(folder / f"{name}.jpg", folder / "backup" / f"{name}.jpg")
                members.add(f"backup/{name}.jpg")
                continue
            relative = f"edited/{name}-{edit}.jpg"
            (folder / "edited").mkdir(exist_ok=True)
            if edit == "jpeg":
                original.save(folder / relative, quality=30)
            else:
                EDITS[edit](original).save(folder / relative, quality=85)
            members.add(relative)
        if len(members) > 1:
            groups[f"{name}.jpg"] = members
    return groups


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """(folder, expected groups, engine, report) of one dedupe run over the test folder."""
    folder = tmp_path_factory.mktemp("library")
    expected = make_folder(folder)
    engine = Engine(tmp_path_factory.mktemp("db"), settings={"workers": 1})
    report = picorigin.dedupe(engine, folder)
    yield folder, expected, engine, report
    engine.close()


def test_groups_are_the_copies_of_each_photo(library):
    folder, expected, _, report = library
    found = {frozenset(f.relative for f in g.files) for g in report.groups}
    assert found == {frozenset(members) for members in expected.values()}
    assert report.images == sum(1 for p in folder.rglob("*.jpg"))
    assert report.failed == []


def test_best_copy_is_the_unedited_photo_with_reasons(library):
    _, expected, _, report = library
    for group in report.groups:
        original = next(name for name, members in expected.items()
                        if group.best.relative in members)
        assert group.best.relative == original, (group.reasons, [f.notes for f in group.files])
        assert group.best.best and not any(f.best for f in group.others)
        assert group.reasons and group.decided_by
        assert all(f.kind in {"exact", "near_duplicate"} for f in group.others)


def test_what_was_seen_in_each_copy(library):
    _, _, _, report = library
    notes = {f.relative: f.notes for g in report.groups for f in g.files}
    assert "greyscale" in notes["edited/astronaut-grey.jpg"]
    assert "framed" in notes["edited/coffee-border.jpg"]
    assert any(n.startswith("cropped") for n in notes["edited/coffee-crop.jpg"])
    # The 2x upscale is the largest file of its group, and it does not win.
    assert "no more detail than a smaller copy" in notes["edited/chelsea-upscale.jpg"]
    by_path = {f.relative: f for g in report.groups for f in g.files}
    assert by_path["backup/chelsea.jpg"].kind == "exact"
    assert by_path["backup/chelsea.jpg"].sha256 == by_path["chelsea.jpg"].sha256


def test_report_as_json(library):
    _, expected, _, report = library
    document = json.loads(json.dumps(report.to_dict()))
    assert len(document["groups"]) == len(expected)
    assert document["duplicates"] == sum(len(m) - 1 for m in expected.values())
    first = document["groups"][0]
    assert first["files"][0]["best"] and first["best"] == first["files"][0]["path"]


def test_exact_kind_alone_groups_identical_bytes_only(library):
    folder, _, engine, _ = library
    report = picorigin.dedupe(engine, folder, kinds=["exact"])
    assert [[f.relative for f in g.files] for g in report.groups] == [
        ["chelsea.jpg", "backup/chelsea.jpg"]]


def test_bad_arguments_are_clear_errors(library, tmp_path):
    _, _, engine, _ = library
    with pytest.raises(ValueError, match="copy kinds"):
        picorigin.dedupe(engine, tmp_path, kinds=["similar"])
    with pytest.raises(FileNotFoundError):
        picorigin.dedupe(engine, tmp_path / "missing")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        picorigin.dedupe(engine, tmp_path / "file.jpg")


@pytest.fixture
def restored(library):
    """The test folder and its report; the folder must be as it was when the test ends."""
    folder, _, _, report = library
    before = snapshot(folder)
    yield folder, report
    assert snapshot(folder) == before


def test_move_then_undo_leaves_the_folder_byte_for_byte(restored, tmp_path):
    folder, report = restored
    before = snapshot(folder)
    target = tmp_path / "dupes"
    moves = report.move_copies(target)
    assert moves.skipped == []
    moved = {f.relative for f in report.duplicates}
    assert len(moves.moved) == len(moved) > 0
    # The best copies and the photos without copies stay; the others keep their relative paths.
    assert set(snapshot(folder)) == set(before) - moved
    assert {k: v for k, v in snapshot(target).items() if k != "manifest.json"} == {
        k: before[k] for k in moved}
    manifest = json.loads((target / "manifest.json").read_text())
    assert {m["sha256"] for m in manifest["moves"]} == {f.sha256 for f in report.duplicates}

    restored = undo_moves(target / "manifest.json")
    assert restored.skipped == [] and len(restored.moved) == len(moved)
    assert snapshot(folder) == before
    assert [p.name for p in target.rglob("*")] == ["manifest.json"]
    # A second undo finds everything in place and touches nothing.
    again = undo_moves(target / "manifest.json")
    assert again.moved == [] and {r for _, r in again.skipped} == {"already restored"}
    assert snapshot(folder) == before


def test_a_file_changed_since_indexing_is_not_moved(restored, tmp_path):
    folder, report = restored
    changed = folder / "edited" / "rocket-mirror.jpg"
    original = changed.read_bytes()
    changed.write_bytes(original + b"edited meanwhile")
    try:
        moves = report.move_copies(tmp_path / "dupes")
        assert moves.skipped == [(str(changed), "changed since it was indexed")]
        assert changed.read_bytes() == original + b"edited meanwhile"
        assert len(moves.moved) == len(report.duplicates) - 1
        assert not (tmp_path / "dupes" / "edited" / "rocket-mirror.jpg").exists()
    finally:
        undo_moves(tmp_path / "dupes" / "manifest.json")
        changed.write_bytes(original)


def test_move_target_inside_the_folder_is_refused(restored):
    folder, report = restored
    with pytest.raises(ValueError, match="inside the scanned folder"):
        report.move_copies(folder / "dupes")
    assert not (folder / "dupes").exists()


def test_undo_refuses_what_is_not_a_manifest(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a picorigin dedupe manifest"):
        undo_moves(bad)
    bad.write_text(json.dumps({"moves": "everything"}))
    with pytest.raises(ValueError, match="not a picorigin dedupe manifest"):
        undo_moves(bad)


# -- the command ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_db(tmp_path_factory) -> Path:
    """The command's own data folder (one writer per folder), kept across the tests below."""
    return tmp_path_factory.mktemp("cli-db")


@pytest.fixture
def run(cli_db, monkeypatch):
    monkeypatch.setenv("PICORIGIN_DB", str(cli_db))
    monkeypatch.setenv("PICORIGIN_WORKERS", "1")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def copied(library, tmp_path):
    """A copy of the test folder (the command indexes it into its own data folder)."""
    folder = tmp_path / "photos"
    shutil.copytree(library[0], folder)
    return folder


def test_command_moves_reports_and_undoes(run, copied, library, tmp_path):
    _, expected, _, report = library
    before = snapshot(copied)
    target, page = tmp_path / "dupes", tmp_path / "dupes.html"
    result = run("dedupe", copied, "--report", page, "--move-to", target)
    assert result.exit_code == 0, result.output
    copies = sum(len(m) - 1 for m in expected.values())
    assert f"{len(expected)} groups, {copies} copies to clean" in result.output
    assert "keep chelsea.jpg" in result.output and "[greyscale]" in result.output
    assert f"moved {copies} files, 0 left" in result.output
    assert page.read_text().count("<section class=group") == len(expected)
    assert set(snapshot(copied)) == set(before) - {f.relative for f in report.duplicates}

    result = run("dedupe", "--undo", target / "manifest.json")
    assert result.exit_code == 0, result.output
    assert f"restored {copies} files, 0 left" in result.output
    assert snapshot(copied) == before

    result = run("dedupe", copied, "--json", "--kinds", "exact")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [[f["relative"] for f in g["files"]] for g in document["groups"]] == [
        ["chelsea.jpg", "backup/chelsea.jpg"]]


def test_command_errors_are_messages_not_tracebacks(run, copied, tmp_path):
    result = run("dedupe", copied, "--kinds", "exact,similar")
    assert result.exit_code == 1 and "copy kinds" in result.output
    result = run("dedupe", copied, "--move-to", copied / "inside")
    assert result.exit_code == 1 and "inside the scanned folder" in result.output
    assert not (copied / "inside").exists()
    bad = tmp_path / "manifest.json"
    bad.write_text("[]")
    result = run("dedupe", "--undo", bad)
    assert result.exit_code == 1 and "not a picorigin dedupe manifest" in result.output
    result = run("dedupe")
    assert result.exit_code == 2 and "FOLDER" in result.output


# -- the HTML report in a browser -----------------------------------------------------------

@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(apt-get install chromium; `make test` installs it)")
def test_html_report_opens_offline_in_chromium(library, tmp_path):
    from playwright.sync_api import sync_playwright

    _, expected, _, report = library
    page_file = tmp_path / "report.html"
    report.write_html(page_file)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860},
                                          offline=True)
            page = context.new_page()
            errors: list[str] = []
            requests: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            groups = page.locator("section.group")
            assert groups.count() == len(expected)
            for n in range(groups.count()):
                group = groups.nth(n)
                assert group.locator("figure").count() == len(report.groups[n].files)
                assert group.locator("figure.best").count() == 1
                best = group.locator("figure.best figcaption").inner_text()
                assert "keep" in best and report.groups[n].best.relative in best
                assert group.locator("ul.reasons li").count() == len(report.groups[n].reasons)
            # Every thumbnail decoded from its data: URI, shown side by side in a group.
            sizes = page.eval_on_selector_all(
                "figure img", "imgs => imgs.map(i => [i.naturalWidth, i.complete])")
            assert sizes and all(width > 0 and done for width, done in sizes)
            tops = page.eval_on_selector_all(
                "section.group:first-of-type figure",
                "fs => fs.map(f => Math.round(f.getBoundingClientRect().top))")
            assert len(set(tops)) < len(tops)
            assert errors == []
            assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "dedupe-report-desktop.png", full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=ARTIFACTS / "dedupe-report-phone.png", full_page=True)
        finally:
            browser.close()
