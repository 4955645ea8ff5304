"""The README tells the truth about the product: every TUI key, every CLI command, the
local-endpoint set-up. Each check names what is missing, so a new key or command that
is not documented fails here with the row to add."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).parent.parent / "README.md").read_text()


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def key_rows() -> list[tuple[str, str]]:
    """(key, name) of every action the TUI's help screen lists, as it shows them."""
    from writeit.tui import keys

    return [
        (keys.key_for(action_id, {}), action_id)
        for ids in keys.SECTIONS.values()
        for action_id in ids
    ]


@pytest.mark.parametrize("key,name", key_rows())
def test_every_key_of_the_help_screen_has_a_readme_row(key, name):
    rows = [row for row in table_rows(README) if f"`{key}`" in row and f"`{name}`" in row]
    assert rows, f"README has no table row with `{key}` and `{name}`"


def test_readme_starts_with_make_and_shows_every_cli_command():
    from typer.main import get_command

    from writeit.cli import app

    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0].startswith("make run") and first_block[1].startswith("make test")
    commands = sorted(get_command(app).commands)
    assert "rewind" in commands
    missing = [c for c in commands if not re.search(rf"writeit {c}\b", README)]
    assert not missing, f"README never shows: {missing}"


def test_readme_shows_rewind_resume_model_and_completion():
    assert re.search(r"writeit rewind \w+ ", README)
    assert re.search(r"writeit resume \w+ --headless --model ", README)
    assert "writeit --install-completion" in README and "--show-completion" in README


def test_readme_explains_a_local_openai_compatible_endpoint():
    assert "extra-openai-models.yaml" in README
    assert "~/.config/io.datasette.llm/extra-openai-models.yaml" in README
    for field in ("model_id", "model_name", "api_base", "api_key_name"):
        assert f"`{field}`" in README and f"{field}:" in README, field
    assert "http://localhost:11434/v1" in README  # Ollama's OpenAI-compatible endpoint
    assert "writeit run tech-article --model local-llama" in README
