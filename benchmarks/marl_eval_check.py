"""Feed a document written by ``offmarl bench export DIR --format marl-eval`` to marl-eval itself (results in
BENCHMARKS.md).

marl-eval's package (``id-marl-eval``) pins versions that do not install beside offmarl's (pandas 1.4 has no
wheel for Python 3.11), so this script imports nothing of offmarl and runs in a separate environment: one where
``id-marl-eval`` installs, or any Python with numpy and colorama and marl-eval's source folder on ``sys.path``
(``--marl-eval-src``; only its data-processing modules are used). It runs, on every environment of the document,
what marl-eval's README does before plotting: ``DiagnoseData(raw).check_data()``, ``data_process_pipeline`` with
``mean_episode_return`` normalised, ``create_matrices_for_rliable`` and ``get_and_aggregate_data_single_task``
for each task, and fails when any of them refuses the document::

    .venv/bin/offmarl bench export runs/quick --format marl-eval --out quick.json
    /tmp/marl-eval-venv/bin/python benchmarks/marl_eval_check.py quick.json [--marl-eval-src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys

RETURN_METRIC = "mean_episode_return"


def check(document: dict) -> list[str]:
    """One line per environment and task saying what marl-eval computed from ``document``."""
    from marl_eval.utils.data_processing_utils import (
        create_matrices_for_rliable,
        data_process_pipeline,
        get_and_aggregate_data_single_task,
    )
    from marl_eval.utils.diagnose_data_errors import DiagnoseData

    lines = []
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        diagnosis = DiagnoseData(copy.deepcopy(document)).check_data()
    for env, checks in diagnosis.items():
        if not all(checks.values()):
            raise SystemExit(f"DiagnoseData: {env}: {checks}\n{printed.getvalue()}")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        processed = data_process_pipeline(raw_data=copy.deepcopy(document), metrics_to_normalize=[RETURN_METRIC])
    if "extra" not in processed:  # the pipeline prints its error and hands back the raw data
        raise SystemExit(f"data_process_pipeline refused the document:\n{printed.getvalue()}")
    for env, tasks in document.items():
        matrices, curves = create_matrices_for_rliable(copy.deepcopy(processed), env, [RETURN_METRIC])
        shapes = {metric: {algo: list(values.shape) for algo, values in by_algo.items()}
                  for metric, by_algo in matrices.items()}
        lines.append(f"{env}: runs x tasks per metric and algorithm {json.dumps(shapes)}")
        for task in tasks:
            aggregated = get_and_aggregate_data_single_task(copy.deepcopy(processed), RETURN_METRIC,
                                                            [RETURN_METRIC], task, env)
            means = {algo: [round(float(m), 3) for m in v["mean"]] for algo, v in aggregated.items() if algo != "extra"}
            lines.append(f"  {task}: normalised mean return per evaluation step {json.dumps(means)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", help="the JSON file offmarl bench export wrote")
    parser.add_argument("--marl-eval-src", help="marl-eval's source folder (the one holding marl_eval/)")
    args = parser.parse_args()
    if args.marl_eval_src:
        sys.path.insert(0, args.marl_eval_src)
    with open(args.document) as f:
        document = json.load(f)
    print("\n".join(check(document)))
    print("marl-eval read the document: DiagnoseData valid, pipeline, rliable matrices and per-task aggregates built")


if __name__ == "__main__":
    main()
