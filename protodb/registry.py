"""A tiny registry of named plugins (generators, extractors, mask sources)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Generic, Self, TypeVar

from protodb.errors import ProtodbError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a string name to a factory. An unknown name lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ProtodbError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


class PluginConfig:
    """Mixin for a plugin's frozen config dataclass: a stable id and a JSON form.

    The config is stored beside every row it produced; ``id`` is ``<name>-<first 12 hex of the
    sha256 of the sorted-key JSON>``, so any change of a field gives a new id.
    """

    name: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)  # type: ignore[call-overload]

    @property
    def id(self) -> str:
        return f"{self.name}-{hashlib.sha256(self.to_json().encode()).hexdigest()[:12]}"

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls(**json.loads(text))
