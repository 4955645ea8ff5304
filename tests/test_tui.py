"""The TUI driven like a writer would: Textual's pilot over a real engine and store.

Models are the deterministic `scripted-a` / `scripted-b`; waits are bounded loops of
`pilot.pause()` on the engine's and the screen's state, never fixed sleeps.
"""

from __future__ import annotations

import io

from pilot import notified, until
from rich.console import Console

from writeit import autopilot
from writeit.models import PipelineStatus, ResponseStatus, StepStatus
from writeit.tui.app import WriteItApp
from writeit.tui.screens.diff import DiffScreen
from writeit.tui.screens.export import ExportDialog
from writeit.tui.screens.help import HelpScreen, help_renderable
from writeit.tui.screens.history import HistoryScreen
from writeit.tui.screens.input_form import InputFormScreen
from writeit.tui.screens.merge import MergeScreen
from writeit.tui.screens.run_list import RunListScreen
from writeit.tui.screens.step_view import StepScreen
from writeit.tui.widgets.candidate import CandidatePane

TWO = ["scripted-a", "scripted-b"]
SIZE = (120, 40)


def step_screen(app) -> StepScreen:
    assert isinstance(app.screen, StepScreen), f"on {type(app.screen).__name__}"
    return app.screen


def candidates_shown(app, count: int = 2) -> bool:
    """The step's candidates are done and every pane shows its whole text."""
    screen = app.screen
    if not isinstance(screen, StepScreen) or screen._stale or screen._refreshing:
        return False
    if screen.run is None:
        return False
    engine = app.engine
    if engine.streaming(screen.run_id):
        return False
    run = engine.load(screen.run_id)
    cands = run.current.candidates
    if len(cands) != count or any(r.status == ResponseStatus.STREAMING for r in cands):
        return False
    if screen.run.last_seq != run.last_seq:
        return False
    return all(
        r.response_id in screen.panes and screen.panes[r.response_id].shown == r.raw_output
        for r in cands
    )


async def start_from_form(pilot, source: str) -> None:
    app = pilot.app
    assert isinstance(app.screen, InputFormScreen)
    area = app.screen.query_one("#input-source_material")
    assert area.has_focus  # the form starts in the first input
    await pilot.press(*"Temporal")
    area.text = area.text + "\n" + source
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")


# --- the whole journey --------------------------------------------------------------------


async def test_the_whole_journey(engine, source, scripted, tmp_path):
    app = WriteItApp(engine=engine, pipeline="tech-article", models=TWO)
    async with app.run_test(size=SIZE) as pilot:
        await start_from_form(pilot, source)
        await until(pilot, lambda: candidates_shown(app), "angles candidates")
        screen = step_screen(app)
        root = screen.run_id
        run = engine.store.load(root)
        assert run.user_inputs["source_material"].startswith("Temporal\n")
        assert run.current_step == "angles"

        # angles: pick the second, leave feedback, go on (the next step starts by itself)
        await pilot.press("2")
        await until(
            pilot, lambda: engine.store.load(root).steps["angles"].user_selection == 1, "selection"
        )
        await pilot.press("c")
        assert screen.focused.id == "feedback"
        await pilot.press(*"Lead with the numbers")
        await pilot.press("escape")
        await until(
            pilot,
            lambda: (
                engine.store.load(root).steps["angles"].user_feedback == "Lead with the numbers"
            ),
            "feedback saved",
        )
        assert screen.focused is None or screen.focused.id != "feedback"
        await pilot.press("a")
        await until(pilot, lambda: engine.store.load(root).current_step == "outline", "outline")
        await until(pilot, lambda: candidates_shown(app), "outline candidates")
        outline = engine.store.load(root).steps["outline"]
        assert "Lead with the numbers" in outline.prompt
        assert engine.store.load(root).steps["angles"].output in outline.prompt

        # outline: first candidate
        await pilot.press("1", "a")
        await until(pilot, lambda: engine.store.load(root).current_step == "draft", "draft")
        await until(pilot, lambda: candidates_shown(app), "draft candidates")

        # draft: an AI merge of both candidates with an instruction
        scripted.script("scripted-a", replies=["# Merged draft\n\nThe best of both drafts."])
        merge = await open_merge(pilot)
        await pilot.click("#instruction")
        await pilot.press(*"Keep the numbers")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: merge.phase == "edit", "the AI merge")
        assert "The best of both drafts." in merge.query_one("#merge-editor").text
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "back to the step")
        draft = engine.store.load(root).steps["draft"]
        assert draft.output == "# Merged draft\n\nThe best of both drafts."
        assert draft.user_selection is None
        merge_response = [r for r in draft.ai_responses if r.kind == "merge"][0]
        assert merge_response.instruction == "Keep the numbers"
        await pilot.press("a")
        await until(pilot, lambda: engine.store.load(root).current_step == "polish", "polish")
        await until(pilot, lambda: candidates_shown(app), "polish candidates")
        assert "The best of both drafts." in engine.store.load(root).steps["polish"].prompt

        # polish: first candidate, accept completes the run
        await pilot.press("1", "a")
        await until(
            pilot,
            lambda: engine.store.load(root).status == PipelineStatus.COMPLETED,
            "the run to complete",
        )
        finished = engine.store.load(root)
        polished = finished.steps["polish"].output

        # B back to draft, a different choice: a new branch, the original untouched
        await pilot.press("b")
        await until(pilot, lambda: engine.store.load(root).current_step == "draft", "rewind")
        await until(pilot, lambda: candidates_shown(app), "draft again")
        await pilot.press("2")
        await until(pilot, lambda: engine.store.children(root) != [], "a branch")
        (branch,) = engine.store.children(root)
        await until(pilot, lambda: step_screen(app).run_id == branch, "the view on the branch")
        child = engine.store.load(branch)
        assert child.parent_pipeline_run_id == root and child.branch_point == "draft"
        assert child.steps["draft"].output == child.steps["draft"].candidates[1].processed_content
        original = engine.store.load(root)
        assert original.steps["draft"].output == "# Merged draft\n\nThe best of both drafts."
        assert original.steps["polish"].output == polished
        assert original.status == PipelineStatus.COMPLETED

        # the branch goes on to its own polish and completes
        await pilot.press("a")
        await until(pilot, lambda: engine.store.load(branch).current_step == "polish", "polish")
        await until(pilot, lambda: candidates_shown(app), "branch polish")
        await pilot.press("2", "a")
        await until(
            pilot,
            lambda: engine.store.load(branch).status == PipelineStatus.COMPLETED,
            "the branch to complete",
        )

        # H: the tree shows both branches; fork from the original's outline
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "history")
        history = app.screen
        await until(pilot, lambda: history.family is not None, "the family")
        assert set(history.family.runs) == {root, branch}
        tree = history.query_one("#family")
        labels = [str(node.label) for node in tree_nodes(tree.root)]
        assert any(f"↳ {branch[:8]} from draft" in label for label in labels)
        outline_node = next(
            node
            for node in tree_nodes(tree.root)
            if node.data and node.data.run_id == root and node.data.step == "outline"
        )
        tree.move_cursor(outline_node)
        await pilot.pause()
        assert "outline" in str(history.query_one("#reader-title").render())
        await pilot.press("f")
        await until(pilot, lambda: len(engine.store.children(root)) == 2, "a fork")
        fork = [c for c in engine.store.children(root) if c != branch][0]
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        await until(pilot, lambda: step_screen(app).run_id == fork, "the view on the fork")
        forked = engine.store.load(fork)
        assert forked.branch_point == "outline" and forked.current_step == "outline"
        assert forked.steps["outline"].output == original.steps["outline"].output

        # E: export the completed branch as Markdown with its history
        step_screen(app).run_id = branch
        step_screen(app)._stale = True
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog), "export dialog")
        dialog = app.screen
        await until(pilot, lambda: dialog.run is not None, "the dialog to load")
        target = tmp_path / "article.md"
        dialog.query_one("#path").value = str(target)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: dialog.saved is not None, "the export")
        text = target.read_text()
        done = engine.store.load(branch)
        assert text.startswith(f"---\nrun_id: {branch}")
        assert done.final_text.strip() in text
        assert "## Appendix: how this article was written" in text
        assert "Feedback: Lead with the numbers" in text
        assert f"parent_run_id: {root}" in text
        shown = str(dialog.query_one("#export-result").render())
        assert (
            "Saved" in shown
            and "article.md" in shown
            and str(target.stat().st_size) in shown.replace(",", "")
        )
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_value is None


def tree_nodes(node):
    yield node
    for child in node.children:
        yield from tree_nodes(child)


async def test_the_export_dialog_keeps_an_existing_file_unless_told_to_overwrite(
    engine, scripted, tmp_path
):
    target = tmp_path / "article.md"
    target.write_text("the writer's edits")
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog), "export dialog")
        dialog = app.screen
        await until(pilot, lambda: dialog.run is not None, "the dialog to load")
        note, overwrite = dialog.query_one("#path-exists"), dialog.query_one("#overwrite")
        assert not note.display and not overwrite.display  # the default name is free
        dialog.query_one("#path").value = str(target)
        await until(pilot, lambda: note.display, "the note that the file exists")
        assert "saves as article-2.md" in str(note.render()) and overwrite.display
        await pilot.press("ctrl+s")
        await until(pilot, lambda: dialog.saved is not None, "the export")
        assert dialog.saved == tmp_path / "article-2.md"
        assert target.read_text() == "the writer's edits"
        assert dialog.saved.read_text().startswith(f"---\nrun_id: {run_id}")
        assert "article-2.md" in str(dialog.query_one("#export-result").render())

        await pilot.press("shift+tab", "shift+tab")  # from Close back to the checkbox
        assert overwrite.has_focus
        await pilot.press("space")
        assert overwrite.value and "will be replaced" in str(note.render())
        await pilot.press("ctrl+s")
        await until(pilot, lambda: dialog.saved == target, "the overwrite")
        assert target.read_text() == (tmp_path / "article-2.md").read_text()
        await pilot.press("escape")


# --- streaming, errors, quitting -------------------------------------------------------------


async def open_new_run(pilot, engine, models=TWO, source="Notes about Temporal"):
    """Start a run from the engine and open it in the app (the first step starts)."""
    run = await engine.start_run("tech-article", {"source_material": source}, models=models)
    pilot.app.open_run(run.pipeline_run_id, start=True)
    await until(pilot, lambda: isinstance(pilot.app.screen, StepScreen), "the step view")
    return run.pipeline_run_id


def notice(app) -> str:
    """The step view's notice: what the writer can do now ("" while it mounts)."""
    found = step_screen(app).query("#notice")
    return str(found.first().render()) if found else ""


async def test_a_finished_candidate_is_chosen_while_another_streams(engine, scripted):
    gate = scripted.Gate(after_chunks=2)
    scripted.script("scripted-a", gate=gate, chunk_size=8)
    scripted.script("scripted-c", fail="quota exceeded")
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine, models=[*TWO, "scripted-c"])
        await gate.wait_reached()
        screen = step_screen(app)
        await until(
            pilot,
            lambda: any(p.shown and "-streaming" in p.classes for p in screen.panes.values()),
            "streaming text on screen",
        )
        streaming = next(p for p in screen.panes.values() if "-streaming" in p.classes)
        assert streaming.border_subtitle == "streaming…"
        assert streaming.shown == app.live_text[streaming.response_id]
        # b done and c failed: one model writes, not three
        await until(pilot, lambda: "1 of 3 writing (scripted-a)" in notice(app), "the notice")
        assert "Choose a finished one now (2; the others stop)" in notice(app)
        await pilot.press("1")
        await until(pilot, lambda: notified(app, "scripted-a response is streaming"), "refusal")
        await pilot.press("2")
        await until(
            pilot,
            lambda: engine.store.load(run_id).steps["angles"].user_selection is not None,
            "the selection",
        )
        step = engine.store.load(run_id).steps["angles"]
        assert step.ai_responses[step.user_selection].model_name == "scripted-b"
        stopped = step.candidates[0]
        assert stopped.status == ResponseStatus.INTERRUPTED and len(stopped.raw_output) == 16
        assert not engine.streaming(run_id)
        await until(pilot, lambda: "✓ Chosen: candidate 2 (scripted-b)" in notice(app), "chosen")
        assert "writing" not in notice(app)


async def test_accept_goes_on_with_the_only_finished_candidate(engine, scripted):
    scripted.script("scripted-b", fail="quota exceeded")
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: "Only candidate 1 (scripted-a) finished" in notice(app), "hint")
        assert "A goes on with it" in notice(app)
        await pilot.press("a")
        await until(pilot, lambda: engine.store.load(run_id).current_step == "outline", "outline")
        angles = engine.store.load(run_id).steps["angles"]
        assert angles.decision.how == "selected"
        assert angles.decision.response_ids == [angles.candidates[0].response_id]


async def test_dropped_updates_are_recovered_from_the_engine(engine, scripted):
    from writeit.updates import Update

    gate = scripted.Gate(after_chunks=2)
    scripted.script("scripted-a", gate=gate, chunk_size=8)
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await gate.wait_reached()
        response_id = engine.load(run_id).steps["angles"].candidates[0].response_id
        app.live_text[response_id] = ""  # as if the deltas had been dropped
        app._subscription.offer(Update("resync", run_id, {"dropped": 5}))
        await until(pilot, lambda: app.live_text[response_id], "the recovered text")
        assert (
            app.live_text[response_id]
            == engine.snapshot(run_id).find_response(response_id)[1].raw_output
        )
        gate.release()
        await until(pilot, lambda: candidates_shown(app), "the candidates")


async def test_quit_mid_stream_saves_the_text_and_reopening_resumes(engine, scripted):
    gate = scripted.Gate(after_chunks=3)
    scripted.script("scripted-a", gate=gate, chunk_size=10)
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await gate.wait_reached()
        await until(
            pilot,
            lambda: (
                engine.load(run_id).steps["angles"].candidates[1].status == ResponseStatus.COMPLETED
            ),
            "scripted-b to finish",
        )
        await pilot.press("q")
    paused = engine.store.load(run_id)
    assert paused.status == PipelineStatus.PAUSED
    first = paused.steps["angles"].candidates[0]
    assert first.status == ResponseStatus.INTERRUPTED and len(first.raw_output) == 30
    assert f"WriteIt run {run_id} (tech-article) is at step angles (paused)" in app.farewell
    assert f"writeit resume {run_id[:8]}" in app.farewell

    scripted.reset()
    again = WriteItApp(engine=engine, run_id=run_id)  # as `writeit resume RUN` opens it
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(again.screen, StepScreen), "the step view")
        await until(
            pilot,
            lambda: (
                engine.store.load(run_id).steps["angles"].candidates[0].status
                == ResponseStatus.COMPLETED
            ),
            "the resumed run",
        )
        run = engine.store.load(run_id)
        resumed = run.steps["angles"].candidates
        assert [r.model_name for r in resumed] == ["scripted-a", "scripted-b"]  # in place
        assert resumed[0].replaces == first.response_id
        await until(pilot, lambda: candidates_shown(again, 2), "still two panes")
        assert list(step_screen(again).panes) == [r.response_id for r in resumed]
        await pilot.press("1")
        await until(
            pilot,
            lambda: engine.store.load(run_id).steps["angles"].status == StepStatus.COMPLETED,
            "the choice",
        )


async def test_a_failed_candidate_shows_the_provider_message_and_retries(engine, scripted):
    scripted.script("scripted-b", fail="quota exceeded for this key")
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: not engine.streaming(run_id) and candidates_shown(app), "done")
        screen = step_screen(app)
        failed = list(screen.panes.values())[1]
        assert "-failed" in failed.classes
        status = str(failed.query_one(".candidate-status").render())
        assert "quota exceeded for this key" in status and "T asks this model again" in status
        assert failed.query_one(".retry").display
        await pilot.press("2")
        await until(pilot, lambda: notified(app, "failed"), "the refusal")
        first_failure = engine.load(run_id).steps["angles"].candidates[1]
        await pilot.press("t")  # fails again: the new failure takes the old one's column
        await until(
            pilot,
            lambda: (
                engine.load(run_id).steps["angles"].candidates[1].replaces
                == first_failure.response_id
            ),
            "the retried candidate",
        )
        await until(pilot, lambda: candidates_shown(app, 2), "still two panes")
        retried = engine.load(run_id).steps["angles"].candidates[1]
        assert retried.status == ResponseStatus.FAILED
        assert list(screen.panes)[1] == retried.response_id
        # or ask another model in its place
        scripted.reset()
        await pilot.click(".-failed #retry-other")
        await until(pilot, lambda: app.screen.query("#answer"), "the model question")
        await pilot.press(*"scripted-c", "enter")
        await until(
            pilot,
            lambda: engine.load(run_id).steps["angles"].candidates[1].model_name == "scripted-c",
            "the other model's candidate",
        )
        await until(pilot, lambda: candidates_shown(app, 2), "two panes")
        run = engine.store.load(run_id)
        assert [r.status for r in run.steps["angles"].candidates] == [ResponseStatus.COMPLETED] * 2


async def test_every_model_failing_is_shown_and_regenerate_recovers(engine, scripted):
    scripted.script("*", fail="provider down")
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(
            pilot, lambda: engine.store.load(run_id).status == PipelineStatus.ERROR, "the error"
        )
        screen = step_screen(app)
        await until(
            pilot,
            lambda: "every model failed" in str(screen.query_one("#notice").render()),
            "notice",
        )
        scripted.reset()
        await pilot.press("r")
        await until(pilot, lambda: candidates_shown(app), "new candidates")
        assert engine.store.load(run_id).status == PipelineStatus.RUNNING


async def test_guide_regenerates_with_the_instruction(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("g")
        await pilot.press(*"Make every title a question")
        await pilot.press("enter")
        await until(
            pilot, lambda: engine.store.load(run_id).steps["angles"].attempt == 2, "attempt 2"
        )
        await until(pilot, lambda: candidates_shown(app), "the new candidates")
        step = engine.store.load(run_id).steps["angles"]
        assert "Make every title a question" in step.prompt
        assert len(step.ai_responses) == 4


async def open_merge(pilot) -> MergeScreen:
    """M on the step view: the merge view, once it has ticked both candidates."""
    await pilot.press("m")
    await until(pilot, lambda: isinstance(pilot.app.screen, MergeScreen), "merge view")
    merge = pilot.app.screen
    await until(pilot, lambda: len(merge.query_one("#sources").selected) == 2, "sources")
    return merge


async def test_merge_by_hand(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        merge = await open_merge(pilot)
        await pilot.press("ctrl+o")
        editor = merge.query_one("#merge-editor")
        assert editor.has_focus and "---" in editor.text
        editor.text = "My own angles, by hand."
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        step = engine.store.load(run_id).steps["angles"]
        assert step.output == "My own angles, by hand." and step.status == StepStatus.COMPLETED
        screen = step_screen(app)
        await until(
            pilot,
            lambda: (
                screen.merged_pane is not None
                and screen.merged_pane.shown == "My own angles, by hand."
            ),
            "the merged pane",
        )


async def test_a_failed_ai_merge_on_a_new_branch_leaves_the_view_on_that_branch(
    engine, scripted, built_on_angles
):
    run = await engine.start_run("tech-article", {"source_material": "notes"}, models=TWO)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await built_on_angles(run_id)
    scripted.script("scripted-a", fail="merge model down")
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(run_id)
        await until(pilot, lambda: candidates_shown(app), "the angles")
        await open_merge(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: notified(app, "merge model down"), "the failure")
        (branch,) = engine.store.children(run_id)
        await pilot.press("escape")
        await until(pilot, lambda: step_screen(app).run_id == branch, "the view on the branch")
        failed = engine.load(branch).steps["angles"].ai_responses[-1]
        assert failed.kind == "merge" and failed.status == ResponseStatus.FAILED


async def test_the_step_view_follows_changes_another_process_makes(engine, scripted):
    from writeit.engine import Engine

    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        elsewhere = Engine(engine.workspace)  # a CLI or the server on the same workspace
        await elsewhere.select(run_id, 1)
        await elsewhere.accept(run_id)
        screen = step_screen(app)
        await until(
            pilot, lambda: screen.run is not None and screen.run.current_step == "outline", "move"
        )
        assert notified(app, "Another WriteIt process changed this run")


async def test_fork_from_the_step_view_and_the_run_list(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("f")
        await until(pilot, lambda: notified(app, "not completed"), "fork refused before a choice")
        await pilot.press("1", "f")
        await until(pilot, lambda: engine.store.children(run_id) != [], "the fork")
        (child,) = engine.store.children(run_id)
        await until(pilot, lambda: step_screen(app).run_id == child, "the view on the fork")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunListScreen), "the run list")
        runs = app.screen
        await until(pilot, lambda: set(runs.summaries) == {run_id, child}, "both runs listed")


async def test_a_skippable_last_step_can_be_skipped(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine, models=["scripted-a"])
        await until(pilot, lambda: candidates_shown(app, 1), "angles")
        await pilot.press("k")
        await until(pilot, lambda: notified(app, "cannot be skipped"), "the refusal")
        for step in ("outline", "draft", "polish"):
            await pilot.press("1", "a")
            await until(pilot, lambda s=step: engine.load(run_id).current_step == s, step)
            await until(pilot, lambda: candidates_shown(app, 1), f"{step} candidates")
        await pilot.press("k")
        await until(
            pilot, lambda: engine.load(run_id).status == PipelineStatus.COMPLETED, "completion"
        )
        run = engine.store.load(run_id)
        assert run.steps["polish"].status == StepStatus.SKIPPED
        assert run.final_text == run.steps["draft"].output


async def test_keys_are_remapped_from_preferences_and_the_help_lists_them(engine, scripted):
    engine.preferences.keyboard_shortcuts = {"accept": "x", "nonsense": "y"}
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        assert notified(app, "nonsense")
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("1", "x")
        await until(pilot, lambda: engine.store.load(run_id).current_step == "outline", "accept")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(help_renderable(app.keymap, "Step view"))
        lines = console.export_text().splitlines()
        accept = next(line for line in lines if "Go on to the next step with the choice" in line)
        assert accept.split()[0] == "X"
        assert any("keyboard_shortcuts" in line for line in lines)
        await pilot.press("escape")
        assert isinstance(app.screen, StepScreen)


async def test_the_command_palette_offers_the_step_actions(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("1")
        await until(
            pilot, lambda: engine.store.load(run_id).steps["angles"].user_selection == 0, "pick"
        )
        await pilot.press("ctrl+p")
        await pilot.press(*"Go on to the next step")
        await until(
            pilot,
            lambda: (
                "Go on to the next step"
                in str(app.screen.query_one("CommandList").get_option_at_index(0).prompt)
            ),
            "the command",
        )
        await pilot.press("enter")
        await until(pilot, lambda: engine.store.load(run_id).current_step == "outline", "accept")


async def test_six_candidates_go_into_tabs(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        models = ["scripted-a", "scripted-b", "scripted-c", "scripted", "scripted-a", "scripted-b"]
        await open_new_run(pilot, engine, models=models)
        await until(pilot, lambda: candidates_shown(app, 6), "six candidates")
        screen = step_screen(app)
        assert screen.mode == "tabs"
        from textual.widgets import TabbedContent

        tabs = screen.query_one(TabbedContent)
        assert tabs.active == "tab-1"
        await pilot.press("right_square_bracket")
        assert tabs.active == "tab-2"
        await pilot.press("6")
        await until(
            pilot,
            lambda: engine.load(screen.run_id).current.user_selection is not None,
            "selection of the sixth",
        )
        chosen = engine.load(screen.run_id).current
        assert (
            chosen.ai_responses[chosen.user_selection].response_id
            == chosen.candidates[5].response_id
        )


async def test_pause_stops_the_streams_and_resume_keeps_the_columns(engine, scripted):
    def gated():
        gate = scripted.Gate(after_chunks=2)
        scripted.script("scripted-a", gate=gate, chunk_size=8)
        return gate

    gate = gated()
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        screen = step_screen(app)
        for attempt in range(2):  # a pause, a resume, a pause again
            if attempt:
                gate = gated()
                await pilot.press("u")
            await gate.wait_reached()
            await until(pilot, lambda: "1 of 2 writing" in notice(app), "writing")
            assert "s" in screen.active_bindings  # in the footer while something streams
            await pilot.press("s")
            await until(
                pilot, lambda: engine.store.load(run_id).status == PipelineStatus.PAUSED, "paused"
            )
            stopped = engine.store.load(run_id).steps["angles"].candidates[0]
            assert stopped.status == ResponseStatus.INTERRUPTED and stopped.raw_output
            await until(pilot, lambda: notice(app).startswith("‖ Paused"), "the paused notice")
            assert "s" not in screen.active_bindings
            assert len(screen.panes) == 2
        await pilot.press("s")  # nothing to pause now: says so
        await until(pilot, lambda: notified(app, "Nothing is generating"), "the reason")
        scripted.reset()
        await pilot.press("u")
        await until(
            pilot,
            lambda: (
                engine.store.load(run_id).steps["angles"].candidates[0].status
                == ResponseStatus.COMPLETED
            ),
            "the resumed candidate",
        )
        await until(pilot, lambda: candidates_shown(app, 2), "still two panes")
        step = engine.store.load(run_id).steps["angles"]
        assert len(step.ai_responses) == 4 and len(screen.panes) == 2  # three asks of a, one b


async def test_keys_that_cannot_act_say_why_and_the_palette_offers_real_candidates(
    engine, scripted
):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        for key, reason in (
            ("right_square_bracket", "Every candidate fits side by side"),
            ("t", "No failed or stopped candidate to retry"),
            ("u", "Nothing to resume"),
            ("5", "There is no candidate 5: this step has 2"),
            ("s", "Nothing is generating"),
        ):
            await pilot.press(key)
            await until(pilot, lambda r=reason: notified(app, r), reason)
        await pilot.press("ctrl+p")
        await pilot.press(*"Select candidate")
        palette = app.screen.query_one("CommandList")
        await until(pilot, lambda: palette.option_count >= 2, "the commands")
        await pilot.pause()
        offered = [str(palette.get_option_at_index(i).prompt) for i in range(palette.option_count)]
        assert any("Select candidate 2" in o for o in offered)
        assert not any(f"Select candidate {n}" in o for o in offered for n in range(3, 10))


async def test_a_remap_onto_a_key_in_use_is_refused_and_hints_follow_remaps(engine, scripted):
    engine.preferences.keyboard_shortcuts = {"merge": "r", "accept": "x", "feedback": "w"}
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        assert notified(app, "keyboard_shortcuts.merge = r is not used")
        assert notified(app, "R is already Regen (regenerate) in the step view")
        assert app.keymap == {"accept": "x", "feedback": "w"}
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        assert "merge with M, leave feedback with W, then X to go on" in notice(app)
        label = str(step_screen(app).query_one("#feedback-label").render())
        assert "W to write" in label
        await pilot.press("r")  # still Regenerate, not Merge
        await until(
            pilot, lambda: engine.store.load(run_id).steps["angles"].attempt == 2, "attempt 2"
        )
        assert not isinstance(app.screen, MergeScreen)


async def test_a_theme_chosen_in_the_palette_is_saved(engine, scripted):
    from writeit.workspaces import load_preferences

    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p", *"theme")
        palette = app.screen.query_one("CommandList")
        await until(pilot, lambda: palette.option_count >= 1, "the theme command")
        await pilot.press("enter")
        await until(
            pilot, lambda: "themes" in str(app.screen.query_one("Input").placeholder), "list"
        )
        await pilot.press(*"nord")
        await until(pilot, lambda: app.screen.query_one("CommandList").option_count >= 1, "nord")
        await pilot.press("enter")
        await until(pilot, lambda: app.theme == "nord", "the theme")
        await until(pilot, lambda: load_preferences().theme == "nord", "the saved preference")
        assert engine.preferences.theme == "nord"


async def test_copy_a_candidate_or_the_article_and_maximise_one(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        screen = step_screen(app)
        first, second = engine.load(run_id).steps["angles"].candidates
        await pilot.press("y")
        assert app.clipboard == first.raw_output
        await pilot.press("tab")  # the second pane
        await pilot.press("y")
        assert app.clipboard == second.raw_output
        await pilot.press("ctrl+y")
        await until(pilot, lambda: notified(app, "No article yet"), "nothing to copy")
        await pilot.press("2")
        await until(pilot, lambda: engine.load(run_id).current.output is not None, "the choice")
        await pilot.press("1")  # the clipboard keeps the chosen text, not the focused one
        await until(pilot, lambda: engine.load(run_id).current.user_selection == 0, "again")
        await pilot.press("ctrl+y")
        assert app.clipboard == engine.load(run_id).final_text == first.processed_content
        await pilot.press("z")
        assert screen.maximized is screen.panes[second.response_id]
        await pilot.press("z")
        assert screen.maximized is None


async def test_a_model_with_no_price_shows_price_unknown_not_zero(engine, scripted, openai_server):
    engine.preferences.pricing = {"scripted-a": {"input": 0.001, "output": 0.002}}
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_run(pilot, engine, models=["scripted-a", "oai-ok"])
        await until(pilot, lambda: candidates_shown(app), "candidates")
        a, b = step_screen(app).panes.values()
        assert "$0.00" in a.border_subtitle and "price unknown" not in a.border_subtitle
        assert "price unknown" in b.border_subtitle and "$" not in b.border_subtitle
        header = str(step_screen(app).query_one("#step-header").render())
        assert "+ unknown" in header


async def ai_merge_in_the_editor(pilot, scripted) -> tuple[str, MergeScreen]:
    """A new run's two candidates merged by a model, the merged text open in the editor."""
    app = pilot.app
    scripted.script("scripted-a", replies=["angle A", "merged AB"])
    scripted.script("scripted-b", replies=["angle B"])
    run_id = await open_new_run(pilot, app.engine)
    await until(pilot, lambda: candidates_shown(app), "candidates")
    merge = await open_merge(pilot)
    await pilot.press("ctrl+s")
    await until(pilot, lambda: merge.phase == "edit", "the AI merge")
    return run_id, merge


async def test_the_step_view_says_how_a_merged_text_came_about(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id, merge = await ai_merge_in_the_editor(pilot, scripted)
        editor = merge.query_one("#merge-editor")
        editor.text = "merged AB, tightened by hand"
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        decision = engine.load(run_id).steps["angles"].decision
        assert decision.how == "merged" and decision.edited
        how = "merged by scripted-a from candidates 1 and 2, then edited by hand"
        await until(pilot, lambda: how in notice(app), "the notice")
        screen = step_screen(app)
        await until(pilot, lambda: screen.merged_pane is not None, "the merged pane")
        assert screen.merged_pane.border_title == "merged by scripted-a, edited"
        assert how in str(screen.merged_pane.query_one(".candidate-status").render())


async def test_a_long_failure_in_a_third_of_120_columns_is_wrapped_whole(engine, scripted):
    scripted.script("scripted-b", fail=LONG_FAILURE)
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_run(pilot, engine, models=[*TWO, "scripted-c"])
        await until(pilot, lambda: candidates_shown(app, 3), "candidates")
        failed = list(step_screen(app).panes.values())[1]
        status = failed.query_one(".candidate-status")
        await pilot.pause()
        width = status.content_region.width
        needed = status.get_content_height(status.container_size, app.size, width)
        assert width < 40 and needed > 4
        assert status.content_region.height >= needed  # every line on screen


async def test_after_back_and_a_branch_switch_the_header_bar_and_panes_agree(engine, scripted):
    app = WriteItApp(engine=engine)

    def agree(run_id: str, step: str) -> bool:
        screen = step_screen(app)
        if screen.run is None or screen.run.pipeline_run_id != run_id or screen._stale:
            return False
        header = screen.query_one("#step-header").render()
        current = [
            header.plain[s.start : s.end] for s in header.spans if "underline" in str(s.style)
        ]
        later = [
            header.plain[s.start : s.end] for s in header.spans if str(s.style).startswith("yellow")
        ]
        ids = [r.response_id for r in engine.load(run_id).steps[step].candidates]
        return (
            f"Step {screen.run.step_index + 1}/4: {step}" in header.plain
            and current == [f"▸ ✓ {step}"]
            and not later  # no later step looks like the one being worked on
            and list(screen.panes) == ids
        )

    async with app.run_test(size=SIZE) as pilot:
        root = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "angles")
        await pilot.press("1", "a")
        await until(pilot, lambda: engine.load(root).current_step == "outline", "outline")
        await until(pilot, lambda: candidates_shown(app), "outline candidates")
        await pilot.press("b")
        await until(pilot, lambda: agree(root, "angles"), "the view back at angles")
        await pilot.press("2")
        await until(pilot, lambda: engine.store.children(root), "a branch")
        (branch,) = engine.store.children(root)
        await until(pilot, lambda: agree(branch, "angles"), "the view on the branch")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "history")
        history = app.screen
        await until(pilot, lambda: history.family is not None, "the tree")
        tree = history.query_one("#family")
        node = next(n for n in tree_nodes(tree.root) if n.data and n.data.run_id == root)
        tree.move_cursor(node)
        await pilot.press("o")
        await until(pilot, lambda: agree(root, "angles"), "the view on the first run")


# --- typed text survives: drafts ------------------------------------------------------------


def feedback_box(app):
    return step_screen(app).query_one("#feedback")


async def test_feedback_being_typed_is_kept_through_ctrl_q_and_comes_back(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("c", *"Lead with the numbers")
        # kept a moment after the typing stops, while the box still has the focus (a
        # crash or a closed terminal now loses nothing)
        await until(
            pilot,
            lambda: engine.drafts(run_id) == {"feedback:angles": "Lead with the numbers"},
            "the draft",
        )
        assert feedback_box(app).has_focus
        assert engine.store.load(run_id).steps["angles"].user_feedback is None  # not given
        await pilot.press(*", please")
        await pilot.press("ctrl+q")  # at once, before the idle delay
    assert engine.drafts(run_id) == {"feedback:angles": "Lead with the numbers, please"}
    assert f"writeit resume {run_id[:8]}" in app.farewell
    assert "Unsent feedback for angles in run" in app.farewell and "kept as a draft" in app.farewell

    again = WriteItApp(engine=engine, run_id=run_id)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(again.screen, StepScreen), "the step view")
        await until(
            pilot, lambda: feedback_box(again).text == "Lead with the numbers, please", "restored"
        )
        await until(
            pilot,
            lambda: notified(again, "unsent feedback for angles is back in the box"),
            "the note that the draft is back",
        )
        await pilot.press("c", "escape")  # given: the draft goes
        await until(
            pilot,
            lambda: (
                engine.store.load(run_id).steps["angles"].user_feedback
                == "Lead with the numbers, please"
                and engine.drafts(run_id) == {}
            ),
            "the feedback given and its draft dropped",
        )
        await pilot.press("q")
    assert "Unsent" not in again.farewell


async def test_feedback_left_with_esc_just_before_q_reaches_the_run(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("c", *"Shorter, please", "escape", "q")
    assert engine.store.load(run_id).steps["angles"].user_feedback == "Shorter, please"
    assert engine.drafts(run_id) == {} and "Unsent" not in app.farewell


async def test_merge_keys_that_cannot_act_yet_say_why(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MergeScreen), "merge view")
        await pilot.press("ctrl+f")
        await until(pilot, lambda: notified(app, "Nothing to use yet: Ctrl+S merges"), "why")


async def test_feedback_that_makes_a_branch_leaves_no_draft_behind(
    engine, scripted, built_on_angles
):
    run = await engine.start_run("tech-article", {"source_material": "notes"}, models=TWO)
    root = run.pipeline_run_id
    await engine.execute_step(root)
    await built_on_angles(root)  # angles chosen and built on: a change here branches
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(root)
        await until(pilot, lambda: candidates_shown(app), "the angles")
        await pilot.press("c", *"Lead with the numbers", "escape")
        await until(pilot, lambda: engine.store.children(root), "the branch")
        (branch,) = engine.store.children(root)
        await until(pilot, lambda: step_screen(app)._box == (branch, "angles"), "the box moved")
        await pilot.press("q")
    assert engine.load(branch).steps["angles"].user_feedback == "Lead with the numbers"
    assert engine.drafts(root) == {} and engine.drafts(branch) == {}
    assert "Unsent" not in app.farewell and f"writeit resume {branch[:8]}" in app.farewell


async def test_a_guide_instruction_left_unsent_comes_back_and_goes_once_used(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("g", *"Make every title a question", "ctrl+q")  # the dialog open
    assert engine.drafts(run_id) == {"guide:angles": "Make every title a question"}
    assert "Unsent a guide instruction for angles" in app.farewell

    again = WriteItApp(engine=engine, run_id=run_id)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: candidates_shown(again), "candidates")
        await pilot.press("g")
        await until(pilot, lambda: again.screen.query("#answer"), "the dialog")
        assert again.screen.query_one("#answer").value == "Make every title a question"
        await pilot.press(*", short", "escape")  # added to the restored text; kept on leaving
        await until(
            pilot,
            lambda: engine.drafts(run_id) == {"guide:angles": "Make every title a question, short"},
            "the draft kept on leaving the dialog",
        )
        await pilot.press("g")
        await until(pilot, lambda: again.screen.query("#answer"), "the dialog again")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                engine.store.load(run_id).steps["angles"].guidance
                == "Make every title a question, short"
            ),
            "the guided attempt",
        )
        await until(pilot, lambda: engine.drafts(run_id) == {}, "the draft dropped")
        # the candidates show the instruction they were asked with
        await until(pilot, lambda: candidates_shown(again), "the new candidates")
        for pane in step_screen(again).panes.values():
            status = str(pane.query_one(".candidate-status").render())
            assert "Guide: Make every title a question, short" in status


async def test_a_hand_merge_being_typed_survives_quitting_and_is_dropped_once_used(
    engine, scripted
):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        merge = await open_merge(pilot)
        await pilot.press("ctrl+o")
        editor = merge.query_one("#merge-editor")
        editor.text = "My own angles"
        await pilot.press("end", *", by hand.")  # typed into the focused editor
        await pilot.press("ctrl+q")
    text = "My own angles, by hand."
    assert engine.drafts(run_id) == {"merge:angles": text}
    assert "Unsent a merge text for angles" in app.farewell

    again = WriteItApp(engine=engine, run_id=run_id)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: candidates_shown(again), "candidates")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(again.screen, MergeScreen), "merge view")
        merge = again.screen
        await until(pilot, lambda: merge.phase == "edit", "the editor, restored")
        assert merge.query_one("#merge-editor").text == text
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(again.screen, StepScreen), "the step view")
        step = engine.store.load(run_id).steps["angles"]
        assert step.output == text and step.decision.how == "written"
        await until(pilot, lambda: engine.drafts(run_id) == {}, "the draft dropped")


async def test_an_unsent_edit_of_an_ai_merge_is_recorded_as_such_once_used(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id, merge = await ai_merge_in_the_editor(pilot, scripted)
        await pilot.press("end", *", tightened")
        await pilot.press("ctrl+q")
    assert engine.drafts(run_id) == {"merge:angles": "merged AB, tightened"}

    again = WriteItApp(engine=engine, run_id=run_id)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(again.screen, StepScreen), "the step view")
        await until(pilot, lambda: step_screen(again).merged_pane is not None, "the merge")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(again.screen, MergeScreen), "merge view")
        merge = again.screen
        await until(pilot, lambda: merge.phase == "edit", "the editor, restored")
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(again.screen, StepScreen), "the step view")
        step = engine.store.load(run_id).steps["angles"]
        assert step.output == "merged AB, tightened"
        assert step.decision.how == "merged" and step.decision.edited
        await until(pilot, lambda: engine.drafts(run_id) == {}, "the draft dropped")


async def test_no_drafts_when_auto_save_is_off(engine, scripted):
    engine.preferences.auto_save_enabled = False
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("c", *"Not kept")
        await pilot.press("ctrl+q")
    assert engine.drafts(run_id) == {}
    assert "Unsent" not in app.farewell and f"writeit resume {run_id[:8]}" in app.farewell


# --- the run list and the input form ---------------------------------------------------------


async def test_input_form_validates_inline_and_starts_nothing(engine, scripted):
    app = WriteItApp(engine=engine, pipeline="tech-article", models=TWO)
    async with app.run_test(size=SIZE) as pilot:
        form = app.screen
        assert isinstance(form, InputFormScreen)
        assert form.query_one("#input-target_audience").value == "technical professionals"
        await pilot.press("ctrl+s")
        error = form.query_one("#error-source_material")
        assert "required" in str(error.render()) and error.display
        form.query_one("#input-source_material").text = "Some notes"
        form.query_one("#models").value = "no-such-model"
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: "unknown model" in str(form.query_one("#error-models").render()),
            "the model error",
        )
        assert engine.store.recent() == []
        form.query_one("#models").value = "scripted-a"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        run = engine.store.load(step_screen(app).run_id)
        assert run.models == ["scripted-a"] and run.style_primer == "tech-journalist"


async def test_new_run_from_the_run_list_and_delete_with_confirmation(engine, scripted):
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        runs = app.screen
        assert isinstance(runs, RunListScreen)
        assert runs.query_one("#empty").display
        await pilot.press("n")
        await until(pilot, lambda: app.screen.query("OptionList"), "the pipelines")
        options = app.screen.query_one("OptionList")
        await until(pilot, lambda: options.option_count >= 3, "three pipelines")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InputFormScreen), "the form")
        assert app.screen.pipeline.name == "tech-article"  # the default pipeline comes first
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunListScreen), "back")
        run = await engine.start_run("tech-article", {"source_material": "x"}, models=TWO)
        await runs.reload()
        assert runs.selected_id() == run.pipeline_run_id
        await pilot.press("d")
        await pilot.press("y")
        await until(pilot, lambda: engine.store.recent() == [], "the deletion")
        await until(pilot, lambda: runs.summaries == {}, "the list to empty")


async def test_models_from_the_command_line_hold_for_new_runs_of_the_session(engine, scripted):
    app = WriteItApp(engine=engine, models=["scripted-b", "scripted-c"])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunListScreen), "the run list")
        await pilot.press("n")
        await until(pilot, lambda: app.screen.query("OptionList"), "the pipelines")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InputFormScreen), "the form")
        assert app.screen.query_one("#models").value == "scripted-b, scripted-c"


async def test_a_workspace_that_cannot_open_says_why(isolated_env):
    app = WriteItApp(workspace="no-such-workspace")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = str(app.screen.query_one(".dialog-detail").render())
        assert "no workspace 'no-such-workspace'" in text
        await pilot.press("q")


# --- the Markdown view of a pane -------------------------------------------------------------


def _long_answer(paragraphs: int) -> str:
    return "# The title\n\n" + "\n\n".join(
        f"Paragraph {i}: " + " ".join(f"w{i}.{j}" for j in range(30)) for i in range(paragraphs)
    )


async def test_a_pane_follows_a_long_stream_can_scroll_back_and_shows_the_whole_markdown():
    from textual.app import App, ComposeResult

    from writeit.tui.widgets.markdown_text import MarkdownView

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield MarkdownView()

    def visible(view: MarkdownView) -> list[str]:
        return [view.render_line(y).text.strip() for y in range(view.size.height)]

    app = Host()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.query_one(MarkdownView)
        text = _long_answer(200)
        layouts = view._layout_updates
        for cut in (5_000, 20_000, len(text)):  # streaming: the lines that fit, from the end
            view.show(text[:cut], live=True)
            await pilot.pause()
            assert any(text[:cut].split()[-1] in line for line in visible(view)[-3:])
        assert view._layout_updates == layouts  # repaints only: the view keeps its size
        assert view.virtual_size.height == 0  # nothing to scroll while it follows

        # scrolling back while it streams: all of it so far, held still while one reads
        view.show(text[:20_000], live=True)
        view.focus()
        await pilot.press("pageup")
        assert view.reviewing and view.on_screen == text[:20_000]
        assert view.virtual_size.height > 100
        await until(pilot, lambda: 0 < view.scroll_y < view.max_scroll_y, "a page back")
        assert "Scrolled back" in visible(view)[-1]
        view.show(text[:30_000], live=True)
        assert view.on_screen == text[:20_000]
        await pilot.press("end")  # follows the stream again
        assert not view.reviewing and view.on_screen == text[:30_000]
        await pilot.pause()
        assert any(text[:30_000].split()[-1] in line for line in visible(view)[-3:])

        view.show(text)  # done: the whole document, as Markdown, from the top
        await pilot.pause()
        assert view.scroll_y == 0
        assert visible(view)[0] == "The title"  # a heading, not "# The title"
        assert view.virtual_size.height > 200
        await pilot.press("end")
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y > 0, "the end")
        assert any("Paragraph 199:" in line for line in visible(view))
        await pilot.press("home")
        await until(pilot, lambda: view.scroll_y == 0, "the top")


# --- diffs ----------------------------------------------------------------------------------


def changed_words(screen: DiffScreen) -> list[tuple[str, str]]:
    assert screen.changes is not None
    return [(c.op, c.text) for c in screen.changes if c.op != "equal"]


def shown_diff(screen: DiffScreen) -> str:
    return screen.query_one("#diff-text").content.plain


async def diff_open(pilot) -> DiffScreen:
    app = pilot.app
    await until(
        pilot,
        lambda: isinstance(app.screen, DiffScreen) and app.screen.changes is not None,
        "the diff",
    )
    return app.screen


async def test_d_shows_the_words_the_focused_candidate_and_the_next_differ_in(engine, scripted):
    script_replies(scripted, [ANGLES_A], [ANGLES_A_REVISED])
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("d")
        screen = await diff_open(pilot)
        assert changed_words(screen) == [
            ("delete", "Six"),
            ("insert", "Seven"),
            ("delete", "small"),
            ("insert", "tiny"),
        ]
        shown = shown_diff(screen)
        assert "## 1. [-Six-]{+Seven+} weeks from cron to Temporal" in shown
        assert "a [-small-]{+tiny+} team can move" in shown
        legend = str(screen.query_one("#diff-legend").content)
        assert "[-candidate 1 (scripted-a)-]" in legend and "{+candidate 2 (scripted-b)+}" in legend
        assert "2 words added, 2 removed" in str(screen.query_one("#diff-title").content)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "back to the step")
        await pilot.press("tab", "d")  # the second pane: against the next, the first
        screen = await diff_open(pilot)
        assert changed_words(screen)[:2] == [("delete", "Seven"), ("insert", "Six")]


async def test_d_on_a_single_candidate_compares_its_earlier_attempt(engine, scripted):
    scripted.script("scripted-a", replies=[ANGLES_A, ANGLES_A_REVISED], chunk_size=40)
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await open_new_run(pilot, engine, models=["scripted-a"])
        await until(pilot, lambda: candidates_shown(app, 1), "the candidate")
        await pilot.press("d")
        await until(pilot, lambda: notified(app, "no earlier attempt"), "nothing to compare")
        assert isinstance(app.screen, StepScreen)
        await pilot.press("r")
        await until(pilot, lambda: engine.load(run_id).current.attempt == 2, "attempt 2")
        await until(pilot, lambda: candidates_shown(app, 1), "the new candidate")
        await pilot.press("d")
        screen = await diff_open(pilot)
        assert changed_words(screen)[:2] == [("delete", "Six"), ("insert", "Seven")]
        assert "[-attempt 1 (scripted-a)-]" in str(screen.query_one("#diff-legend").content)


async def test_the_merge_view_diffs_the_two_ticked_candidates(engine, scripted):
    script_replies(scripted, [ANGLES_A], [ANGLES_A_REVISED])
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_run(pilot, engine)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MergeScreen), "merge view")
        merge = app.screen
        sources = merge.query_one("#sources")
        await until(pilot, lambda: len(sources.selected) == 2, "sources")
        await pilot.press("ctrl+t")
        screen = await diff_open(pilot)
        assert changed_words(screen) == [
            ("delete", "Six"),
            ("insert", "Seven"),
            ("delete", "small"),
            ("insert", "tiny"),
        ]
        assert "merging angles" in str(screen.query_one("#diff-title").content)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is merge, "back to the merge")
        sources.deselect(sources.selected[0])
        await pilot.press("ctrl+t")
        await until(pilot, lambda: notified(app, "Tick two candidates"), "the refusal")
        assert app.screen is merge


async def test_the_history_diffs_a_branch_against_its_parent(engine, fork_with_a_new_polish):
    parent, child, _ = await fork_with_a_new_polish()
    app = WriteItApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(child)
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "history")
        history = app.screen
        await until(pilot, lambda: history.family is not None, "the tree")
        await pilot.press("d")
        screen = await diff_open(pilot)
        assert changed_words(screen) == [
            ("delete", "Six"),
            ("insert", "Seven"),
            ("delete", "nightly "),
        ]
        assert shown_diff(screen) == (
            "# [-Six-]{+Seven+} weeks to Temporal\n\nWe moved 140 [-nightly-] jobs; failures "
            "fell to 2 a month."
        )
        legend = str(screen.query_one("#diff-legend").content)
        assert f"[-run {parent[:8]} (parent)-]" in legend and f"{{+branch {child[:8]}+}}" in legend
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is history, "back to the history")
        tree = history.query_one("Tree")
        tree.move_cursor(history._run_nodes[parent])
        await pilot.press("d")
        await until(pilot, lambda: notified(app, "first of its family"), "no parent")


# --- snapshots (pytest-textual-snapshot; update with --snapshot-update, then look) ---------

ANGLES_A = """## 1. Six weeks from cron to Temporal

**Hook:** 140 nightly jobs moved in six weeks, and failures fell from 12 a month to 2.

**Core claim:** a small team can move a whole batch estate if it ports the retries first.

## 2. What the failures were really about

**Hook:** most of our 12 monthly failures were retries nobody could see.

Strongest: angle 1, because the numbers carry it.
"""

ANGLES_B = """## 1. The cron jobs nobody owned

**Hook:** a third of the jobs wrote to tables nobody read.

## 2. Retries as a product feature

**Hook:** we replaced 47 hand-rolled retry loops with one policy.

Strongest: angle 2, for an audience of platform engineers.
"""

ANGLES_A_REVISED = ANGLES_A.replace("Six weeks", "Seven weeks").replace("small", "tiny")

OUTLINE_A = """# Six weeks from cron to Temporal

1. **The estate:** 140 jobs, two VMs, start times as dependencies
2. **Why Temporal:** retries, visibility, ownership
3. **The migration:** two jobs a day, retries first
4. **Results:** 12 failures a month down to 2
"""

OUTLINE_B = """# Cron to Temporal, by the numbers

- Before: 140 jobs, 12 failures a month
- During: six weeks, two engineers
- After: 2 failures a month, alerts instead of missing rows
"""

MERGED = """## Six weeks from cron to Temporal, and the retries we could not see

**Hook:** 140 nightly jobs moved in six weeks; failures fell from 12 a month to 2,
because the retries finally became visible.
"""


def script_replies(scripted, a: list[str], b: list[str], c: list[str] | None = None) -> None:
    scripted.script("scripted-a", replies=a, chunk_size=40)
    scripted.script("scripted-b", replies=b, chunk_size=40)
    if c is not None:
        scripted.script("scripted-c", replies=c, chunk_size=40)


async def settle_on_candidates(pilot, count: int = 2, models=TWO) -> str:
    run_id = await open_new_run(pilot, pilot.app.engine, models=models, source=SNAP_SOURCE)
    await until(pilot, lambda: candidates_shown(pilot.app, count), "candidates")
    return run_id


async def quiet(pilot) -> None:
    """No toasts and no blinking cursors in the picture."""
    await pilot.pause()
    pilot.app.clear_notifications()
    for widget in pilot.app.screen.query("TextArea, Input"):
        widget.cursor_blink = False
    await pilot.pause()


SNAP_SOURCE = "Our team moved 140 nightly cron jobs to Temporal in six weeks."
LONG_FAILURE = (
    "the provider refused the request because the organisation has used its whole "
    "monthly quota; raise the limit in the billing settings or wait for the next cycle"
)


def underline_settled(app) -> bool:
    """The active tab's underline sits under it (it moves after the tab's layout)."""
    from textual.widgets import Tabs
    from textual.widgets._tabs import Underline

    tabs = app.screen.query_one(Tabs)
    active = tabs.active_tab
    if active is None:
        return False
    start, end = active.virtual_region.shrink(active.styles.gutter).column_span
    underline = tabs.query_one(Underline)
    return end > start and (underline.highlight_start, underline.highlight_end) == (start, end)


def still(app: WriteItApp) -> WriteItApp:
    """No animations (the tab underline slides), so every capture is the same."""
    app.animation_level = "none"
    return app


def test_snapshot_run_list(snap_compare, engine, scripted, tui_stable):
    async def before(pilot):
        app = pilot.app
        first = await engine.start_run("tech-article", {"source_material": SNAP_SOURCE}, models=TWO)
        await autopilot.drive(engine, first.pipeline_run_id, "first")
        await engine.fork(first.pipeline_run_id, "outline")
        second = await engine.start_run(
            "blog-post", {"topic": "Why our team writes postmortems as stories"}, models=TWO
        )
        await engine.execute_step(second.pipeline_run_id)
        await app.screen.reload()
        app.screen.query_one("DataTable").move_cursor(row=0)  # a reload keeps the selection
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)


def test_snapshot_input_form(snap_compare, engine, scripted, tui_stable):
    app = WriteItApp(
        engine=engine,
        pipeline="tech-article",
        inputs={"source_material": SNAP_SOURCE + "\nFailures dropped from 12 a month to 2."},
        models=TWO,
    )

    async def before(pilot):
        form = pilot.app.screen
        await until(pilot, lambda: str(form.query_one("#models-note").render()).strip(), "note")
        await quiet(pilot)

    assert snap_compare(still(app), terminal_size=SIZE, run_before=before)


def test_snapshot_step_view(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A], [ANGLES_B])

    async def before(pilot):
        await settle_on_candidates(pilot)
        await pilot.press("2")
        await until(
            pilot,
            lambda: (
                "selected"
                in str(
                    pilot.app.screen.panes
                    and list(pilot.app.screen.panes.values())[1]
                    .query_one(".candidate-status")
                    .render()
                )
            ),
            "the choice",
        )
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)


def test_snapshot_step_view_80x24_in_tabs(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A], [ANGLES_B], [OUTLINE_B])
    three = ["scripted-a", "scripted-b", "scripted-c"]

    async def before(pilot):
        await settle_on_candidates(pilot, 3, models=three)
        assert pilot.app.screen.mode == "tabs"
        await until(pilot, lambda: underline_settled(pilot.app), "the tab underline")
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=(80, 24), run_before=before)


def test_snapshot_step_view_a_failure_in_three_columns(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A], [ANGLES_B])
    scripted.script("scripted-c", fail=LONG_FAILURE)
    three = ["scripted-a", "scripted-b", "scripted-c"]

    async def before(pilot):
        await settle_on_candidates(pilot, 3, models=three)
        assert pilot.app.screen.mode == "side"
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)


def test_snapshot_merge_view(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A, MERGED], [ANGLES_B])

    async def before(pilot):
        await settle_on_candidates(pilot)
        merge = await open_merge(pilot)
        merge.query_one("#instruction").value = "Angle 1 of A with the retries of B"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: merge.phase == "edit", "the merge")
        await until(pilot, lambda: merge.query_one(CandidatePane).shown == MERGED.strip(), "text")
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)


def test_snapshot_history_tree(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A, OUTLINE_A], [ANGLES_B, OUTLINE_B])

    async def before(pilot):
        app = pilot.app
        root = await settle_on_candidates(pilot)
        await pilot.press("1", "a")
        await until(pilot, lambda: engine.load(root).current_step == "outline", "outline")
        await until(pilot, lambda: candidates_shown(app), "outline candidates")
        await pilot.press("1", "b")
        await until(pilot, lambda: engine.load(root).current_step == "angles", "rewind")
        await until(pilot, lambda: candidates_shown(app), "angles again")
        await pilot.press("2")
        await until(pilot, lambda: engine.store.children(root), "the branch")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "history")
        await until(pilot, lambda: app.screen.family is not None, "the tree")
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)


def test_snapshot_export_dialog(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A], [ANGLES_B])

    async def before(pilot):
        run_id = await settle_on_candidates(pilot)
        await pilot.press("1")
        await until(pilot, lambda: engine.load(run_id).current.user_selection == 0, "the choice")
        await quiet(pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, ExportDialog), "the dialog")
        await until(pilot, lambda: pilot.app.screen.run is not None, "the run")
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)


def test_snapshot_help(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A], [ANGLES_B])

    async def before(pilot):
        await settle_on_candidates(pilot)
        await pilot.press("question_mark")
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)


def test_snapshot_diff_view(snap_compare, engine, scripted, tui_stable):
    script_replies(scripted, [ANGLES_A], [ANGLES_A_REVISED])

    async def before(pilot):
        await settle_on_candidates(pilot)
        await pilot.press("d")
        await diff_open(pilot)
        await quiet(pilot)

    assert snap_compare(still(WriteItApp(engine=engine)), terminal_size=SIZE, run_before=before)
