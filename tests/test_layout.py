"""The shape of the tree: no import circle among bot/'s modules outside the stand-ins (bot/sim/), counting
the imports inside functions too (a deferred import still ties two modules together), and no module of
bot/ over 400 lines unless its docstring says why. Read from the source with `ast`; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in BOT.rglob("*.py"):
        parts = path.relative_to(BOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path], name: str) -> set[str]:
    """The bot modules `path` imports by name anywhere in it (a package's own init, implied by Python's
    import of a submodule, is not counted: it is not a dependency the code chose)."""
    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "bot":
                continue
            for alias in node.names:
                dep = known(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules else known(base)
                deps.add(dep)
        elif isinstance(node, ast.Import):
            deps |= {known(a.name) for a in node.names if a.name.split(".")[0] == "bot"}
    deps.discard(None)
    deps.discard(name)
    return deps


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_outside_the_stand_ins():
    modules = _modules()
    assert "bot.journal.records" in modules and "bot.cli" in modules
    graph = {name: _imports(path, modules, name) for name, path in modules.items()}
    assert "bot.actions.base" in graph["bot.actions.engine"]  # the reader sees imports
    assert "bot.scoring.backends" in graph["bot.scoring.scorer"]  # ... inside functions too
    circles = [c for c in _cycles(graph) if not all(m.startswith("bot.sim.") for m in c)]
    assert circles == []


def test_no_long_module_without_a_reason():
    long = []
    for path in sorted(BOT.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > MAX_LINES:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            if "lines" not in doc.lower():  # the reason says why it is long
                long.append(f"{path.relative_to(BOT.parent)}: {n} lines")
    assert long == []
