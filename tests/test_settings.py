import pytest

from picorigin import SETTINGS, SettingError
from picorigin._settings import resolve_settings


def test_defaults_come_from_the_table():
    values = resolve_settings({}, environ={})
    assert values == {s.name: s.default for s in SETTINGS}


def test_override_beats_environment_beats_default():
    env = {"PICORIGIN_MAX_BYTES": "1000", "PICORIGIN_ALLOW_PRIVATE_URLS": "yes"}
    values = resolve_settings({"max_bytes": "2000"}, environ=env)
    assert values["max_bytes"] == 2000
    assert values["allow_private_urls"] is True


def test_unknown_setting_is_refused_with_the_known_names():
    with pytest.raises(SettingError, match="near_duplicate_distance"):
        resolve_settings({"near_dup": 3}, environ={})


@pytest.mark.parametrize("name, value", [("max_bytes", "lots"), ("allow_private_urls", "maybe")])
def test_badly_typed_value_is_refused(name, value):
    with pytest.raises(SettingError, match=name):
        resolve_settings({name: value}, environ={})


def test_every_setting_has_help():
    assert all(s.help.strip() for s in SETTINGS)
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


def test_readme_documents_every_setting_as_the_table_says():
    from pathlib import Path

    from picorigin._cli import settings_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert settings_table() in readme  # `picorigin settings --markdown` writes it
    for setting in SETTINGS:
        assert f"| `{setting.name}` | `{setting.default!r}` |" in readme, setting.name


def test_settings_are_typed_attributes_and_a_mapping():
    values = resolve_settings({"workers": "3"}, environ={})
    assert values.workers == 3 and values["workers"] == 3 and dict(values)["workers"] == 3
    assert values.replace(workers=4).workers == 4 and values.workers == 3
    with pytest.raises(SettingError, match="workers"):
        values.replace(workers="many")
