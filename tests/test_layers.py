"""Imports point down only: every module's varcas imports checked against the layer table.

The table is ARCHITECTURE.md's: a module may import its own package and any lower layer,
never a higher one nor a peer package of its own layer. `__main__` modules are entry points
(they sit above everything); varcas.cli is the top-level dispatcher and imports commands by
name, not statically.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "varcas"

LAYERS = (
    ("_timing", "errors"),
    ("bounded", "resources", "clikit", "signals", "termtable"),
    ("rundir", "schedule", "metricsfile"),
    ("analyze", "roofline", "serve"),
    ("telemetry",),
    ("load", "sim"),
    ("targets",),
    ("results",),
    ("optimize", "calibrate"),
    ("report",),
    ("pipeline",),
    ("cli", "testing"),
)
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(parts: tuple[str, ...]) -> str:
    """The layer unit of a module: its top-level package or module under varcas."""
    return parts[1] if len(parts) > 1 else "varcas"


def _modules(root: Path = ROOT):
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts if rel.name != "__init__" else rel.parts[:-1]
        yield path, parts


def _imports(path: Path, parts: tuple[str, ...]):
    """(imported module as a tuple of parts, line) for every varcas import in the file."""
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            target = (*base, *(node.module.split(".") if node.module else ()))
            if target == ("varcas",):  # from varcas import x: x is the module
                for alias in node.names:  # __version__ is the package's own
                    yield ("varcas",) if alias.name.startswith("__") else ("varcas", alias.name), node.lineno
            elif target and target[0] == "varcas":
                yield target, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "varcas":
                    yield tuple(alias.name.split(".")), node.lineno


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for path, parts in _modules(root):
        if path.name == "__main__.py":
            continue
        unit = _unit(parts)
        if unit == "varcas":
            continue  # the package's own __init__ (version only)
        for target, line in _imports(path, parts):
            other = _unit(target)
            if other in (unit, "varcas"):
                continue
            if other not in LEVEL or unit not in LEVEL:
                found.append(f"{path.relative_to(root.parent)}:{line}: {other!r} or {unit!r} is in no layer")
            elif LEVEL[other] >= LEVEL[unit]:
                found.append(f"{path.relative_to(root.parent)}:{line}: {unit} (layer {LEVEL[unit]}) imports "
                             f"{'.'.join(target)} (layer {LEVEL[other]})")
    return found


def test_every_unit_has_a_layer():
    units = {_unit(parts) for _, parts in _modules()} - {"varcas"}
    assert units <= set(LEVEL), f"add to LAYERS: {sorted(units - set(LEVEL))}"


def test_imports_point_down():
    assert violations() == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: a load module importing sim (a peer) and serve importing analyze
    (same layer) are reported; imports of lower layers are not."""
    pkg = tmp_path / "varcas"
    for sub in ("load", "serve"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "load" / "x.py").write_text("from ..sim import spawn\nfrom ..errors import VarcasError\n")
    (pkg / "serve" / "y.py").write_text("import os\nfrom varcas.analyze import summary\nfrom varcas import rundir\n")
    assert violations(pkg) == ["varcas/load/x.py:1: load (layer 5) imports varcas.sim (layer 5)",
                               "varcas/serve/y.py:2: serve (layer 3) imports varcas.analyze (layer 3)"]


def test_no_imports_from_command_modules():
    """Libraries do not import from command modules (`cli`, `*_cli`): shared argparse helpers
    live in varcas.clikit, and commands call libraries, never the reverse."""
    bad = [f"{p.relative_to(ROOT.parent)}:{line}: {'.'.join(t)}" for p, parts in _modules()
           for t, line in _imports(p, parts)
           if (t[-1] == "cli" or t[-1].endswith("_cli")) and p.name != "__main__.py"]
    assert bad == []
