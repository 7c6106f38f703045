import picorigin

EXPECTED = [
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


def test_all_is_pinned_and_sorted():
    assert picorigin.__all__ == EXPECTED
    assert picorigin.__all__ == sorted(picorigin.__all__)


def test_every_name_in_all_exists():
    for name in picorigin.__all__:
        assert hasattr(picorigin, name), name


def test_errors_form_one_tree():
    for name in picorigin.__all__:
        obj = getattr(picorigin, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, picorigin.PicoriginError), name
