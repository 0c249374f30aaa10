"""Benchmark suites (YAML) x seeds on a local process pool or Ray, paper-style tables and plots.

* :mod:`offmarl.bench.suite` -- the suite file schema, built-in suites (``offmarl/bench/suites``).
* :mod:`offmarl.bench.runner` -- datasets first, then every (dataset, algorithm, seed) in its own run
  directory through ``offmarl train``'s code path; resumable; ``local`` (process pool) or ``ray``.
* :mod:`offmarl.bench.tables` -- markdown/CSV tables from eval.json files only.
* :mod:`offmarl.bench.plots` -- learning curves and bar charts (PNG).

Command line: ``offmarl bench list | run SUITE | table DIR`` (``offmarl.commands.bench``).
"""

from offmarl.bench.suite import Suite, builtin_suites, load_suite, parse_seeds, parse_suite

__all__ = ["Suite", "builtin_suites", "load_suite", "parse_seeds", "parse_suite"]
