"""The history and branch tree: the run family from its root, every branch under the
step it branched at, and every step; highlight a node to read it (read-only), O to
switch to that run, F to fork a new branch from a step, R to replay from a step (a
new branch asking it and the later steps again, of other models or in another style).

A family is read from the runs' summaries, walked without recursion: thousands of
forks deep costs what it shows. Runs' steps are shown at once for a small family, else
for this run and its nearest ancestors, and for any other run when it is opened; a
fork that is its parent's only branch is listed below it rather than indented, so a
long chain reads as a list.

Dismisses with the id of the run to show, or None.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Static, Tree
from textual.widgets.tree import TreeNode

from writeit.models import PipelineRun, StepStatus
from writeit.store import RunSummary
from writeit.tui import format as fmt
from writeit.tui import keys
from writeit.tui.screens.replay import Replay
from writeit.tui.screens.run_list import STATUS_STYLE

STEP_STYLE = {
    StepStatus.COMPLETED: "green",
    StepStatus.SKIPPED: "dim",
    StepStatus.RUNNING: "yellow",
    StepStatus.PENDING: "dim",
}


@dataclass
class Node:
    run_id: str
    step: str | None = None


EAGER = 64  # a family this small shows every run's steps at once


@dataclass
class Family:
    """Everything the tree shows, read off the store in a thread: every run's summary,
    and the folded runs whose steps are shown (more are read as they are opened)."""

    root: str
    runs: dict[str, PipelineRun]
    summaries: dict[str, RunSummary]
    children: dict[str, list[str]]

    @property
    def deep(self) -> bool:
        return len(self.summaries) > EAGER


def read_family(store, run_id: str) -> Family:
    lineage = store.ancestors(run_id)
    root = lineage[0]
    summaries: dict[str, RunSummary] = {}
    children: dict[str, list[str]] = {}
    todo = [root]
    while todo:
        current = todo.pop()
        summaries[current] = store.summary(current)
        children[current] = store.children(current)
        todo.extend(children[current])
    shown = summaries if len(summaries) <= EAGER else lineage[-EAGER:]
    runs = {rid: store.load(rid) for rid in shown}
    return Family(root, runs, summaries, children)


def run_label(
    summary: RunSummary, *, here: bool, deleted: bool, parent: RunSummary | None = None
) -> Text:
    """A run's line in the tree, status first as on the step lines: a narrow tree (80
    columns, a deep branch) cuts the end of a line, never the status. A replay says so,
    with its models and style where they differ from `parent`'s."""
    status = summary.status
    label = Text()
    label.append(f"{fmt.STATUS_MARK.get(status, '')} {status}", STATUS_STYLE.get(status, ""))
    if summary.parent:
        label.append(f"  ↳ {fmt.short(summary.run_id)}", "bold")
        note = summary.replay_note(parent)
        label.append(f" {note}" if note else f" from {summary.branch_point}", "italic")
    else:
        label.append(f"  run {fmt.short(summary.run_id)}", "bold")
        label.append(f" {summary.pipeline}")
    if here:
        label.append(" ◀ here", "bold reverse")
    if deleted:
        label.append(" (deleted)", "red")
    return label


def step_label(run: PipelineRun, name: str) -> Text:
    step = run.steps[name]
    text = Text()
    text.append(f"{fmt.STATUS_MARK[step.status.value]} {name}", STEP_STYLE[step.status])
    if step.user_selection is not None:
        text.append(f"  {step.ai_responses[step.user_selection].model_name}", "")
    elif step.merged_content is not None:
        text.append("  merged", "")
    elif step.candidates:
        count = len(step.candidates)
        text.append(f"  {count} candidate{'s' if count != 1 else ''}", "dim")
    if step.user_feedback:
        text.append("  ✎ feedback", "dim")
    if name == run.current_step and run.status.value != "completed":
        text.append("  ◀ at", "italic")
    return text


class HistoryScreen(Screen[str | None]):
    ACTION_IDS = ("open_branch", "fork_here", "replay", "branch_diff", "close")
    BINDINGS = keys.bindings(*ACTION_IDS)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # -narrow: a wider tree

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.family: Family | None = None
        self._run_nodes: dict[str, TreeNode] = {}  # run id -> its node

    def compose(self) -> ComposeResult:
        yield Static("", id="history-title", classes="screen-title")
        with Horizontal(id="history-body"):
            yield Tree("runs", id="family")
            with VerticalScroll(id="reader"):
                yield Static("", id="reader-title")
                yield Markdown("", id="reader-text")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        await self.reload()

    async def reload(self) -> None:
        self.family = await asyncio.to_thread(read_family, self.app.engine.store, self.run_id)
        family = self.family
        tree = self.query_one(Tree)
        tree.clear()
        tree.show_root = False
        self._run_nodes = {}
        self._add_family(tree.root, family)
        tree.root.expand()
        branches = len(family.summaries)
        self.query_one("#history-title", Static).update(
            f"[b]History[/b]  ·  {branches} run{'s' if branches != 1 else ''} "
            "(the first and its branches)  ·  highlight a node to read it"
        )
        tree.focus()
        target = self._target()
        if target is not None:
            self.call_after_refresh(tree.move_cursor, target)

    def _target(self) -> TreeNode | None:
        """This run's current step, else this run's node."""
        node = self._run_nodes.get(self.run_id)
        run = self.family.runs.get(self.run_id) if self.family else None
        if node is None or run is None:
            return node
        for child in node.children:
            data = child.data
            if isinstance(data, Node) and data.step == run.current_step:
                return child
        return node

    def _add_family(self, top: TreeNode, family: Family) -> None:
        """Every run, parents before children, with a stack: no recursion limit."""
        stack: list[tuple[TreeNode, str]] = [(top, family.root)]
        while stack:
            parent, run_id = stack.pop()
            node, step_nodes = self._add_run(parent, run_id)
            kids = family.children.get(run_id, [])
            for child_id in reversed(kids):
                if family.deep and len(kids) == 1:
                    anchor = parent  # an only branch of a deep family: listed, not indented
                else:
                    anchor = step_nodes.get(family.summaries[child_id].branch_point or "", node)
                stack.append((anchor, child_id))

    def _add_run(self, parent: TreeNode, run_id: str) -> tuple[TreeNode, dict[str, TreeNode]]:
        assert self.family is not None
        summary = self.family.summaries[run_id]
        label = run_label(
            summary,
            here=run_id == self.run_id,
            deleted=summary.deleted,
            parent=self.family.summaries.get(summary.parent or ""),
        )
        run = self.family.runs.get(run_id)
        node = parent.add(label, data=Node(run_id), expand=run is not None)
        self._run_nodes[run_id] = node
        return node, self._add_steps(node, run) if run is not None else {}

    def _add_steps(self, node: TreeNode, run: PipelineRun) -> dict[str, TreeNode]:
        assert self.family is not None
        run_id = run.pipeline_run_id
        names = run.pipeline.step_names
        first = names.index(run.branch_point) if run.branch_point in names else 0
        children = self.family.children.get(run_id, [])
        branch_points = {self.family.summaries[c].branch_point for c in children}
        step_nodes: dict[str, TreeNode] = {}
        for position, name in enumerate(names[first:]):
            text = step_label(run, name)
            if name in branch_points and not self.family.deep:
                step_nodes[name] = node.add(
                    text, data=Node(run_id, name), expand=True, before=position
                )
            else:
                step_nodes[name] = node.add_leaf(text, data=Node(run_id, name), before=position)
        return step_nodes

    @on(Tree.NodeExpanded)
    async def _expanded(self, event: Tree.NodeExpanded) -> None:
        """A run read only now: its steps come first under its node."""
        data = event.node.data
        if not isinstance(data, Node) or data.step is not None or self.family is None:
            return
        if data.run_id not in self.family.runs:
            self._add_steps(event.node, await self._run(data.run_id))

    async def _run(self, run_id: str) -> PipelineRun:
        assert self.family is not None
        if run_id not in self.family.runs:
            self.family.runs[run_id] = await self.app.engine.fetch(run_id)
        return self.family.runs[run_id]

    # --- reading -----------------------------------------------------------------------------

    @on(Tree.NodeHighlighted)
    async def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        data = event.node.data
        if not isinstance(data, Node) or self.family is None:
            return
        run = await self._run(data.run_id)
        title = self.query_one("#reader-title", Static)
        text = self.query_one("#reader-text", Markdown)
        if data.step is None:
            title.update(
                f"[b]Run {fmt.short(run.pipeline_run_id)}[/b] · {run.pipeline.name} · "
                f"{run.status.value} · at {run.current_step} · {fmt.run_cost(run)}"
                "\n[dim]Read-only. O switches to this run."
                + (
                    keys.hint(" {branch_diff} compares it with its parent.", self.app.keymap)
                    if run.parent_pipeline_run_id
                    else ""
                )
                + "[/dim]"
            )
            body = run.final_text or "_No chosen text yet._"
            await text.update(f"**Latest chosen text**\n\n{body}")
            return
        step = run.steps[data.step]
        chosen = (
            step.ai_responses[step.user_selection].model_name
            if step.user_selection is not None
            else ("merged" if step.merged_content is not None else "nothing yet")
        )
        title.update(
            f"[b]{data.step}[/b] in run {fmt.short(run.pipeline_run_id)} · {step.status.value} · "
            f"chosen: {chosen} · {len(step.ai_responses)} responses"
            "\n[dim]Read-only. F forks a new branch from here, R replays from here; "
            "O opens the run.[/dim]"
        )
        parts = []
        if step.output is not None:
            parts.append(f"**Chosen text**\n\n{step.output}")
        if step.user_feedback:
            parts.append(f"**Feedback for the next step:** {step.user_feedback}")
        others = [
            (n, r)
            for n, r in enumerate(step.candidates, 1)
            if step.output is None or r.processed_content != step.output
        ]
        for n, r in others:
            parts.append(
                f"**Candidate {n} ({step.author(r)})** ({r.status.value})\n\n"
                f"{r.processed_content or r.raw_output or r.error or ''}"
            )
        await text.update("\n\n---\n\n".join(parts) or "_This step has not run in this branch._")

    def _node(self) -> Node | None:
        node = self.query_one(Tree).cursor_node
        return node.data if node is not None and isinstance(node.data, Node) else None

    # --- actions -----------------------------------------------------------------------------

    def action_open_branch(self) -> None:
        node = self._node()
        if node is not None:
            self.dismiss(node.run_id)

    def action_fork_here(self) -> None:
        node = self._node()
        if node is None or node.step is None:
            self.app.say("Highlight a step to fork from.", severity="warning")
            return

        async def fork() -> None:
            child = await self.app.attempt(
                self.app.engine.fork(node.run_id, node.step), title="Fork"
            )
            if child is not None:
                self.app.say(
                    f"Forked: new run {fmt.short(child.pipeline_run_id)} from {node.step} "
                    f"of {fmt.short(node.run_id)}.",
                    title="Fork",
                )
                self.dismiss(child.pipeline_run_id)

        self.app.call(fork())

    def action_replay(self) -> None:
        from writeit.tui.screens.replay import ReplayDialog

        node = self._node()
        if node is None or node.step is None:
            self.app.say("Highlight a step to replay from.", severity="warning")
            return

        async def ask() -> None:
            run = await self._run(node.run_id)
            self.app.push_screen(
                ReplayDialog(run, node.step or ""), lambda choice: self._replay(node, choice)
            )

        self.app.call(ask())

    def _replay(self, node: Node, choice: Replay | None) -> None:
        if choice is None:
            return

        async def replay() -> None:
            engine = self.app.engine
            child = await self.app.attempt(
                engine.replay(
                    node.run_id, choice.step, models=choice.models, style=choice.style, start=True
                ),
                title="Replay",
            )
            if child is not None:
                asked = ", ".join(child.models_for(choice.step))
                self.app.say(
                    f"Replaying {fmt.short(node.run_id)} from {choice.step} on branch "
                    f"{fmt.short(child.pipeline_run_id)}: asking {asked}.",
                    title="Replay",
                )
                self.dismiss(child.pipeline_run_id)

        self.app.call(replay())

    def action_branch_diff(self) -> None:
        node = self._node()
        if node is not None:
            self.app.call(self._branch_diff(node.run_id))

    async def _branch_diff(self, run_id: str) -> None:
        """The highlighted run's article against its parent's: what the branch changed."""
        from writeit.tui.screens.diff import Compared, DiffScreen

        run = await self._run(run_id)
        parent_id = run.parent_pipeline_run_id
        if parent_id is None:
            self.app.say(
                "This run is the first of its family: highlight a branch (↳) to compare it "
                "with the run it came from.",
                severity="warning",
            )
            return
        parent = await self._run(parent_id)
        if run.final_text is None or parent.final_text is None:
            empty = fmt.short(run_id if run.final_text is None else parent_id)
            self.app.say(f"Run {empty} has no chosen text yet.", severity="warning")
            return
        old = Compared(f"run {fmt.short(parent_id)} (parent)", parent.final_text)
        new = Compared(f"branch {fmt.short(run_id)}", run.final_text)
        where = f"latest chosen texts · branched at {run.branch_point}"
        self.app.push_screen(DiffScreen(old, new, where=where))

    def action_close(self) -> None:
        self.dismiss(None)
