"""Benchmark suites (YAML) x seeds on a local process pool or Ray, paper-style tables and plots.

* :mod:`offmarl.bench.suite` -- the suite file schema, built-in suites (``offmarl/bench/suites``).
* :mod:`offmarl.bench.layout` -- where a suite directory keeps suite.json and each run directory.
* :mod:`offmarl.bench.runner` -- datasets first, then every (dataset, algorithm, seed) in its own run
  directory through ``offmarl train``'s code path; resumable; ``local`` (process pool) or ``ray``.
* :mod:`offmarl.bench.status` -- how far a suite directory has got, read from its run directories.
* :mod:`offmarl.bench.export` -- the runs' evaluations in other tools' formats (marl-eval's JSON).

The report, each module importing only those listed before it:

* :mod:`offmarl.bench.statistics` -- the field's statistics in numpy (IQM, bootstrap CIs, normalized
  aggregates, probability of improvement, performance profiles; Agarwal et al. 2021).
* :mod:`offmarl.bench.records` -- the data model: eval.json records, table cells, curves over seeds.
* :mod:`offmarl.bench.aggregates` -- the statistics across a table's tasks, in normalized scores.
* :mod:`offmarl.bench.run_metrics` -- training metrics of the runs (metrics.csv columns) over seeds.
* :mod:`offmarl.bench.plots` -- learning curves, bar charts and the across-task plots (PNG).
* :mod:`offmarl.bench.tables` -- markdown/CSV tables.
* :mod:`offmarl.bench.report` -- a suite directory's report: writes the tables and the plots.

Command line: ``offmarl bench list | run SUITE | table DIR | status DIR | export DIR | compare DIR A B``
(``offmarl.commands.bench``).
"""

from offmarl.bench.suite import Suite, builtin_suites, load_suite, parse_seeds, parse_suite

__all__ = ["Suite", "builtin_suites", "load_suite", "parse_seeds", "parse_suite"]
