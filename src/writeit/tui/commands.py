"""The command palette (Ctrl+P) offers the same actions as the keys of the screen below it."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from writeit.tui import keys


class ActionsProvider(Provider):
    """The current screen's actions (only those it allows now), then the global ones."""

    def _commands(self) -> list[tuple[str, str, object]]:
        screen = self.screen
        app = self.app
        keymap = getattr(app, "keymap", {})
        found: list[tuple[str, str, object]] = []
        ids = list(dict.fromkeys([*getattr(screen, "ACTION_IDS", ()), "help", "quit"]))
        for action_id in ids:
            action = keys.ACTIONS[action_id]
            if not action.palette:
                continue
            name, params = keys.parse(action.action)
            target = app if action.action.startswith("app.") else screen
            method = name.removeprefix("app.")
            check = target.check_action(method, params)  # select(5) with two candidates: no
            if check is False or check is None:
                continue
            key = keys.display(keymap.get(action_id, action.key))
            found.append(
                (
                    action.help,
                    f"key: {key}",
                    partial(target.run_action, action.action.removeprefix("app.")),
                )
            )
        return found

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
