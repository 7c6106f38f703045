import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import PHOTOS, jpeg_bytes, photo

from picorigin._cli import cli


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("PICORIGIN_DB", str(tmp_path / "db"))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_index_then_search_json_one_line_per_query(run, photo_dir, tmp_path):
    result = run("index", photo_dir, "-w", "1")
    assert result.exit_code == 0, result.output
    assert f"indexed {len(PHOTOS)}, skipped 0, failed 0" in result.output
    query = tmp_path / "q.jpg"
    query.write_bytes(jpeg_bytes(photo("rocket").rotate(180), 30))
    result = run("search", "--json", query, photo_dir / "coffee.jpg")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["query"] for line in lines] == [str(query), str(photo_dir / "coffee.jpg")]
    assert lines[0]["matches"][0]["kind"] == "near_duplicate"
    assert lines[0]["matches"][0]["orientation"] == "rot180"
    assert lines[1]["matches"][0]["kind"] == "exact"


def test_readable_table_and_no_copies(run, photo_dir, unknown_dir):
    run("index", photo_dir, "-w", "1")
    result = run("search", photo_dir / "chelsea.jpg", unknown_dir / "moon.jpg")
    assert "exact" in result.output and "chelsea.jpg" in result.output
    assert "no copies found" in result.output


def test_failures_are_listed_and_set_the_exit_status(run, tmp_path, photo_dir):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "good.jpg").write_bytes((photo_dir / "rocket.jpg").read_bytes())
    (bad / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run("index", bad)
    assert result.exit_code == 1
    assert "bad.jpg" in result.output and "indexed 1, skipped 0, failed 1" in result.output
    result = run("search", "--json", bad / "bad.jpg")
    assert result.exit_code == 1
    assert "error" in json.loads(result.output)


def test_info_remove_stats(run, photo_dir):
    run("index", photo_dir, "-w", "1")
    found = json.loads(run("search", "--json", photo_dir / "astronaut.jpg").output)
    image_id = found["matches"][0]["id"]
    info = json.loads(run("info", "--json", image_id).output)
    assert info["width"] == 512 and info["uris"][0].endswith("astronaut.jpg")
    assert "astronaut.jpg" in run("info", image_id).output
    stats = json.loads(run("stats", "--json").output)
    assert stats["images"] == len(PHOTOS)
    assert run("remove", image_id).exit_code == 0
    assert json.loads(run("stats", "--json").output)["images"] == len(PHOTOS) - 1
    missing = run("info", image_id)
    assert missing.exit_code == 1 and "no indexed image" in missing.output


def test_db_option_and_settings(tmp_path, photo_dir):
    runner = CliRunner()
    db = tmp_path / "explicit"
    result = runner.invoke(cli, ["index", str(photo_dir), "--db", str(db), "-s", "workers=1"])
    assert result.exit_code == 0 and (db / "catalog.sqlite").exists()
    bad = runner.invoke(cli, ["stats", "--db", str(db), "-s", "nonsense=1"])
    assert bad.exit_code == 1 and "unknown setting" in bad.output
    listing = runner.invoke(cli, ["settings"])
    assert "near_duplicate_distance" in listing.output


def test_python_dash_m(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "picorigin", "--help"], capture_output=True, text=True, check=True
    )
    assert "search" in done.stdout and "index" in done.stdout


def test_crawl_then_search_shows_pages_creator_and_original(run, tmp_path):
    from PIL import Image

    from provenance.miniweb import MiniWeb

    big = photo("coffee")
    exif = Image.Exif()
    exif[0x013B] = "Jane Photographer"
    original = tmp_path / "original.jpg"
    big.save(original, quality=95, exif=exif)
    with MiniWeb() as web:
        web.file("/img/coffee-large.jpg", original.read_bytes())
        web.file("/img/coffee-small.jpg", jpeg_bytes(big.resize((300, 200)), 60))
        web.page("/", '<html><head><title>Home</title></head><body>'
                 '<img src="/img/coffee-small.jpg" alt="a cup"><a href="/story">story</a></body></html>')
        web.page("/story", '<html><head><title>The story</title></head><body>'
                 '<img src="/img/coffee-large.jpg"></body></html>')
        result = run("crawl", web.url("/"), "--allow-private", "--rate", "50")
        assert result.exit_code == 0, result.output
        assert "2 pages" in result.output
        refused = run("crawl", web.url("/"))
        assert refused.exit_code == 1  # loopback refused without --allow-private
    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(big.resize((450, 300)), 50))
    output = run("search", query).output
    assert "creator: Jane Photographer  (from exif:Artist)" in output
    assert "likely original:" in output and "coffee-large.jpg" in output
    assert "seen on" in output and "The story" in output
    line = json.loads(run("search", "--json", query).output)
    assert line["likely_original"]["uri"].endswith("coffee-large.jpg")
    larger = [m for m in line["matches"] if m["larger_than_query"]]
    assert [m["uri"].rsplit("/", 1)[-1] for m in larger] == ["coffee-large.jpg"]
    assert {p["title"] for p in line["matches"][0]["pages"]} == {"Home", "The story"}


def test_compare_reports_crop_and_the_pasted_object(run, tmp_path):
    base = photo("astronaut")
    edited = base.copy()
    patch = photo("coffee").resize((120, 80))
    edited.paste(patch, (300, 360))  # an object pasted in
    edited = edited.crop((40, 30, 500, 500))  # and cropped
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    base.save(a)
    edited.save(b)
    out = tmp_path / "diff.png"
    result = run("compare", a, b, "--json", "--out", out)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["matched"]
    # B is A's region (40, 30)-(500, 500); the box of A in which B lies is reported in A pixels.
    x0, y0, x1, y1 = found["a_box"]
    assert abs(x0 - 40) < 10 and abs(y0 - 30) < 10 and abs(x1 - 500) < 10 and abs(y1 - 500) < 10
    assert abs(found["rotation"]) < 1 and abs(found["scale"] - 1) < 0.03
    # the changed region covers the pasted patch, at (300, 360)-(420, 440) in A
    assert any(
        r["a_box"][0] < 330 and r["a_box"][2] > 390 and r["a_box"][1] < 390 and r["a_box"][3] > 410
        for r in found["changed"]
    ), found["changed"]
    assert out.exists() and out.read_bytes()[:4] == b"\x89PNG"
    assert "changed:" in run("compare", a, b).output
    unrelated = tmp_path / "c.png"
    photo("camera").save(unrelated)
    assert run("compare", a, unrelated).exit_code == 1


def test_vocab_train_and_reindex(run, photo_dir):
    run("index", photo_dir, "-w", "1")
    result = run("vocab", "train", "--max-images", "10")
    assert result.exit_code == 0, result.output
    assert "trained a vocabulary" in result.output
    assert run("reindex").output.startswith("indexed 0, skipped 0, failed 0")
    stats = run("stats").output
    assert "stage local" in stats and "stage deep" in stats
