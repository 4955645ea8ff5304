"""The step view's candidates: one pane per response, side by side when they fit,
in tabs when they do not, plus the merged text when a merge was chosen.

`sync()` follows the run's state (rebuilding only when the set of panes or the
layout changes); `flush()` brings streaming text up to date, at most once per frame
and per `streaming_buffer_size`.
"""

from __future__ import annotations

import time

from textual.containers import Container, Horizontal
from textual.widgets import Static, TabbedContent, TabPane

from writeit.models import AIResponse, PipelineRun, ResponseStatus, StepState
from writeit.tui import format as fmt
from writeit.tui.widgets.candidate import CandidatePane
from writeit.tui.widgets.markdown_text import TAIL_CHARS

MIN_PANE_WIDTH = 36  # narrower than this, candidates go into tabs
MAX_WAIT = 0.1  # seconds a streaming pane may hold back text below the buffer size

TAB_MARK = {
    ResponseStatus.STREAMING: " ●",
    ResponseStatus.FAILED: " ✗",
    ResponseStatus.INTERRUPTED: " ‖",
}


def tab_label(number: int, response: AIResponse, chosen: bool, hidden: bool = False) -> str:
    """`n model` (`Candidate n` on a blind step) and a mark of constant width, so the tab
    underline stays in place (Textual does not move it when a label changes length)."""
    mark = TAB_MARK.get(response.status, " ✓" if chosen else "  ")
    return f"Candidate {number}{mark}" if hidden else f"{number} {response.model_name}{mark}"


def guided(response: AIResponse, step: StepState) -> str:
    """The guide instruction a candidate was asked with (G), as its pane shows it. A
    candidate retried in its place was asked the same prompt: the step's guidance."""
    instruction = response.instruction or step.guidance
    return f"Guide: {fmt.one_line(instruction, 300)}" if instruction else ""


def selected_id(run: PipelineRun) -> str | None:
    step = run.current
    if step.user_selection is None:
        return None
    return step.ai_responses[step.user_selection].response_id


def merged_text(run: PipelineRun) -> str | None:
    """The step's merged text when a merge (not a single candidate) is its choice."""
    step = run.current
    if step.user_selection is None and step.merged_content is not None:
        return step.merged_content
    return None


class CandidateBoard(Container):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.panes: dict[str, CandidatePane] = {}
        self.merged_pane: CandidatePane | None = None
        self.mode = "side"
        self._layout: tuple = ()
        self._flushed_at: dict[str, float] = {}
        self._run: PipelineRun | None = None
        self.rebuilding = False  # panes are being removed and mounted: no flush
        self.prices: fmt.Prices = {}  # set by the screen: which models have a known price

    # --- following the run -------------------------------------------------------------

    async def sync(self, run: PipelineRun, width: int) -> bool:
        """Show `run`'s current step; True when the panes were rebuilt. The panes are
        `step.candidates`, in place: a retried or resumed candidate takes its column."""
        self._run = run
        step = run.current
        candidates = step.candidates
        chosen = selected_id(run)
        merged = merged_text(run)
        count = len(candidates) + (1 if merged is not None else 0)
        mode = "side" if count * MIN_PANE_WIDTH <= max(width, MIN_PANE_WIDTH) else "tabs"
        layout = (
            run.pipeline_run_id,
            run.current_step,
            tuple(r.response_id for r in candidates),
            merged is not None,
            mode,
        )
        rebuilt = layout != self._layout
        if rebuilt:
            await self._rebuild(candidates, merged is not None, mode, step.hidden)
            self._layout = layout
        for number, response in enumerate(candidates, 1):
            is_chosen = response.response_id == chosen
            self.panes[response.response_id].set_response(
                response,
                is_chosen,
                priced=fmt.priced(response, self.prices),
                note=guided(response, step),
                hidden=step.hidden,
            )
            self._label_tab(number, response, is_chosen, step.hidden)
        if self.merged_pane is not None:
            self._label_merged(step)
        return rebuilt

    def _label_merged(self, step: StepState) -> None:
        """The merged pane says how its text came about, and from which candidates."""
        pane = self.merged_pane
        assert pane is not None
        how = fmt.provenance(step)
        decision = step.decision
        pane.selected = True
        pane.label = how.partition(" from ")[0] + (
            ", edited" if decision and decision.edited else ""
        )
        instruction = decision.instruction if decision else None
        lines = [f"✓ chosen: {how}"]
        if instruction:
            lines.append(f"Instruction: {fmt.one_line(instruction, 200)}")
        pane.note = "\n".join(lines)
        pane.update_meta()

    async def _rebuild(
        self, candidates: list[AIResponse], merged: bool, mode: str, hidden: bool
    ) -> None:
        self.rebuilding = True
        try:
            await self._mount_panes(candidates, merged, mode, hidden)
        finally:
            self.rebuilding = False

    async def _mount_panes(
        self, candidates: list[AIResponse], merged: bool, mode: str, hidden: bool
    ) -> None:
        await self.remove_children()
        self.panes, self.merged_pane, self._flushed_at = {}, None, {}
        self.mode = mode
        panes: list[CandidatePane] = []
        for number, response in enumerate(candidates, 1):
            pane = CandidatePane(number, response)
            pane.hidden = hidden
            self.panes[response.response_id] = pane
            panes.append(pane)
        if merged:
            self.merged_pane = CandidatePane(None, None, label="merged")
            self.merged_pane.selected = True
            panes.append(self.merged_pane)
        if not panes:
            await self.mount(Static("", id="no-candidates"))
        elif mode == "side":
            await self.mount(Horizontal(*panes, id="side"))
        else:
            tabs = TabbedContent(id="tabs")
            await self.mount(tabs)
            for number, pane in enumerate(panes, 1):
                response = pane.response
                title = tab_label(number, response, False, hidden) if response else "merged ✓"
                await tabs.add_pane(TabPane(title, pane, id=f"tab-{number}"))

    def _label_tab(
        self, number: int, response: AIResponse, chosen: bool, hidden: bool = False
    ) -> None:
        if self.mode != "tabs":
            return
        try:
            tab = self.query_one(TabbedContent).get_tab(f"tab-{number}")
        except Exception:  # the tabs are being rebuilt
            return
        label = tab_label(number, response, chosen, hidden)
        if str(tab.label) != label:
            tab.label = label

    # --- streaming text --------------------------------------------------------------------

    def flush(self, live_text: dict[str, str], buffer_size: int) -> None:
        now = time.monotonic()
        streaming = any(
            p.response is not None and p.response.status == ResponseStatus.STREAMING
            for p in self.panes.values()
        )
        for response_id, pane in self.panes.items():
            response = pane.response
            if response is None:
                continue
            live = response.status == ResponseStatus.STREAMING
            if not live and streaming and len(response.raw_output) > TAIL_CHARS:
                # laying out a long document stalls the loop: wait for the other streams
                pane.show_text(response.raw_output, live=True)
                continue
            if live:
                text = live_text.get(response_id) or response.raw_output
                waiting = len(text) - len(pane.shown)
                last = self._flushed_at.get(response_id, 0.0)
                if 0 < waiting < buffer_size and now - last < MAX_WAIT:
                    continue
            else:
                text = response.raw_output
            self._flushed_at[response_id] = now
            pane.show_text(text, live=live)
        if self.merged_pane is not None and self._run is not None:
            self.merged_pane.show_text(merged_text(self._run) or "")

    # --- moving around -----------------------------------------------------------------------

    def focus_first(self) -> bool:
        """Focus the first visible pane (so arrows scroll it); False when there is none."""
        bodies = [b for b in self.query(".candidate-body") if b.display and b.is_mounted]
        visible = [b for b in bodies if b.region.area] or bodies
        if visible:
            visible[0].focus(scroll_visible=False)
            return True
        return False

    def move_tab(self, delta: int) -> None:
        if self.mode != "tabs":
            return
        tabs = self.query_one(TabbedContent)
        ids = [pane.id for pane in tabs.query(TabPane)]
        if ids:
            current = ids.index(tabs.active) if tabs.active in ids else 0
            tabs.active = ids[(current + delta) % len(ids)]
