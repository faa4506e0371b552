"""Every setting is documented: named in .env.example and in the README's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_in_env_example_and_readme(name):
    variable = name.upper()
    assert f"{variable}=" in (ROOT / ".env.example").read_text() or (
        f"# {variable}" in (ROOT / ".env.example").read_text()
    ), f"{variable} is missing from .env.example"
    assert f"`{variable}`" in (ROOT / "README.md").read_text(), f"{variable} is not in README"
