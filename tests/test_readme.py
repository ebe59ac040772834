"""The README documents every setting, and its quick start is the two commands."""

from __future__ import annotations

import re
from pathlib import Path

from core.platform.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _env_name(name: str) -> str:
    alias = Settings.model_fields[name].validation_alias
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else f"QUORUM_{name.upper()}"


def test_every_setting_is_in_the_settings_table() -> None:
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    expected = {_env_name(name) for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from the README table"
    assert documented - expected == set(), "README documents settings that do not exist"


def test_quick_start_has_the_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make run" in quick_start and "make test" in quick_start
