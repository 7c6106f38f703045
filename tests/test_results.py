"""Sorting and filtering a result (picorigin._results), on plain match dicts."""

from __future__ import annotations

import pytest

from picorigin._models import Match
from picorigin._results import SORTS, arrange, first_seen, in_domain, normalise_domain


def match(id, kind="near_duplicate", score=0.9, size=(100, 100), seen=None, upscaled=False,
          larger=False, uri=None, pages=()):
    return {"id": id, "kind": kind, "score": score, "width": size[0], "height": size[1],
            "first_seen": seen, "upscaled": upscaled, "larger_than_query": larger,
            "uri": uri, "uris": [uri] if uri else [], "pages": list(pages)}


MATCHES = [  # the engine's best-first order
    match(1, "exact", 1.0, (400, 300), "2021-05-01T00:00:00+00:00", larger=True,
          uri="https://a.example.org/img/1.jpg"),
    match(2, "near_duplicate", 0.95, (1600, 1200), "2019-01-01", upscaled=True,
          uri="https://cdn.b.example.com/2.jpg"),
    match(3, "near_duplicate", 0.70, (800, 600), None, larger=True, uri="/srv/photos/3.jpg"),
    match(4, "partial", 0.80, (200, 150), "2020-02-02T12:00:00Z",
          pages=[{"page_url": "https://news.example.net/world/story", "image_id": 4},
                 {"page_url": "https://a.example.org/copied", "image_id": 1}]),
    match(5, "similar", 0.85, (3000, 2000), "2018-01-01"),
]


def ids(matches):
    return [m["id"] for m in matches]


def test_best_keeps_the_engine_order():
    assert ids(arrange(MATCHES)) == [1, 2, 3, 4, 5]


def test_changed_puts_the_least_similar_copy_first_and_similar_last():
    assert ids(arrange(MATCHES, sort="changed")) == [3, 4, 2, 1, 5]


def test_biggest_puts_genuine_size_first_and_upscales_after():
    assert ids(arrange(MATCHES, sort="biggest")) == [3, 1, 4, 2, 5]


def test_oldest_and_newest_by_first_seen_unknown_last():
    assert ids(arrange(MATCHES, sort="oldest")) == [2, 4, 1, 3, 5]
    assert ids(arrange(MATCHES, sort="newest")) == [1, 4, 2, 3, 5]


def test_ties_keep_the_engine_order():
    same = [match(i, score=0.5, seen="2020-01-01") for i in (7, 3, 9)]
    for sort in SORTS:
        assert ids(arrange(same, sort=sort)) == [7, 3, 9]


def test_domain_matches_host_subdomains_and_folders():
    assert ids(arrange(MATCHES, domain="example.org")) == [1]
    assert ids(arrange(MATCHES, domain="b.example.com")) == [2]  # cdn.b.example.com
    assert ids(arrange(MATCHES, domain="https://news.example.net/world/")) == [4]
    assert ids(arrange(MATCHES, domain="news.example.net/worl")) == []  # a folder, not a prefix
    assert ids(arrange(MATCHES, domain="/srv/photos")) == [3]
    assert ids(arrange(MATCHES, domain="/srv/photo")) == []
    # Another copy's page (image 1 on a.example.org/copied) does not count for match 4.
    assert ids(arrange(MATCHES, domain="a.example.org/copied")) == []
    assert ids(arrange(MATCHES, domain="example.org.evil.test")) == []


def test_larger_only_drops_upscales_and_smaller():
    assert ids(arrange(MATCHES, larger_only=True, sort="biggest")) == [3, 1]


def test_works_on_match_objects():
    objects = [Match(id=m["id"], kind=m["kind"], score=m["score"], uri=m["uri"], uris=m["uris"],
                     width=m["width"], height=m["height"], format="JPEG",
                     larger_than_query=m["larger_than_query"],
                     extra={"first_seen": m["first_seen"], "upscaled": m["upscaled"],
                            "pages": m["pages"]}) for m in MATCHES]
    assert [m.id for m in arrange(objects, sort="biggest")] == [3, 1, 4, 2, 5]
    assert [m.id for m in arrange(objects, domain="example.org")] == [1]


@pytest.mark.parametrize("bad", ["", "   ", "http://", "x" * 600])
def test_bad_domains_are_refused(bad):
    with pytest.raises(ValueError, match="domain must be"):
        normalise_domain(bad)


def test_unknown_sort_is_refused():
    with pytest.raises(ValueError, match="unknown sort"):
        arrange(MATCHES, sort="largest")


def test_normalise_and_in_domain():
    assert normalise_domain(" HTTPS://WWW.Example.org/News/ ") == "www.example.org/News"
    assert normalise_domain("C:\\photos\\") == "C:/photos"
    assert in_domain(["https://www.example.org/News/a.jpg"], "example.org/News")
    assert not in_domain(["ftp://example.org/a.jpg", "not a url"], "example.org")


def test_first_seen_is_the_earliest_readable_date():
    locations = [{"first_seen": "2022-01-01T00:00:00+00:00"}, {"first_seen": None},
                 {"first_seen": "garbage"}, {"first_seen": "2021-06-30T23:00:00-02:00"}]
    assert first_seen(locations) == "2021-06-30T23:00:00-02:00"
    assert first_seen([]) is None
