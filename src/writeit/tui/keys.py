"""Every key of the TUI in one table: bindings, footer, help screen and command palette.

Each action has an id; `preferences.keyboard_shortcuts` maps ids to other keys
(`writeit config set keyboard_shortcuts.merge x`), applied as Textual's keymap.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from textual import events
from textual.binding import Binding
from textual.keys import _character_to_key  # Textual's own normalisation ("?" -> question_mark)
from textual.widgets import Input, TextArea


@dataclass(frozen=True)
class Action:
    id: str  # binding id: the name used in preferences.keyboard_shortcuts
    key: str  # default key (Textual key name)
    action: str  # Textual action string
    label: str  # footer
    help: str  # help screen and command palette
    show: bool = True
    key_display: str | None = None
    palette: bool = True  # offered in the command palette
    priority: bool = False  # before the focused widget's own bindings (e.g. a table's Enter)


_ALL = [
    # everywhere
    Action("help", "question_mark", "app.help", "Help", "Show every key", key_display="?"),
    Action("quit", "q", "app.quit", "Quit", "Quit (streams are stopped and saved first)"),
    # run list
    Action("new_run", "n", "new_run", "New", "Start a new run: pick a pipeline"),
    Action("open", "enter", "open", "Open", "Open the highlighted run", priority=True),
    Action("resume", "r", "resume", "Resume", "Resume the highlighted run (paused or failed)"),
    Action("delete", "d", "delete", "Delete", "Delete the highlighted run (asks first)"),
    Action("refresh", "ctrl+r", "refresh", "Refresh", "Reload the list", show=False),
    # input form
    Action("start", "ctrl+s", "start", "Start", "Start the run with these inputs"),
    Action("cancel", "escape", "cancel", "Cancel", "Go back without starting"),
    # step view
    *(
        Action(
            f"select_{n}",
            str(n),
            f"select({n})",
            "Select",
            f"Select candidate {n}",
            show=n == 1,
            key_display="1-9" if n == 1 else None,
        )
        for n in range(1, 10)
    ),
    Action(
        "accept",
        "a",
        "accept",
        "Accept",
        "Go on to the next step with the choice (or the only finished candidate)",
    ),
    Action("feedback", "c", "feedback", "Feedback", "Write feedback for the next step"),
    Action(
        "leave",
        "escape",
        "leave",
        "Leave",
        "Leave the feedback box (saves it); else back to the run list",
        show=False,
        palette=False,
    ),
    Action("regenerate", "r", "regenerate", "Regen", "Regenerate this step's candidates"),
    Action("guide", "g", "guide", "Guide", "Regenerate with an instruction"),
    Action("merge", "m", "merge", "Merge", "Merge candidates (AI or by hand)"),
    Action("retry", "t", "retry", "Retry", "Retry the failed candidates", show=False),
    Action("back", "b", "back", "Back", "Back to the previous step (nothing is lost)"),
    Action("fork", "f", "fork", "Fork", "Fork a new branch from this step"),
    Action("history", "h", "history", "History", "History and branch tree"),
    Action("export", "e", "export", "Export", "Export the article"),
    Action(
        "prompt", "p", "prompt", "Prompt", "Show or hide the prompt this step received", show=False
    ),
    Action(
        "prev_tab",
        "left_square_bracket",
        "prev_tab",
        "Tabs",
        "Previous candidate tab",
        key_display="[ ]",  # one footer entry for both
    ),
    Action(
        "next_tab",
        "right_square_bracket",
        "next_tab",
        "Next",
        "Next candidate tab",
        key_display="]",
        show=False,
    ),
    Action("runs", "l", "runs", "Runs", "Back to the run list", show=False),
    Action("skip", "k", "skip", "Skip", "Skip this step, when the pipeline allows it", show=False),
    Action("resume_run", "u", "resume_run", "Resume", "Resume generating after a stop or a crash"),
    Action("pause", "s", "pause", "Pause", "Pause: stop the models writing (their text is kept)"),
    Action("zoom", "z", "zoom", "Zoom", "Maximise the focused candidate (again to restore)"),
    Action("copy", "y", "copy", "Copy", "Copy the focused candidate's text", show=False),
    Action(
        "diff",
        "d",
        "diff",
        "Diff",
        "Diff: the focused candidate against the next (or its model's earlier attempt)",
        show=False,
    ),
    Action(
        "copy_article",
        "ctrl+y",
        "copy_article",
        "Copy article",
        "Copy the article (or the latest chosen text)",
        show=False,
    ),
    # merge view
    Action(
        "merge_ai", "ctrl+s", "merge_ai", "AI merge", "Merge the ticked candidates with a model"
    ),
    Action("merge_edit", "ctrl+o", "merge_edit", "By hand", "Edit the merged text by hand"),
    Action("merge_use", "ctrl+f", "merge_use", "Use text", "Use the merged text for this step"),
    Action("merge_diff", "ctrl+t", "merge_diff", "Diff", "Diff the two ticked candidates"),
    Action("close", "escape", "close", "Close", "Close this screen", palette=False),
    # history
    Action("open_branch", "o", "open_branch", "Open", "Open the highlighted run (switch branch)"),
    Action("fork_here", "f", "fork_here", "Fork", "Fork a new branch from the highlighted step"),
    Action(
        "replay",
        "r",
        "replay",
        "Replay",
        "Replay from the highlighted step on a new branch: other models or style, "
        "earlier choices kept",
    ),
    Action(
        "branch_diff",
        "d",
        "branch_diff",
        "Diff",
        "Diff the highlighted run's article against its parent's",
    ),
    # export
    Action("save_export", "ctrl+s", "save_export", "Export", "Write the export file"),
]

ACTIONS: dict[str, Action] = {a.id: a for a in _ALL}

# What the help screen lists, screen by screen.
SECTIONS: dict[str, list[str]] = {
    "Everywhere": ["help", "quit"],
    "Run list": ["new_run", "open", "resume", "delete", "history", "export", "refresh"],
    "Input form": ["start", "cancel"],
    "Step view": [
        "select_1",
        "accept",
        "feedback",
        "leave",
        "regenerate",
        "guide",
        "merge",
        "retry",
        "pause",
        "resume_run",
        "skip",
        "back",
        "fork",
        "history",
        "export",
        "prompt",
        "zoom",
        "copy",
        "copy_article",
        "diff",
        "prev_tab",
        "next_tab",
        "runs",
        "new_run",
    ],
    "Merge view": ["merge_ai", "merge_edit", "merge_use", "merge_diff", "close"],
    "History tree": ["open_branch", "fork_here", "replay", "branch_diff", "close"],
    "Diff view": ["close"],
    "Export dialog": ["save_export", "close"],
}

NAMES = {
    "question_mark": "?",
    "escape": "Esc",
    "enter": "Enter",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "space": "Space",
}


def bindings(*ids: str, hidden: tuple[str, ...] = ()) -> list[Binding]:
    """Bindings for these actions; `hidden` ones work but stay out of the footer."""
    result = []
    for action_id in ids:
        a = ACTIONS[action_id]
        result.append(
            Binding(
                a.key,
                a.action,
                a.label,
                show=a.show and action_id not in hidden,
                key_display=a.key_display,
                id=a.id,
                tooltip=a.help,
                priority=a.priority,
            )
        )
    return result


def display(key: str) -> str:
    """A Textual key name as a writer reads it: ctrl+s -> Ctrl+S, a -> A."""
    parts = []
    for key_name in key.split(","):
        key_name = key_name.strip()
        if key_name in NAMES:
            parts.append(NAMES[key_name])
        elif "+" in key_name:
            parts.append(
                "+".join(p.capitalize() if len(p) > 1 else p.upper() for p in key_name.split("+"))
            )
        else:
            parts.append(key_name.upper() if len(key_name) == 1 else key_name.capitalize())
    return "/".join(parts)


def key_for(action_id: str, keymap: dict[str, str]) -> str:
    """The key an action has now (remapped or default), for the help screen."""
    if action_id == "select_1" and not any(f"select_{n}" in keymap for n in range(1, 10)):
        return "1-9"
    return display(keymap.get(action_id, ACTIONS[action_id].key))


def check_keymap(shortcuts: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The known shortcuts as a Textual keymap, and the unknown action names."""
    known = {k: v for k, v in shortcuts.items() if k in ACTIONS}
    unknown = sorted(set(shortcuts) - set(known))
    return known, unknown


# Keys Textual or the app hold whatever the screen: a remap onto one would lose it.
RESERVED = {
    "ctrl+p": "the command palette",
    "ctrl+q": "Quit",
    "ctrl+c": "Copy selected text",
    "tab": "moving the focus",
    "shift+tab": "moving the focus",
}
EVERYWHERE = ("help", "quit")


def keys_of(key_list: str) -> list[str]:
    """The Textual key names of `a,b` as the keymap would bind them."""
    return [_character_to_key(k) if len(k) == 1 else k for k in map(str.strip, key_list.split(","))]


def refuse_clashes(
    keymap: dict[str, str], screens: Mapping[str, Iterable[str]]
) -> tuple[dict[str, str], list[str]]:
    """The keymap without remaps onto a key another action of the same screen uses, and
    a sentence for each refused remap naming the action that holds the key.

    Textual would let the remap win silently and drop the other binding: a writer who
    set `merge: a` would lose Accept without a word."""
    kept = dict(keymap)
    refused: list[str] = []
    for screen, ids in screens.items():
        # one at a time: a refused remap gives its action back its default key
        while clashes := _clashes(kept, [*ids, *EVERYWHERE]):
            action_id, holder = clashes[0]
            key = kept.pop(action_id)
            refused.append(
                f"keyboard_shortcuts.{action_id} = {key} is not used: {display(key)} is "
                f"already {holder} in the {screen.lower()}; {action_id} keeps "
                f"{display(ACTIONS[action_id].key)}."
            )
    return kept, refused


def _clashes(keymap: dict[str, str], ids: list[str]) -> list[tuple[str, str]]:
    """(remapped action, what holds its key) on one screen; keys not remapped keep theirs."""
    ids = list(dict.fromkeys(ids))
    taken: dict[str, str] = {}
    for action_id in ids:
        if action_id not in keymap:
            for key in keys_of(ACTIONS[action_id].key):
                taken.setdefault(key, action_id)
    found = []
    for action_id in sorted(a for a in ids if a in keymap):
        keys = keys_of(keymap[action_id])
        holder = next((taken[k] for k in keys if taken.get(k, action_id) != action_id), None)
        reserved = next((RESERVED[k] for k in keys if k in RESERVED), None)
        if holder is not None or reserved is not None:
            found.append((action_id, reserved or f"{ACTIONS[holder].label} ({holder})"))
            continue
        for key in keys:
            taken[key] = action_id
    return found


# --- keys in text: hints follow the writer's remaps --------------------------------------


class _Keys(dict):
    """`{accept}` in a hint becomes the key Accept has now."""

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def __missing__(self, action_id: str) -> str:
        return display(self.keymap.get(action_id, ACTIONS[action_id].key))


_PLACE = re.compile(r"\{([a-z_0-9]+)\}")


def hint(text: str, keymap: Mapping[str, str]) -> str:
    """`text` with `{action_id}` replaced by that action's key: "{accept} goes on" -> "A goes on".
    Other braces (a model name, an error) stay as they are."""
    found = _Keys(keymap)
    return _PLACE.sub(lambda m: found[m[1]] if m[1] in ACTIONS else m[0], text)


def numbers(chosen: list[int], keymap: Mapping[str, str]) -> str:
    """The keys that choose these candidates: "1-3" for a run of defaults, else each
    one's key ("1, 3", or the writer's remaps)."""
    found = _Keys(keymap)
    shown = [found[f"select_{n}"] for n in chosen if n <= 9]
    run = chosen == list(range(1, len(chosen) + 1))
    if run and len(chosen) > 1 and shown == [str(n) for n in chosen]:
        return f"1-{len(chosen)}"
    return ", ".join(shown)


def parse(action: str) -> tuple[str, tuple]:
    """ "select(3)" -> ("select", (3,)), as `check_action` receives it."""
    name, _, rest = action.partition("(")
    inside = rest.rstrip(")")
    return name, ast.literal_eval(f"({inside},)") if inside else ()


def action_for(key: str, ids: Iterable[str], keymap: Mapping[str, str]) -> tuple[str, tuple]:
    """The action (name, parameters) that `key` runs among `ids`, or ("", ())."""
    for action_id in ids:
        if key in keys_of(keymap.get(action_id, ACTIONS[action_id].key)):
            return parse(ACTIONS[action_id].action)
    return "", ()


class SaysWhy:
    """A screen mixin: a key whose action cannot act now says why (a notification)
    instead of doing nothing. The screen's `why_not(action, parameters)` gives the
    reason, or None when the action can act; `check_action` keeps the footer right."""

    ACTION_IDS: tuple[str, ...] = ()

    def why_not(self, action: str, parameters: tuple[object, ...] = ()) -> str | None:
        return None

    def on_key(self, event: events.Key) -> None:
        screen: Any = self
        if isinstance(screen.focused, (TextArea, Input)):
            return  # the key types text there
        name, params = action_for(event.key, self.ACTION_IDS, getattr(screen.app, "keymap", {}))
        reason = self.why_not(name, params) if name else None
        if reason:
            event.stop()
            screen.app.notify(reason, severity="warning", markup=False)
