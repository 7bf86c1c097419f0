"""A small typed reader for recipe specs whose errors name the field, e.g.
``trainer.lora.r: expected a positive integer``.

Usage::

    spec = SpecReader(raw)
    lora = spec.section("trainer").section("lora")
    r = lora.integer("r", default=8, minimum=1)
    ...
    spec.finish()   # unknown fields anywhere in the tree are errors

Deliberately dependency-free (no torch, no pydantic) so a spec is checked before heavy imports.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .protocol import InputNotFound, SpecError

_REQUIRED: Any = object()
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")
# Accepted `attn_implementation` values (runtime.best_attention_implementation resolves `auto`).
ATTENTION_IMPLEMENTATIONS = ("auto", "sdpa", "eager", "flex_attention", "flash_attention_2")


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class SpecReader:
    """Reads typed fields from one JSON object of the spec; tracks which keys were read."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise SpecError(path or "spec", "expected a JSON object")
        self._data: Mapping[str, Any] = data
        self._path = path
        self._read: set[str] = set()
        self._children: list[SpecReader] = []
        self._sections: dict[str, SpecReader] = {}

    # -- plumbing ---------------------------------------------------------------------------------

    def field(self, key: str) -> str:
        """The dotted path of ``key`` in the spec, for error messages."""
        return f"{self._path}.{key}" if self._path else key

    def has(self, key: str) -> bool:
        return key in self._data and self._data[key] is not None

    def keys(self) -> list[str]:
        """The keys of this object, in document order (for maps keyed by user-chosen names)."""
        return list(self._data)

    def is_object(self, key: str) -> bool:
        return isinstance(self._data.get(key), Mapping)

    def _get(self, key: str, default: Any) -> tuple[bool, Any]:
        """(present, value); raises if required and absent. ``null`` counts as absent."""
        self._read.add(key)
        if key in self._data and self._data[key] is not None:
            return True, self._data[key]
        if default is _REQUIRED:
            raise SpecError(self.field(key), "required")
        return False, default

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(self.field(key), problem)

    # -- scalar fields ----------------------------------------------------------------------------

    def integer(self, key: str, default: Any = _REQUIRED, *, minimum: int | None = None, maximum: int | None = None) -> Any:
        present, value = self._get(key, default)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise self.error(key, _integer_expectation(minimum, maximum))
        value = int(value)
        if minimum is not None and value < minimum:
            raise self.error(key, f"{_integer_expectation(minimum, None)}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"{_integer_expectation(None, maximum)}, got {value}")
        return value

    def number(
        self,
        key: str,
        default: Any = _REQUIRED,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: float | None = None,
        exclusive_maximum: float | None = None,
    ) -> Any:
        present, value = self._get(key, default)
        if not present:
            return value
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum}")
        if exclusive_minimum is not None:
            bounds.append(f"> {exclusive_minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        if exclusive_maximum is not None:
            bounds.append(f"< {exclusive_maximum}")
        expectation = "expected a number" + (" " + " and ".join(bounds) if bounds else "")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, expectation)
        value = float(value)
        if (
            (minimum is not None and value < minimum)
            or (exclusive_minimum is not None and value <= exclusive_minimum)
            or (maximum is not None and value > maximum)
            or (exclusive_maximum is not None and value >= exclusive_maximum)
        ):
            raise self.error(key, f"{expectation}, got {value:g}")
        return value

    def boolean(self, key: str, default: Any = _REQUIRED) -> Any:
        present, value = self._get(key, default)
        if present and not isinstance(value, bool):
            raise self.error(key, "expected true or false")
        return value

    def string(self, key: str, default: Any = _REQUIRED, *, choices: Sequence[str] | None = None) -> Any:
        present, value = self._get(key, default)
        if not present:
            return value
        if not isinstance(value, str) or not value:
            raise self.error(key, "expected a non-empty string" if choices is None else _one_of(choices))
        if choices is not None and value not in choices:
            raise self.error(key, f"{_one_of(choices)}, got {value!r}")
        return value

    def string_list(self, key: str, default: Any = _REQUIRED, *, min_items: int = 1) -> Any:
        present, value = self._get(key, default)
        if not present:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "expected a list of non-empty strings")
        if len(value) < min_items:
            raise self.error(key, f"expected at least {min_items} item(s)")
        return list(value)

    def device(self, key: str = "device") -> str:
        """The protocol's ``device``: ``cpu``, ``cuda`` or ``cuda:<n>``."""
        value = self.string(key)
        if not DEVICE_PATTERN.match(value):
            raise self.error(key, f"expected cpu, cuda or cuda:<index>, got {value!r}")
        return value

    def path(self, key: str, default: Any = _REQUIRED, *, kind: Literal["file", "dir"], must_exist: bool = True) -> Any:
        """A local path. Missing inputs raise :class:`InputNotFound` (exit 2, naming the path)."""
        present, value = self._get(key, default)
        if not present:
            return value
        if not isinstance(value, str) or not value:
            raise self.error(key, "expected a local path")
        path = Path(value).expanduser()
        if must_exist:
            if not path.exists():
                raise InputNotFound(self.field(key), path)
            if kind == "dir" and not path.is_dir():
                raise InputNotFound(self.field(key), path, "expected a directory")
            if kind == "file" and not path.is_file():
                raise InputNotFound(self.field(key), path, "expected a file")
        return path

    # -- nesting ----------------------------------------------------------------------------------

    def section(self, key: str, *, required: bool = False) -> SpecReader:
        """A nested object; absent (and not required) reads as an empty object, so defaults apply.
        Asking twice for the same key gives the same reader."""
        if key in self._sections:
            return self._sections[key]
        present, value = self._get(key, _REQUIRED if required else {})
        child = SpecReader(value if present else {}, self.field(key))
        self._children.append(child)
        self._sections[key] = child
        return child

    def sections(self, key: str, default: Any = _REQUIRED, *, min_items: int = 1) -> Any:
        """A list of objects, each read by its own reader (paths like ``models[1].path``)."""
        present, value = self._get(key, default)
        if not present:
            return value
        if not isinstance(value, list) or len(value) < min_items:
            raise self.error(key, f"expected a list of at least {min_items} object(s)")
        children = [SpecReader(item, f"{self.field(key)}[{i}]") for i, item in enumerate(value)]
        self._children.extend(children)
        return children

    def finish(self) -> None:
        """Reject fields nobody read (typos, camelCase), here and in every nested section."""
        for key in self._data:
            if key not in self._read:
                known = sorted(self._read)
                hint = difflib.get_close_matches(key, known, n=1) or (
                    [_camel_to_snake(key)] if _camel_to_snake(key) in known else []
                )
                suffix = f" (did you mean {hint[0]!r}?)" if hint else f" (known fields: {', '.join(known)})"
                raise self.error(key, "unknown field" + suffix)
        for child in self._children:
            child.finish()


def _integer_expectation(minimum: int | None, maximum: int | None) -> str:
    if minimum == 1 and maximum is None:
        return "expected a positive integer"
    if minimum == 0 and maximum is None:
        return "expected a non-negative integer"
    if minimum is not None and maximum is not None:
        return f"expected an integer between {minimum} and {maximum}"
    if minimum is not None:
        return f"expected an integer >= {minimum}"
    if maximum is not None:
        return f"expected an integer <= {maximum}"
    return "expected an integer"


def _one_of(choices: Sequence[str]) -> str:
    return "expected one of " + ", ".join(repr(c) for c in choices)


def read_common(spec: SpecReader) -> tuple[str, int]:
    """The fields every spec has (PROTOCOL.md): ``device`` and ``seed``."""
    return spec.device("device"), spec.integer("seed", minimum=0)
