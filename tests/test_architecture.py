"""The package's shape (issue 25's done-when), checked on the source: no module over 450 lines,
no import cycle, the Net and Solver classes at most 250 lines each.

Imports: every `import` and `from ... import` of a netcli module counts, at module level and inside
functions alike (a lazy import only delays a cycle to run time, it does not remove it); only an
`if TYPE_CHECKING:` block is left out. An edge goes to the module named (for `from pkg import name`,
to pkg.name when that is a module, else to pkg); a module's own package's __init__ is not an edge,
as Python has it half-imported already. (netcli/solver/ having no MPI or thread pool:
tests/solver/test_callbacks.py.)"""
import ast
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "netcli")
MAX_LINES = 450
MAX_CLASS_LINES = 250


def _modules():
    out = {}
    for folder, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = "netcli." + os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[dotted.removesuffix(".__init__") if dotted != "netcli.__init__" else "netcli"] = path
    return out


def _type_checking(node):
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree):
    """Every import node, at any depth, outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _type_checking(child))


def import_graph():
    mods = _modules()
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.endswith("__init__.py") else mod.rsplit(".", 1)[0]
        for node in _imports(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                graph[mod].update(a.name for a in node.names if a.name in mods)
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in mods:
                    graph[mod].add(target)
                elif base in mods:
                    graph[mod].add(base)
        graph[mod].discard(mod)
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan's, iterative)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1; stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1; stack.append(w); on.add(w)
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
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_package_imports_form_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_over_450_lines():
    long = {os.path.relpath(p, ROOT): n for p in _modules().values()
            if (n := len(open(p).read().splitlines())) > MAX_LINES}
    assert long == {}


def _class_lines(relpath, name):
    tree = ast.parse(open(os.path.join(ROOT, relpath)).read())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    return cls.end_lineno - cls.lineno + 1


def test_the_net_and_solver_classes_are_small():
    assert _class_lines("net.py", "Net") <= MAX_CLASS_LINES
    assert _class_lines(os.path.join("solver", "solver.py"), "Solver") <= MAX_CLASS_LINES
