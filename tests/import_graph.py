"""The product's import graph, read from the source (every import, at module level or inside
a function; not those under ``if TYPE_CHECKING:``, which never run): module -> the product
modules and third-party top-level packages it imports."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "services", "tasks", "web", "cli", "workers", "autoscaler")


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


@lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for name, path in known.items():
        out = set()
        for node in _run_time_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from package import module`` imports that module (and the package's
                # __init__, which a name from it would need: counted when a name is not a module).
                submodules = [f"{node.module}.{alias.name}" for alias in node.names
                              if f"{node.module}.{alias.name}" in known]
                out.update(submodules)
                if len(submodules) < len(node.names):
                    out.add(node.module)
        edges[name] = {m if m in known else m.split(".")[0] for m in out if m != name}
    return edges


def _run_time_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def reachable(start: str) -> set[str]:
    """Everything ``start`` imports, directly or through other product modules."""
    edges, seen, todo = graph(), set(), [start]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def cycles() -> list[set[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    edges = {name: {t for t in targets if t in modules()} for name, targets in graph().items()}
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(group)

    for name in edges:
        if name not in index:
            visit(name)
    return found
