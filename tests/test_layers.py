"""The package's layers: no module imports from a layer above its own, and no import circle.

The layers, bottom to top, as the Layout section of docs/contributing.md lists them. A module may import
from its own layer and the ones below; imports under ``if TYPE_CHECKING:`` (annotations only)
are left out of that rule, not out of the search for circles. The package root (`mlplab/__init__.py`) maps
names lazily to every layer and is the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mlplab

SOURCE = Path(mlplab.__file__).parent
LAYERS = [
    ("foundations", {"_version", "lazy", "errors", "files", "choices", "precision", "session", "config", "threads", "device",
                     "memory"}),
    ("building blocks", {"data", "digits", "models", "losses", "torch_internals", "optim", "scratch", "engines",
                         "augment", "metrics"}),
    ("a run", {"runs"}),
    ("training", {"training"}),
    ("what runs are for", {"sweep", "tune", "plots", "experiments", "export", "serve", "studio", "estimator"}),
    ("front ends", {"notebooks", "cli", "__main__"}),
]
LAYER_OF = {unit: index for index, (_, units) in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The top-level package or module under mlplab that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mlplab"


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST, package: str, annotations: bool) -> set[str]:
    """The mlplab modules ``tree`` imports at run time (at the top or inside functions), and with
    ``annotations`` also those it imports for type checkers only."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking(node) and not annotations:
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the package the module is in
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module == "mlplab" or module.startswith("mlplab."):
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names
                             if (SOURCE.parent / module.replace(".", "/") / alias.name).is_dir()
                             or (SOURCE.parent / f"{module.replace('.', '/')}/{alias.name}.py").is_file())
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("mlplab"))
        stack.extend(ast.iter_child_nodes(node))
    return found


def _graph(annotations: bool = False) -> dict[str, set[str]]:
    """module -> the mlplab modules it imports (package notebooks' lab scripts excluded: they are user code)."""
    graph = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = _module_name(path)
        if name.startswith("mlplab.notebooks.") and path.name[0].isdigit():
            continue  # a lab notebook: a user's script, importing mlplab from the top
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        # A module's own packages are always imported before it: naming one is no edge.
        ancestors = {".".join(name.split(".")[:end]) for end in range(1, name.count(".") + 1)}
        graph[name] = _imports(ast.parse(path.read_text()), package, annotations) - {name} - ancestors
    return graph


def test_every_unit_of_the_package_has_a_layer():
    units = {_unit(module) for module in _graph()} - {"mlplab"}
    assert units == set(LAYER_OF), f"add to LAYERS (and the Layout in docs/contributing.md): {units ^ set(LAYER_OF)}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{module} -> {imported}" for module, imports in _graph().items() if _unit(module) != "mlplab"
              for imported in imports
              if _unit(imported) != "mlplab" and LAYER_OF[_unit(imported)] > LAYER_OF[_unit(module)]]
    assert not upward, "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for neighbour in graph.get(node, ()):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_circle_between_modules_or_between_packages():
    graph = _graph(annotations=True)  # a circle through annotations only is a circle of the design still
    assert not _cycles(graph)
    between_units: dict[str, set[str]] = {}
    for module, imports in graph.items():
        between_units.setdefault(_unit(module), set()).update(_unit(imported) for imported in imports
                                                              if _unit(imported) != _unit(module))
    between_units.pop("mlplab", None)  # the root maps names lazily to every layer
    assert not _cycles({unit: targets - {"mlplab"} for unit, targets in between_units.items()})


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
