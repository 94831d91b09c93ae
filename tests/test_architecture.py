"""The package's shape: no import cycles between our modules (function-level imports included, so a cycle cannot
hide inside a function), and every module imports on its own in a fresh interpreter."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# folder -> the package it installs as (pyproject.toml maps probes/ and experiments/ under mazeagent.)
PACKAGES = {"mazeagent": "mazeagent", "probes": "mazeagent.probes", "experiments": "mazeagent.experiments"}


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, package in PACKAGES.items():
        for p in sorted((REPO / folder).rglob("*.py")):
            parts = (package, *p.relative_to(REPO / folder).with_suffix("").parts)
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> our modules it imports anywhere in its body (``from pkg import mod`` counts as ``pkg.mod``)."""
    mods = _modules()

    def ours(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            graph[m] |= {t for t in map(ours, targets) if t is not None and t != m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_our_modules():
    graph = import_graph()
    assert len(graph) > 50 and "mazeagent.ppo.train" in graph["mazeagent.ppo.runner"]
    assert cycles(graph) == []


def test_every_module_imports_on_its_own():
    names = sorted(m for m in _modules() if not m.endswith("__main__"))  # __main__ runs the CLI when imported
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\nprint('ok', len(sys.argv) - 1)"
    p = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert p.returncode == 0 and p.stdout.split() == ["ok", str(len(names))], p.stderr[-3000:]


def test_one_import_root():
    """probes/ and experiments/ install under mazeagent.; no module (tests and notebooks included) imports them by
    their folder names, which would load a second copy or collide with a user's own ``experiments`` module."""
    import importlib.util

    bare = []
    for path in [*_modules().values(), *sorted((REPO / "tests").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bare += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("probes", "experiments")]
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        bare += [f"{nb.name}: {line.strip()}" for line in nb.read_text().splitlines()
                 if line.strip().strip('"').startswith(("from probes", "from experiments", "import probes",
                                                          "import experiments"))]
    assert bare == []
    spec = importlib.util.find_spec("mazeagent.experiments.rollouts")
    assert spec is not None and Path(spec.origin) == REPO / "experiments" / "rollouts.py"
    assert "mazeagent.experiments.rollouts" in set().union(*(import_graph()[m] for m in _modules()
                                                               if m.startswith("mazeagent.probes")))
