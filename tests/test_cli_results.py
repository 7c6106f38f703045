"""`picorigin search --sort/--domain/--larger-only`: the CLI orders and filters like the API."""

import io
import json

from click.testing import CliRunner
from helpers import jpeg_bytes, photo
from PIL import Image

from picorigin._cli import cli


def test_sort_domain_and_larger_only(tmp_path):
    original = photo("chelsea")  # 451 x 300
    query = original.resize((300, 200), Image.Resampling.LANCZOS)
    # Enlarged from the query's file (a lossless source would leave no trace to find).
    enlarged = Image.open(io.BytesIO(jpeg_bytes(query, 85))).convert("RGB").resize(
        (900, 600), Image.Resampling.BICUBIC)
    files = {"site/original.jpg": original, "site/old/smaller.jpg": original.resize((400, 266)),
             "mirror/upscale.jpg": enlarged}
    for name, picture in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(jpeg_bytes(picture, 92))
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(query, 85))
    runner = CliRunner()
    db = ["--db", str(tmp_path / "db"), "-s", "stages="]  # the fingerprint finds these copies

    def search(*options):
        result = runner.invoke(cli, ["search", "--json", *db, *options, str(tmp_path / "q.jpg")],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return [m["uri"].rsplit("/", 2)[-2:] for m in json.loads(result.output)["matches"]]

    assert runner.invoke(cli, ["index", *db, "-w", "1", str(tmp_path / "site"),
                               str(tmp_path / "mirror")]).exit_code == 0
    assert search("--sort", "biggest") == [["site", "original.jpg"], ["old", "smaller.jpg"],
                                           ["mirror", "upscale.jpg"]]
    assert sorted(search("--domain", str(tmp_path / "site"))) == [["old", "smaller.jpg"],
                                                                 ["site", "original.jpg"]]
    assert search("--domain", str(tmp_path / "site" / "old")) == [["old", "smaller.jpg"]]
    assert search("--larger-only", "--sort", "biggest") == [["site", "original.jpg"],
                                                           ["old", "smaller.jpg"]]
    table = runner.invoke(cli, ["search", *db, "--sort", "biggest", str(tmp_path / "q.jpg")])
    rows = [line for line in table.output.splitlines() if "near_duplicate" in line]
    assert rows[-1].rstrip().endswith("upscale.jpg") and "^" in rows[-1]
    bad = runner.invoke(cli, ["search", *db, "--domain", "http://", str(tmp_path / "q.jpg")])
    assert bad.exit_code == 2 and "domain must be" in bad.output
    bad = runner.invoke(cli, ["search", *db, "--sort", "largest", str(tmp_path / "q.jpg")])
    assert bad.exit_code == 2 and "largest" in bad.output
