"""Start-up and small screens: keys typed while the TUI starts, Start before the model
list is loaded, the offline banner, the export dialog's keys and 80x24 snapshots.

Waits are bounded loops of `pilot.pause()` on the app's state, never fixed sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from pilot import until
from textual import events

from writeit.tui.app import WriteItApp
from writeit.tui.screens.export import ExportDialog
from writeit.tui.screens.history import HistoryScreen
from writeit.tui.screens.input_form import InputFormScreen
from writeit.tui.screens.step_view import StepScreen

TWO = ["scripted-a", "scripted-b"]
SIZE = (120, 40)
SMALL = (80, 24)
SNAP_SOURCE = "Our team moved 140 nightly cron jobs to Temporal in six weeks."


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


async def test_keys_typed_while_the_run_list_loads_wait_for_it(engine, scripted, monkeypatch):
    older = await engine.start_run("tech-article", {"source_material": "older"}, models=TWO)
    await engine.start_run("tech-article", {"source_material": "newer"}, models=TWO)
    loaded = threading.Event()
    recent = engine.store.recent

    def slow_recent(*args, **kwargs):
        assert loaded.wait(60), "the test never let the run list load"
        return recent(*args, **kwargs)

    monkeypatch.setattr(engine.store, "recent", slow_recent)
    app = WriteItApp(engine=engine)
    typed_during_startup(app, ["down", "enter"])  # the second run, newest first
    async with app.run_test(size=SIZE) as pilot:
        assert not app._notifications  # no "No run selected" while the list loads
        loaded.set()
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the run to open")
        assert app.screen.run_id == older.pipeline_run_id


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


# --- the export dialog, keyboard first --------------------------------------------------------


async def open_export_from_the_list(pilot) -> ExportDialog:
    """A run with a chosen candidate, its export dialog opened with E from the run list."""
    app, engine = pilot.app, pilot.app.engine
    run = await engine.start_run("tech-article", {"source_material": SNAP_SOURCE}, models=TWO)
    await engine.execute_step(run.pipeline_run_id)
    await engine.select(run.pipeline_run_id, 0)
    await app.screen.reload()
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, ExportDialog), "the export dialog")
    dialog = app.screen
    await until(pilot, lambda: dialog.run is not None, "the dialog to load")
    return dialog


def format_line(dialog: ExportDialog) -> str:
    return str(dialog.query_one("#format").render())


async def test_the_export_dialog_is_driven_by_keys(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_export_from_the_list(pilot)
        assert dialog.focused is dialog.query_one("#format")
        assert "(•) Markdown" in format_line(dialog) and "( ) JSON" in format_line(dialog)
        await pilot.press("y")
        assert dialog.format == "yaml" and "(•) YAML" in format_line(dialog)
        assert "( ) Markdown" in format_line(dialog)
        await pilot.press("left")
        assert dialog.format == "md"
        await pilot.press("3")
        assert dialog.format == "json" and "(•) JSON" in format_line(dialog)
        assert dialog.query_one("#path").value.endswith(".json")
        await pilot.press("enter")
        await until(pilot, lambda: dialog.saved is not None, "the export")
        saved = json.loads(dialog.saved.read_text())
        assert dialog.saved.parent == engine.workspace.exports
        assert saved["metadata"]["run_id"] == dialog.run_id


async def test_the_export_dialog_starts_from_the_preferred_format(engine, scripted):
    engine.preferences.export_format = "json"
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_export_from_the_list(pilot)
        assert dialog.format == "json"
        assert "(•) JSON" in format_line(dialog) and "( ) Markdown" in format_line(dialog)
        assert dialog.query_one("#path").value.endswith(".json")


# --- 80x24 -----------------------------------------------------------------------------------


async def quiet(pilot) -> None:
    """No toasts and no blinking cursors in the picture."""
    await pilot.pause()
    pilot.app.clear_notifications()
    for widget in pilot.app.screen.query("TextArea, Input"):
        widget.cursor_blink = False
    await pilot.pause()


def still(app: WriteItApp) -> WriteItApp:
    """No animations, so every capture is the same."""
    app.animation_level = "none"
    return app


async def a_run_with_a_branch(engine) -> str:
    """A run at its outline with a branch forked from its angles; returns the root id."""
    run = await engine.start_run("tech-article", {"source_material": SNAP_SOURCE}, models=TWO)
    root = run.pipeline_run_id
    await engine.execute_step(root)
    await engine.select(root, 0)
    await engine.accept(root)
    await engine.execute_step(root)
    await engine.fork(root, "angles")
    return root


def footer_keys(app: WriteItApp) -> list[str]:
    return [str(key.render()) for key in app.screen.query("FooterKey")]


def test_snapshot_run_list_80x24(snap_compare, engine, scripted, tui_stable):
    async def before(pilot):
        await a_run_with_a_branch(engine)
        await pilot.app.screen.reload()
        pilot.app.screen.query_one("DataTable").move_cursor(row=0)
        await quiet(pilot)
        shown = " ".join(footer_keys(pilot.app))
        assert "Quit" in shown and "palette" in shown

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SMALL, run_before=before)


def test_snapshot_input_form_80x24(snap_compare, engine, scripted, tui_stable):
    app = WriteItApp(
        engine=engine,
        pipeline="tech-article",
        inputs={"source_material": SNAP_SOURCE},
        models=TWO,
    )

    async def before(pilot):
        form = pilot.app.screen
        await until(pilot, lambda: str(form.query_one("#models-note").render()).strip(), "note")
        await quiet(pilot)
        start = form.query_one("#start")
        assert start.region.height and form.screen.region.contains_region(start.region)
        shown = " ".join(footer_keys(pilot.app))
        assert "Quit" in shown and "palette" in shown

    assert snap_compare(still(app), terminal_size=SMALL, run_before=before)


def test_snapshot_history_80x24(snap_compare, engine, scripted, tui_stable):
    async def before(pilot):
        app = pilot.app
        root = await a_run_with_a_branch(engine)
        await app.screen.reload()
        app.screen.query_one("DataTable").move_cursor(
            row=app.screen.query_one("DataTable").get_row_index(root)
        )
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "history")
        await until(pilot, lambda: app.screen.family is not None, "the tree")
        await quiet(pilot)
        tree = app.screen.query_one("#family")
        lines = [tree.render_line(y).text for y in range(tree.size.height)]
        runs = [line for line in lines if "↳" in line or "run 0" in line]
        assert len(runs) == 2 and all("● running" in line for line in runs), lines

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SMALL, run_before=before)


def test_snapshot_export_dialog_80x24(snap_compare, engine, scripted, tui_stable):
    async def before(pilot):
        await open_export_from_the_list(pilot)
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SMALL, run_before=before)


async def test_offline_a_new_run_asks_two_candidates_of_the_offline_model(engine, scripted):
    app = WriteItApp(engine=engine, pipeline="tech-article")
    async with app.run_test(size=SIZE):
        form = app.screen
        assert isinstance(form, InputFormScreen)
        assert form.query_one("#models").value == "markov, markov"


async def test_writeit_alone_reopens_the_unfinished_run_left_last(engine, scripted):
    from writeit import autopilot
    from writeit.engine import Engine

    finished = await engine.start_run("tech-article", {"source_material": "n"}, models=TWO)
    left = await engine.start_run("tech-article", {"source_material": "m"}, models=TWO)
    await engine.execute_step(left.pipeline_run_id)
    await engine.select(left.pipeline_run_id, 1)
    # a later session, in a new process: a new engine on the same workspace
    app = WriteItApp(engine=Engine(engine.workspace, preferences=engine.preferences), reopen=True)
    async with app.run_test(size=SIZE) as pilot:

        def shown() -> bool:
            screen = app.screen
            if not isinstance(screen, StepScreen) or screen.run is None:
                return False
            return len(screen.panes) == 2 and all(p.shown for p in screen.panes.values())

        await until(pilot, shown, "the step view with its candidates")
        assert app.screen.run_id == left.pipeline_run_id
        assert app.engine.load(left.pipeline_run_id).current_step == "angles"
        assert not app.engine.streaming(left.pipeline_run_id)  # nothing was asked of a model
    # a finished run is not reopened: the run list is where a writer starts something new
    await autopilot.drive(engine, finished.pipeline_run_id, "first")
    app = WriteItApp(engine=Engine(engine.workspace, preferences=engine.preferences), reopen=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not isinstance(app.screen, StepScreen)
