"""Start-up and small screens: keys typed while the TUI starts, Start before the model
list is loaded, the offline banner, the export dialog's keys and 80x24 snapshots.

Waits are bounded loops of `pilot.pause()` on the app's state, never fixed sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from textual import events

from writeit.tui.app import WriteItApp
from writeit.tui.screens.input_form import InputFormScreen
from writeit.tui.screens.step_view import StepScreen

TWO = ["scripted-a", "scripted-b"]
SIZE = (120, 40)


async def until(pilot, condition, what: str, tries: int = 3000) -> None:
    """Let the app run until `condition()` holds (bounded; no fixed sleeps)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause()
    notes = [n.message for n in pilot.app._notifications]
    raise AssertionError(f"timed out waiting for {what}; notifications: {notes}")


def typed_during_startup(app: WriteItApp, keys: list[str]) -> None:
    """Queue key presses before the app runs: they reach it right after its own mount,
    as keys a writer types while the terminal switches to the TUI do."""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))


async def test_keys_typed_while_the_form_opens_reach_it_in_order(engine, scripted):
    app = WriteItApp(engine=engine, pipeline="tech-article", models=TWO)
    typed_during_startup(app, list("Temporal"))
    async with app.run_test(size=SIZE) as pilot:
        form = app.screen
        assert isinstance(form, InputFormScreen)
        area = form.query_one("#input-source_material")
        await until(pilot, lambda: area.text == "Temporal", "the early keys in the source box")
        await pilot.press(*" jobs")
        assert area.text == "Temporal jobs" and area.has_focus


# --- Start before the model list is in -------------------------------------------------------


@pytest.fixture
def llm_loading(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """`llm` halfway through loading its plugins, as in the first seconds of `writeit run`:
    the model list blocks until the yielded event is set, and until then the OpenAI plugin
    (which reads extra-openai-models.yaml) is not registered, so its models look unknown."""
    import llm.plugins

    from writeit import providers

    name = "llm.default_plugins.openai_models"
    llm.plugins.load_plugins()
    plugin = llm.plugins.pm.unregister(name=name)
    released = threading.Event()
    real_list = providers.list_models

    def restore() -> None:
        if llm.plugins.pm.get_plugin(name) is None:
            llm.plugins.pm.register(plugin, name)

    def list_models() -> list[providers.ModelInfo]:
        assert released.wait(60), "the test never let the model list load"
        restore()
        return real_list()

    monkeypatch.setattr(providers, "list_models", list_models)
    try:
        yield released
    finally:
        released.set()
        restore()


async def test_start_before_the_model_list_is_in_waits_for_it(engine, openai_server, llm_loading):
    app = WriteItApp(engine=engine, pipeline="tech-article", models=["oai-ok"])
    async with app.run_test(size=SIZE) as pilot:
        form = app.screen
        assert isinstance(form, InputFormScreen)
        form.query_one("#input-source_material").text = "Notes about Temporal"
        await pilot.press("ctrl+s")
        status, models_error = form.query_one("#error-form"), form.query_one("#error-models")
        await until(
            pilot,
            lambda: "waiting" in str(status.render()) or str(models_error.render()).strip(),
            "Start to wait or judge",
        )
        assert str(models_error.render()).strip() == ""  # no "unknown model 'oai-ok'"
        assert "Checking models" in str(status.render())
        assert "Checking models" in str(form.query_one("#start").label)
        assert engine.store.recent() == []

        llm_loading.set()
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        run = engine.store.load(app.screen.run_id)
        assert run.models == ["oai-ok"]
        assert not any("unknown model" in n.message for n in app._notifications)


# --- the offline banner ----------------------------------------------------------------------


def test_models_the_writer_configured_count_as_a_real_provider(openai_server, isolated_env):
    from writeit import providers

    assert providers.has_real_provider()  # oai-* in extra-openai-models.yaml, no key name
    (isolated_env.llm_user_path / "extra-openai-models.yaml").unlink()
    assert not providers.has_real_provider()  # markov and the scripted models only
    openai_server.register_llm_models(isolated_env.llm_user_path, {"oai-keyed": "ok"})
    openai_server.add_llm_model("oai-keyed", "ok", api_key_name="loopback")
    assert not providers.has_real_provider()  # it needs a key nobody set
    keys = isolated_env.llm_user_path / "keys.json"
    keys.write_text(json.dumps({"loopback": "loopback-key-123"}))
    assert providers.has_real_provider()


async def test_no_offline_banner_when_configured_models_are_usable(engine, openai_server):
    app = WriteItApp(engine=engine, pipeline="tech-article", models=["oai-ok"])
    async with app.run_test(size=SIZE) as pilot:
        form = app.screen
        note = form.query_one("#models-note")
        await until(pilot, lambda: "oai-ok" in str(note.render()), "the model list")
        assert not form.query_one("#offline-note").display
