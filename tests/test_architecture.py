"""The architecture, checked: every module's imports read with ``ast`` (docs/architecture.md).

- no import cycle between modules (imports inside functions count: they are still arrows);
- layers import only downwards: ``cli``/``api``/``web``/``worker`` → ``services`` → ``storage``
  → ``records``; ``ingest`` → ``storage``, ``records``; everything may use ``nppes``, ``normalize``,
  ``settings``, ``errors``;
- only ``storage`` imports a database driver (sqlite3, psycopg, redis);
- only ``api`` (and a future ``web``) imports FastAPI or Starlette;
- ``records`` (the data model) imports nothing with I/O;
- nothing outside ``storage`` (nor any test but storage's own) calls a store's underscore methods.

Each rule is a function over an import graph, so that ``test_the_rules_catch_a_bad_import`` can
show that each one fails on a graph with a bad import added.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TESTS = ROOT / "tests"

# Which top-level packages each one may import from npistack (besides itself). Modules directly
# under npistack (errors, settings, outbound, redact) are their own "packages" here.
BASE = {"errors", "settings", "nppes", "normalize"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "settings": {"errors"},
    "redact": set(),
    "normalize": {"errors"},
    "nppes": {"errors", "settings", "normalize"},
    "records": {"errors", "nppes", "normalize"},
    "outbound": {"errors", "settings"},
    "storage": BASE | {"records"},
    "ingest": BASE | {"records", "storage", "outbound", "redact"},
    "services": BASE | {"records", "storage", "outbound", "redact"},
    "worker": BASE | {"records", "storage", "services", "outbound", "redact"},
    "api": BASE | {"records", "storage", "services", "outbound", "redact"},
    "web": BASE | {"records", "storage", "services", "api", "redact"},
    "cli": BASE | {"records", "storage", "services", "ingest", "api", "worker", "outbound", "redact"},
}
# ``npistack/__init__.py`` (the version) may be imported by anyone.
ANYONE = {"npistack"}

DRIVERS = {"sqlite3", "psycopg", "psycopg_pool", "psycopg2", "redis"}
WEB_FRAMEWORKS = {"fastapi", "starlette"}
# What the data model may not import: anything that reads or writes outside the process.
IO_MODULES = DRIVERS | {
    "httpx",
    "requests",
    "urllib",
    "http",
    "socket",
    "subprocess",
    "zipfile",
    "shutil",
    "tempfile",
    "openpyxl",
    "duckdb",
    "pyarrow",
}
# The modules of nppes the data model may use (nppes.reader and the synthesizers read and write files).
RECORDS_NPPES = {
    "npistack.nppes.layout",
    "npistack.nppes.lines",
    "npistack.nppes.npi",
    "npistack.nppes.taxonomy",
}
# Tests of storage itself, which may look underneath the store's public methods.
# Storage's own tests, and the one test module that may speak SQL (see its docstring).
STORAGE_TESTS = {"tests/test_store.py", "tests/storage_sql.py"}


@dataclass
class Graph:
    """Modules (dotted names) and their imports: ``edges[m]`` the npistack modules ``m`` imports,
    ``external[m]`` the top-level names of the others."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    external: dict[str, set[str]] = field(default_factory=dict)


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names a module imports (``from a import b``: ``a.b``, which is resolved to a
    module or to ``a`` later); relative imports resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix
            yield from (f"{prefix}.{a.name}" for a in node.names)


def build_graph(src: Path = SRC) -> Graph:
    g = Graph()
    trees: dict[str, tuple[ast.AST, bool]] = {}
    for path in sorted(src.rglob("*.py")):
        name, is_package = _module_name(path)
        g.modules[name] = path
        trees[name] = (ast.parse(path.read_text(), str(path)), is_package)
    for name, (tree, is_package) in trees.items():
        add_imports(g, name, _imports(tree, name, is_package))
    return g


def add_imports(g: Graph, module: str, names: Iterable[str]) -> None:
    edges, external = g.edges.setdefault(module, set()), g.external.setdefault(module, set())
    for full in names:
        if full.split(".")[0] != "npistack":
            external.add(full.split(".")[0])
            continue
        # the most specific module the name is (``from a import b``: a.b if it is a module, else a)
        target = full
        while target and target not in g.modules:
            target = target.rpartition(".")[0]
        if target and target != module:
            edges.add(target)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


# -- the rules: each returns what breaks it ------------------------------------------------------


def cycles(g: Graph) -> list[list[str]]:
    """Strongly connected groups of modules (import cycles), each sorted. A package's
    ``__init__`` importing its own modules and a module importing its package's ``__init__`` are
    not cycles by themselves (Python initializes the package first), so edges from a module to a
    package that contains it are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def succ(v: str) -> list[str]:
        return sorted(w for w in g.edges.get(v, ()) if not v.startswith(w + "."))

    for root in sorted(g.modules):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(succ(root)))]
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
                    work.append((w, iter(succ(w))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    group.append(x)
                    if x == v:
                        break
                if len(group) > 1:
                    out.append(sorted(group))
    return out


def wrong_layers(g: Graph) -> list[str]:
    out = []
    for m, targets in sorted(g.edges.items()):
        allowed = ALLOWED.get(layer(m))
        for t in sorted(targets):
            if t in ANYONE or layer(t) == layer(m):
                continue
            if allowed is None or layer(t) not in allowed:
                out.append(f"{m} imports {t} ({layer(m)} may import {sorted(allowed or [])})")
    return out


def drivers_outside_storage(g: Graph) -> list[str]:
    return [
        f"{m} imports {x}"
        for m, ext in sorted(g.external.items())
        for x in sorted(ext & DRIVERS)
        if layer(m) != "storage"
    ]


def web_outside_api(g: Graph) -> list[str]:
    return [
        f"{m} imports {x}"
        for m, ext in sorted(g.external.items())
        for x in sorted(ext & WEB_FRAMEWORKS)
        if layer(m) not in ("api", "web")
    ]


def records_with_io(g: Graph) -> list[str]:
    out = []
    for m in sorted(g.modules):
        if layer(m) != "records":
            continue
        out += [f"{m} imports {x}" for x in sorted(g.external.get(m, set()) & IO_MODULES)]
        out += [
            f"{m} imports {t}"
            for t in sorted(g.edges.get(m, ()))
            if layer(t) == "nppes" and t not in RECORDS_NPPES and t != "npistack.nppes"
        ]
    return out


def store_private_methods(src: Path = SRC) -> set[str]:
    """Underscore methods defined by the store classes (every class in storage/)."""
    names: set[str] = set()
    for path in (src / "npistack" / "storage").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        n = item.name
                        if n.startswith("_") and not n.startswith("__"):
                            names.add(n)
    return names


def private_store_calls(paths: Iterable[Path], private: set[str]) -> list[str]:
    """``x._name`` where ``_name`` is a store's underscore method and ``x`` is not ``self``/``cls``."""
    out = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                out.append(f"{where}:{node.lineno}: .{node.attr}")
    return out


def _outside_storage() -> list[Path]:
    src = [p for p in SRC.rglob("*.py") if "storage" not in p.relative_to(SRC / "npistack").parts[:1]]
    tests = [p for p in TESTS.rglob("*.py") if str(p.relative_to(ROOT)) not in STORAGE_TESTS]
    return sorted(src + tests)


# -- the tests -------------------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    assert cycles(build_graph()) == []


def test_layers_import_only_downwards() -> None:
    assert wrong_layers(build_graph()) == []


def test_only_storage_imports_a_database_driver() -> None:
    assert drivers_outside_storage(build_graph()) == []


def test_only_the_api_imports_fastapi_or_starlette() -> None:
    assert web_outside_api(build_graph()) == []


def test_the_data_model_does_no_io() -> None:
    assert records_with_io(build_graph()) == []


def test_no_store_underscore_methods_outside_storage() -> None:
    private = store_private_methods()
    assert {"_query", "_exec", "_bulk_insert", "_begin", "_commit"} <= private  # the scan sees them
    assert private_store_calls(_outside_storage(), private) == []


def test_the_graph_is_read() -> None:
    g = build_graph()
    assert "npistack.storage.base" in g.modules and "npistack.records.rows" in g.modules
    assert "npistack.records.rows" in g.edges["npistack.storage.loads"]
    assert "sqlite3" in g.external["npistack.storage.sqlite"]


def test_the_rules_catch_a_bad_import(tmp_path: Path) -> None:
    """Each rule fails once a bad import is added to the real graph."""
    bad = [
        (cycles, "npistack.records.rows", "npistack.records.npidata"),  # npidata imports rows
        (wrong_layers, "npistack.storage.base", "npistack.ingest.load"),
        (wrong_layers, "npistack.api.routes.jobs", "npistack.worker.jobs"),
        (drivers_outside_storage, "npistack.services.accounts", "redis"),
        (web_outside_api, "npistack.services.lookup", "fastapi.responses"),
        (records_with_io, "npistack.records.keys", "httpx"),
        (records_with_io, "npistack.records.keys", "npistack.nppes.reader"),
    ]
    for rule, module, name in bad:
        g = build_graph()
        assert not rule(g), (rule.__name__, rule(g))
        add_imports(g, module, [name])
        assert rule(g), (rule.__name__, module, name)
    code = tmp_path / "bad.py"
    code.write_text("def f(store):\n    return store._query('SELECT 1')\n")
    assert private_store_calls([code], store_private_methods()) != []


def _all_exceptions() -> list[type[BaseException]]:
    import importlib
    import inspect

    out = []
    for name in sorted(build_graph().modules):
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                out.append(obj)
    return out


def test_one_exception_tree_drawn_in_errors() -> None:
    """Every exception class of the package is an ``NpistackError`` and is drawn in errors.py."""
    from npistack import errors

    classes = _all_exceptions()
    assert len(classes) > 20  # the scan finds them
    assert [c.__qualname__ for c in classes if not issubclass(c, errors.NpistackError)] == []
    drawn = errors.__doc__ or ""
    assert [c.__qualname__ for c in classes if c.__qualname__ not in drawn] == []
    # and the drawing shows each one under its real parent (the nearest npistack class above it)
    lines = drawn.splitlines()
    for c in classes:
        parent = next((b for b in c.__mro__[1:] if issubclass(b, errors.NpistackError)), None)
        if parent is None or parent is errors.NpistackError or c.__qualname__.startswith("_"):
            continue
        at = next(i for i, ln in enumerate(lines) if f" {c.__qualname__} " in f" {ln} ")
        above = next(ln for ln in reversed(lines[:at]) if ln.find("─") < lines[at].find("─"))
        assert f" {parent.__qualname__} " in f" {above} ", (c.__qualname__, parent.__qualname__, above)
