"""The package layers hold: no module imports a package above its own, and no import cycle between modules.

The rules are the README's "Layers" section, read from the source with `ast` (generated code under `v1/` and
`store/etcdpb/` is left out as importer). Imports under `if TYPE_CHECKING:` do not count; function-local ones do.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "plasmavmc"

# Rank of each top-level package or module: an import may point to the same rank or below, never above.
RANK = {
    "errors": 0, "types": 0, "validation": 0, "config": 0, "observe": 0, "shutdown": 0, "grpc_tls": 0, "v1": 0,
    "pki": 0, "version": 0, "sdnotify": 0, "validation_reports": 0, "limits": 0, "fdwait": 0, "relay": 0,
    "wire": 1,
    "store": 2, "hypervisor": 2, "network": 2, "images": 2, "scheduler": 2, "iam": 2,
    "core": 3,
    "api": 4, "agent": 4, "client": 4,
    "server": 5, "cli": 5,
}  # fmt: skip
# Pairs of the same or a lower rank that are forbidden all the same.
FORBIDDEN = {
    "store": {"hypervisor", "network", "images", "scheduler", "iam"},
    "hypervisor": {"store", "network", "images", "scheduler", "iam"},
    "network": {"store", "hypervisor", "images", "scheduler", "iam"},
    "images": {"hypervisor", "network", "scheduler", "iam"},
    "scheduler": {"hypervisor", "network", "images", "iam"},
    "agent": {"core", "api", "client"},
    "api": {"agent", "client"},
    "client": {"core", "api", "agent", "store", "hypervisor", "network", "images", "scheduler", "iam"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _generated(mod: str) -> bool:
    return any(p in ("v1", "etcdpb") for p in mod.split(".")) or mod.endswith(("_pb2", "_pb2_grpc"))


def _imports(path: Path, mod: str) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    skipped = {
        id(n) for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)
    }  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            found += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return found


def _graph() -> tuple[dict[str, Path], dict[str, set[str]], list[str]]:
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    upward = []
    for mod, path in sorted(modules.items()):
        if _generated(mod):
            continue
        top = mod.split(".")[1] if "." in mod else ""
        for name, line in _imports(path, mod):
            if not name.startswith("plasmavmc."):
                continue
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if not target or target == mod:
                continue
            graph[mod].add(target)
            other = target.split(".")[1] if "." in target else ""
            if top == other or not top or not other:
                continue
            if RANK.get(other, 0) > RANK.get(top, 0) or other in FORBIDDEN.get(top, set()):
                upward.append(f"{path.relative_to(SRC.parent)}:{line} ({top}) imports {target} ({other})")
    return modules, graph, upward


def test_every_top_level_package_has_a_rank() -> None:
    tops = {p.stem for p in SRC.glob("*.py")} | {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert tops - {"__init__"} <= set(RANK), f"give these a rank in RANK and the README: {tops - set(RANK)}"


def test_no_import_points_up_a_layer() -> None:
    _, _, upward = _graph()
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    _, graph, _ = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
