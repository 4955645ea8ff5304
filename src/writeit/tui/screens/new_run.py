"""Pick the pipeline of a new run (the input form then asks for inputs, style and models)."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option


class NewRunDialog(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("New run: choose a pipeline", classes="dialog-title")
            yield OptionList(id="pipelines")
            yield Static("Enter to choose · Esc to cancel", classes="hint")

    async def on_mount(self) -> None:
        from writeit import config

        engine = self.app.engine
        entries = await asyncio.to_thread(config.list_pipelines, engine.pipeline_dirs())
        options = []
        for entry in entries:
            text = Text()
            text.append(entry.name, "bold")
            if entry.item is not None:
                steps = " → ".join(entry.item.step_names)
                text.append(f"  {entry.item.description}\n", "")
                text.append(f"  steps: {steps}", "dim")
                options.append(Option(text, id=entry.name))
            else:
                problem = entry.problems[0] if entry.problems else "cannot be loaded"
                text.append(f"  broken: {problem}", "red")
                options.append(Option(text, id=entry.name, disabled=True))
        option_list = self.query_one(OptionList)
        option_list.add_options(options)
        usable = [i for i, o in enumerate(options) if not o.disabled]
        default = next((i for i in usable if options[i].id == "tech-article"), None)
        option_list.highlighted = default if default is not None else (usable or [None])[0]
        option_list.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
