"""The modules of ``offmarl.bench`` import one another in one direction: no import circle, not even through an
import inside a function (``ast`` parses them; nothing is imported)."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from test_import_order import PACKAGE, _imports

BENCH = PACKAGE / "bench"


def bench_imports() -> dict[str, set[str]]:
    """``{module: the offmarl.bench modules it imports}`` for every module of the package."""
    graph = {}
    for path in sorted(BENCH.glob("*.py")):
        module = f"offmarl.bench.{path.stem}"
        graph[module] = {name for _, name in _imports(path)
                         if name.startswith("offmarl.bench.") and name != module}
    return graph


def test_bench_modules_import_without_a_circle():
    graph = bench_imports()
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import circle among offmarl.bench modules: {' -> '.join(exc.args[1])}") from None
    # the report's stack, bottom to top: the statistics, the data model, the statistics across tasks, training
    # metrics, plots, tables, the report writer; each may import only those below it
    stack = [f"offmarl.bench.{m}" for m in ("statistics", "records", "aggregates", "run_metrics", "plots", "tables",
                                            "report")]
    for level, module in enumerate(stack):
        assert graph[module] & set(stack) <= set(stack[:level]), f"{module} imports {graph[module] & set(stack)}"


def test_status_takes_nothing_from_the_runner():
    assert "offmarl.bench.runner" not in bench_imports()["offmarl.bench.status"]
