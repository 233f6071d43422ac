"""A tiny registry of named plugins (generators, extractors, mask sources, datasets).

A plugin is registered either directly (``@REGISTRY.register("name")``) or lazily by the module
that defines it (``REGISTRY.register_lazy("name", "protodb.world.extractor")``): a lazy entry is
imported on first ``get``, so the library can name a plugin (the test world's, say) without
importing it, and ``import protodb`` stays light and free of import circles.
"""

from __future__ import annotations

import hashlib
import importlib
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
        self._lazy: dict[str, str] = {}  # name -> module that registers it when imported

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._lazy.pop(name, None)
            return obj

        return deco

    def register_lazy(self, name: str, module: str) -> None:
        """Name a plugin that ``module`` registers when imported; imported on first ``get``."""
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._lazy[name] = module

    def get(self, name: str) -> T:
        if name not in self._items and name in self._lazy:
            importlib.import_module(self._lazy[name])
            if name not in self._items:
                raise ValueError(f"{self._lazy[name]} did not register {self.kind} {name!r}")
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none)"
            raise ProtodbError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy


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
