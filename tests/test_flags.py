"""Style flags on every response: stored with its completion, shown everywhere."""

from __future__ import annotations

import json

from textual.app import App, ComposeResult
from writeit_cli import run as writeit

from writeit import events as ev
from writeit import export
from writeit.models import AIResponse, Flag, ResponseStatus
from writeit.tui.widgets.candidate import CandidatePane

DELVING = "Let us delve into the outage. We delve because the retry loop hid it. " * 3


async def flagged_run(engine, source, scripted) -> str:
    scripted.script("scripted-a", replies=[DELVING])
    run = await engine.start_run(
        "tech-article",
        {"source_material": source},
        style="conversational-blog",
        models=["scripted-a", "scripted-b"],
    )
    await engine.execute_step(run.pipeline_run_id)
    return run.pipeline_run_id


async def test_a_candidate_using_an_avoid_term_is_stored_with_the_flag(engine, source, scripted):
    run_id = await flagged_run(engine, source, scripted)
    first, second = engine.store.load(run_id).steps["angles"].candidates
    (delve,) = [f for f in first.flags if f.kind == "avoid"]
    assert (delve.detail, delve.count) == ("delve", 6)
    assert delve.positions == [
        DELVING.index("delve"),
        DELVING.index("delve", 10),
        *delve.positions[2:],
    ]
    assert not [f for f in second.flags if f.kind == "avoid"]


async def test_an_old_response_completed_without_flags_still_folds(engine, source, scripted):
    run_id = await flagged_run(engine, source, scripted)
    old = []
    for event in engine.store.events(run_id):
        if event.type == ev.EventType.RESPONSE_COMPLETED:
            data = {k: v for k, v in event.data.items() if k != "flags"}
            event = event.model_copy(update={"data": data})
        old.append(event)
    run = ev.fold(old)
    assert all(c.flags == [] for c in run.steps["angles"].candidates)
    assert run.steps["angles"].candidates[0].status == ResponseStatus.COMPLETED


async def test_exports_carry_the_flags(engine, source, scripted):
    run_id = await flagged_run(engine, source, scripted)
    run = engine.load(run_id)
    doc = json.loads(export.render(run, "json"))
    flags = doc["history"][0]["responses"][0]["flags"]
    assert {"kind": "avoid", "detail": "delve", "count": 6}.items() <= flags[0].items()
    markdown = export.render(run, "md")
    assert 'Style flags: scripted-a: avoid "delve" ×6' in markdown


class OnePane(App):
    def compose(self) -> ComposeResult:
        yield CandidatePane(1, None)


async def test_the_candidate_pane_title_shows_the_flag_count():
    flags = [Flag(kind="avoid", detail="delve", count=2, positions=[0, 9])]
    flags.append(Flag(kind="length", detail="too short: 9 words, target ~300"))
    response = AIResponse(model_name="m", status=ResponseStatus.COMPLETED, flags=flags)
    async with OnePane().run_test() as pilot:
        pane = pilot.app.query_one(CandidatePane)
        pane.set_response(response, selected=False)
        await pilot.pause()
        assert pane.border_title == "1 · m · ⚑ 2"
        assert 'avoid "delve" ×2' in str(pane.query_one(".candidate-status").render())
        pane.set_response(response.model_copy(update={"flags": []}), selected=False)
        assert pane.border_title == "1 · m"


async def test_show_lists_a_responses_flags(engine, source, scripted):
    run_id = await flagged_run(engine, source, scripted)
    shown = writeit("show", run_id[:8])
    flagged = [line for line in shown.stdout.splitlines() if "⚑" in line]
    assert flagged and 'avoid "delve" ×6' in flagged[0]


async def test_the_pane_highlights_the_avoid_terms_in_the_text():
    from writeit.tui.widgets.markdown_text import MARK, MarkdownView

    text = "We **delve** into it.\n\nThen we delve again, and Delve once more."
    flags = [Flag(kind="avoid", detail="delve", count=3)]
    response = AIResponse(model_name="m", status=ResponseStatus.COMPLETED, flags=flags)
    async with OnePane().run_test(size=(60, 12)) as pilot:
        pane = pilot.app.query_one(CandidatePane)
        pane.set_response(response, selected=False)
        pane.show_text(text)
        await pilot.pause()
        view = pane.query_one(MarkdownView)
        lines = [view.render_line(y) for y in range(view.size.height)]
        marked = [
            segment.text
            for line in lines
            for segment in line
            if segment.style and segment.style.bgcolor == MARK.bgcolor
        ]
        assert marked == ["delve", "delve", "Delve"]
        # without the flag, the same text is plain
        pane.set_response(response.model_copy(update={"flags": []}), selected=False)
        pane.show_text(text + " ")
        await pilot.pause()
        lines = [view.render_line(y) for y in range(view.size.height)]
        assert not [
            s for line in lines for s in line if s.style and s.style.bgcolor == MARK.bgcolor
        ]
