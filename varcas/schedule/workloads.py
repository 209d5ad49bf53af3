"""Workloads: a default request rate plus input/output token-length distributions.

A workload says *what* each request asks for (how many prompt tokens, how many tokens to
generate); the arrival process (varcas.schedule.build) says *when*. Workloads ship as JSON in
varcas/data/workloads/<name>.json, and a user may pass a path to a file of the same format:

    {"name": "chat_medium", "description": "...", "rps": 20,
     "input":  {"kind": "lognormal", "median": 200, "sigma": 0.8, "min": 8, "max": 4096},
     "output": {"kind": "fixed", "value": 128}}

Length kinds and their parameters:
  fixed      value                 every request gets exactly `value` tokens
  lognormal  median, sigma         exp(N(ln median, sigma^2)); sigma is the std of the
                                   underlying normal, so the mean is median*exp(sigma^2/2)
  uniform    low, high             integers in [low, high], both ends included
Every kind takes optional clamps `min` (default 1) and `max` (default 2**31-1); samples are
rounded to the nearest integer, then clamped, so they are always >= 1 and fit in int32.

Invariant: a LengthDist or Workload that exists is valid; the constructors check every
field, and a bad field in a file is reported with the file name and the field's path.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from varcas.errors import VarcasError
from varcas.resources import data_path

INT32_MAX = 2**31 - 1

# Parameters each kind requires; the clamps are optional for every kind.
_KIND_PARAMS = {"fixed": ("value",), "lognormal": ("median", "sigma"), "uniform": ("low", "high")}
_CLAMPS = ("min", "max")
_WORKLOAD_KEYS = ("name", "description", "rps", "input", "output")
# A shipped workload's name; anything else (a '/', a '.json' suffix) is taken as a path.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class _FieldError(VarcasError):
    """A bad field, kept structured so a file loader can prefix the file and field path."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def _number(field: str, value: Any) -> float:
    """A finite real number (bool is rejected: JSON true is not a rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _FieldError(field, f"must be a finite number, got {value!r}")
    return float(value)


def _integer(field: str, value: Any) -> int:
    """An integer in [1, INT32_MAX]: a token count."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _FieldError(field, f"must be an integer, got {value!r}")
    if not 1 <= value <= INT32_MAX:
        raise _FieldError(field, f"must be between 1 and {INT32_MAX}, got {value}")
    return int(value)


@dataclass(frozen=True)
class LengthDist:
    """A token-length distribution; see the module docstring for the kinds."""

    kind: str
    value: int | None = None
    median: float | None = None
    sigma: float | None = None
    low: int | None = None
    high: int | None = None
    min: int = 1
    max: int = INT32_MAX

    def __post_init__(self) -> None:
        if self.kind not in _KIND_PARAMS:
            raise _FieldError("kind", f"must be one of {', '.join(_KIND_PARAMS)}, got {self.kind!r}")
        needed = _KIND_PARAMS[self.kind]
        for name in ("value", "median", "sigma", "low", "high"):
            given = getattr(self, name) is not None
            if given != (name in needed):
                reason = "is required" if not given else f"does not apply to kind {self.kind!r}"
                raise _FieldError(name, reason)
        _integer("min", self.min)
        if _integer("max", self.max) < self.min:
            raise _FieldError("max", f"must be >= min ({self.min}), got {self.max}")
        if self.kind == "fixed":
            _integer("value", self.value)
        elif self.kind == "lognormal":
            for name in ("median", "sigma"):
                if _number(name, getattr(self, name)) <= 0:
                    raise _FieldError(name, f"must be > 0, got {getattr(self, name)}")
        elif _integer("high", self.high) < _integer("low", self.low):
            raise _FieldError("high", f"must be >= low ({self.low}), got {self.high}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n lengths as int32, rounded and clamped to [min, max]; consumes rng sequentially,
        so the first k of sample(rng, n) equal sample(rng', k) for an identical rng'."""
        if self.kind == "fixed":
            assert self.value is not None  # __post_init__ checked the kind's parameters
            raw = np.full(n, float(self.value))
        elif self.kind == "lognormal":
            assert self.median is not None and self.sigma is not None
            raw = np.rint(rng.lognormal(math.log(self.median), self.sigma, n))
        else:
            assert self.low is not None and self.high is not None
            raw = rng.integers(self.low, self.high, n, endpoint=True).astype(np.float64)
        return np.clip(raw, self.min, self.max).astype(np.int32)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (only the fields this kind uses), as read by parse_length_dist."""
        out: dict[str, Any] = {"kind": self.kind}
        for name in _KIND_PARAMS[self.kind] + _CLAMPS:
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class Workload:
    """A named request mix: default rate (requests/s) and input/output length distributions."""

    name: str
    description: str
    rps: float
    input: LengthDist
    output: LengthDist

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _FieldError("name", f"must be a non-empty string, got {self.name!r}")
        if not isinstance(self.description, str):
            raise _FieldError("description", f"must be a string, got {self.description!r}")
        if _number("rps", self.rps) <= 0:
            raise _FieldError("rps", f"must be > 0, got {self.rps}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as read by parse_workload (for manifests and round trips)."""
        return {"name": self.name, "description": self.description, "rps": self.rps,
                "input": self.input.to_dict(), "output": self.output.to_dict()}


def _check_keys(data: Any, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    """data must be an object holding every required key and no unknown key (typos)."""
    if not isinstance(data, dict):
        raise _FieldError(None, f"must be a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise _FieldError(str(key), f"unknown field (expected: {', '.join(allowed)})")
    for key in required:
        if key not in data:
            raise _FieldError(key, "is required")
    return data


def parse_length_dist(data: Any) -> LengthDist:
    """A LengthDist from its JSON form; raises _FieldError (a VarcasError) naming the field."""
    allowed = ("kind",) + tuple(p for ps in _KIND_PARAMS.values() for p in ps) + _CLAMPS
    return LengthDist(**_check_keys(data, allowed, ("kind",)))


def parse_workload(data: Any, default_name: str = "") -> Workload:
    """A Workload from its JSON form. `name` may be omitted when default_name is given;
    `description` may be omitted (empty). Errors name the field path, e.g. 'input.sigma'."""
    required = ("rps", "input", "output") + (() if default_name else ("name",))
    data = _check_keys(data, _WORKLOAD_KEYS, required)
    dists = {}
    for side in ("input", "output"):
        try:
            dists[side] = parse_length_dist(data[side])
        except _FieldError as e:
            field = f"{side}.{e.field}" if e.field else side
            raise _FieldError(field, e.reason) from None
    return Workload(name=data.get("name", default_name), description=data.get("description", ""),
                    rps=data["rps"], **dists)


def list_workloads() -> list[str]:
    """Names of the shipped workloads, sorted."""
    return sorted(p.stem for p in data_path("workloads").glob("*.json"))


def load_workload(name_or_path: str) -> Workload:
    """A shipped workload by name (e.g. "chat_medium"), or a user JSON file by path.

    A string with a path separator or a .json suffix is a path; any other is a name.
    Raises VarcasError (one line) for an unknown name, an unreadable file, invalid JSON,
    or a bad field (the message names the file and the field path).
    """
    if _NAME_RE.match(name_or_path):
        path = data_path("workloads", f"{name_or_path}.json")
        if not path.is_file():
            known = ", ".join(list_workloads()) or "(none)"
            raise VarcasError(f"unknown workload {name_or_path!r}; known workloads: {known}")
    else:
        path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VarcasError(f"cannot read workload file {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise VarcasError(f"workload file {path}: invalid JSON at line {e.lineno} "
                          f"column {e.colno}: {e.msg}") from None
    try:
        return parse_workload(data, default_name=path.stem)
    except _FieldError as e:
        where = f"field {e.field!r}: " if e.field else ""
        raise VarcasError(f"workload file {path}: {where}{e.reason}") from None
