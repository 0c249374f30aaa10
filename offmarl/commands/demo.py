"""``offmarl demo``: the built-in ``quick`` bench suite, i.e. ``offmarl bench run quick --out OUT``.

``make demo`` runs ``offmarl bench run quick`` directly; this command stays as the same job under a short
name. The quick suite is Tseng et al. Table 1 in miniature -- small ``tseng/equal_space`` and
``tseng/fill_in`` datasets, bc / idt / madt / distill, 3 seeds -- and prints the table with the paths of
the table and the plots (``offmarl/bench/suites/quick.yaml`` states its scale). It is a miniature, not a
claim: the budgets are tiny and the numbers say little about the methods' ranking at full scale.
"""

from __future__ import annotations

from pathlib import Path


def run_demo(out: Path) -> None:
    from offmarl.commands.bench import run_bench

    run_bench(suite="quick", out=Path(out))
