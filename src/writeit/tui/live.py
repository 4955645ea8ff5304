"""The text of responses streaming now, as the app hears it delta by delta.

Appending is O(1) (chunks are kept in a list); reading joins them once and keeps the
result, so a view that reads each stream once per frame pays one join per frame
rather than one string copy per token.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping


class LiveText(MutableMapping[str, str]):
    def __init__(self) -> None:
        self._parts: dict[str, list[str]] = {}

    def append(self, response_id: str, chunk: str) -> None:
        self._parts.setdefault(response_id, []).append(chunk)

    def __getitem__(self, response_id: str) -> str:
        parts = self._parts[response_id]
        if len(parts) != 1:
            parts[:] = ["".join(parts)]
        return parts[0]

    def __setitem__(self, response_id: str, text: str) -> None:
        self._parts[response_id] = [text]

    def __delitem__(self, response_id: str) -> None:
        del self._parts[response_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)
