"""The ``offmarl`` command line. Each command is a thin wrapper over ``offmarl.commands.<name>``.

Errors a user can fix (bad dataset, checkpoint or model file, unknown name, bad option) print one line
``error: ...`` and exit 2; set ``OFFMARL_DEBUG=1`` to see the traceback. Warnings print as one line
``warning: ...`` too.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from offmarl import __version__
from offmarl.errors import DiskFullError, one_line

app = typer.Typer(
    help="offmarl: offline and decentralized multi-agent RL -- environments, datasets, algorithms, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal brackets ("50%[r,r,r]", "offmarl[highway]")
)
envs_app = typer.Typer(help="List the environments, or render an episode of one.", invoke_without_command=True)
bench_app = typer.Typer(help="Run benchmark suites (datasets x algorithms x seeds) and aggregate their tables.",
                        no_args_is_help=True)
pool_app = typer.Typer(help="Policy pools: an online run's checkpoint series binned by return into levels r/m/e.",
                       no_args_is_help=True)
import_app = typer.Typer(help="Convert another library's dataset into an offmarl dataset file.", no_args_is_help=True)
export_app = typer.Typer(help="Write an offmarl dataset file in another library's format.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
app.add_typer(bench_app, name="bench")
app.add_typer(pool_app, name="pool")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError, RuntimeError, ImportError,
               DiskFullError)


def _fail(exc: BaseException) -> None:
    if os.environ.get("OFFMARL_DEBUG", "0") not in ("", "0"):
        raise exc
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    # one line whatever the message (torch's, for one, spans several)
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code=2)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except typer.Exit:
        raise
    except USER_ERRORS as exc:
        _fail(exc)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"offmarl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """offmarl: offline and decentralized multi-agent RL."""


# ---- envs ------------------------------------------------------------------------------------------
@envs_app.callback()
def envs_list(ctx: typer.Context,
              as_json: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> None:
    """List every environment with its agents, spaces, horizon and source (native or an extra)."""
    if ctx.invoked_subcommand is None:
        from offmarl.commands.envs import run_list

        _run(run_list, as_json=as_json)


@envs_app.command("render")
def envs_render(
    name: str = typer.Argument(..., help="Environment name (see `offmarl envs`)."),
    policy: str = typer.Option("random", "--policy", help="Behaviour policy: random, expert, ... or a run directory."),
    out: Path = typer.Option(Path("episode.gif"), "--out", help="Output GIF path."),
    seed: int = typer.Option(0, "--seed", help="Environment and policy seed."),
    fps: int = typer.Option(8, "--fps", help="Frames per second of the GIF."),
    env_set: List[str] = typer.Option([], "--env-set", help="Environment keyword argument key=value (repeatable)."),
) -> None:
    """Write an animation of one episode of NAME played by a policy."""
    from offmarl.commands.envs import run_render

    _run(run_render, name=name, policy=policy, out=out, seed=seed, fps=fps, env_set=env_set)


# ---- data --------------------------------------------------------------------------------------------
@app.command()
def collect(
    env: Optional[str] = typer.Argument(None, help="Environment name (omit with --recipe or --list)."),
    policy: Optional[str] = typer.Option(None, "--policy",
                                         help="Behaviour policy (random, expert, ...; default expert)."),
    tier: Optional[str] = typer.Option(None, "--tier", help="Quality tier: good | normal | poor."),
    composition: Optional[str] = typer.Option(None, "--composition",
                                              help='Per-agent levels, e.g. "50%[r,r,r]+50%[r,r,m]" (r/m/e).'),
    per_agent: bool = typer.Option(False, "--per-agent",
                                   help="Write per-agent datasets (MABCQ mixture), one group per agent."),
    state_only: bool = typer.Option(False, "--state-only",
                                    help="Write observations without actions (DM2 demonstrations)."),
    episodes: int = typer.Option(100, "--episodes", help="Number of episodes."),
    seed: int = typer.Option(0, "--seed", help="Seed of the env, the policy and the mixing."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output HDF5 path."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="A named recipe of the papers (see --list)."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply the recipe's episode count."),
    list_recipes: bool = typer.Option(False, "--list", help="List the named recipes and exit."),
    num_envs: int = typer.Option(256, "--num-envs", help="Sub-environments stepped together."),
    env_set: List[str] = typer.Option([], "--env-set", help="Environment keyword argument key=value (repeatable)."),
    pool: Optional[List[Path]] = typer.Option(None, "--pool", help="A policy pool (see `offmarl pool`): the levels "
                                              "r/m/e of --composition / --per-agent are its checkpoints; else its best "
                                              "checkpoint is the expert (of --tier too). Repeat it once per agent for "
                                              "agent i to act as pool i's expert."),
    normalization_episodes: int = typer.Option(256, "--normalization-episodes",
                                               help="Episodes of the random policy (and the behaviour expert) "
                                                    "measured for the card's normalization returns (0: none)."),
) -> None:
    """Roll out a behaviour policy in an environment and write a dataset (HDF5 + card)."""
    from offmarl.commands.collect import run_collect

    _run(run_collect, env=env, policy=policy, tier=tier, composition=composition, per_agent=per_agent,
         state_only=state_only, episodes=episodes, seed=seed, out=out, recipe=recipe, scale=scale,
         list_recipes=list_recipes, num_envs=num_envs, env_set=env_set, pool=pool,
         normalization_episodes=normalization_episodes)


# ---- policy pools -------------------------------------------------------------------------------------
@pool_app.command("bin")
def pool_bin(
    run: Path = typer.Argument(..., help="An online run directory with a checkpoint series."),
    out: Path = typer.Option(..., "--out", help="The pool directory to write."),
    split: str = typer.Option("sit", "--split", help="sit (30/40/30 %), thirds, or fractions like 0.3,0.4,0.3."),
    episodes: int = typer.Option(100, "--episodes", help="Episodes each checkpoint plays to be binned."),
    seed: int = typer.Option(0, "--seed", help="Seed of those episodes."),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="A value learner's ε-greedy ε (default: DM2 "
                                            "Table 1's for its map, else 0)."),
    floor: str = typer.Option("random", "--floor", help="Where the return range starts: random (the uniform "
                              "random policy's return, SIT App. C.2) or lowest (the lowest checkpoint's)."),
) -> None:
    """Bin a run's checkpoint series into random / medium / expert levels by the return each plays."""
    from offmarl.commands.pool import run_pool_bin

    _run(run_pool_bin, run=run, out=out, split=split, episodes=episodes, seed=seed, epsilon=epsilon, floor=floor)


@pool_app.command("build")
def pool_build(
    env: str = typer.Argument(..., help="Environment (see `offmarl envs`)."),
    algo: str = typer.Option(..., "--algo", help="Online learner: ippo, mappo or qmix."),
    steps: int = typer.Option(..., "--steps", help="Training frames."),
    seed: int = typer.Option(0, "--seed", help="Seed of the training run."),
    env_set: List[str] = typer.Option([], "--env-set", help="Environment keyword argument key=value (repeatable)."),
    sets: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Hyper-parameter preset of the algorithm."),
    num_envs: int = typer.Option(8, "--num-envs", help="Sub-environments stepped together."),
    series_every: int = typer.Option(50_000, "--series-every", help="Frames between the pool's checkpoints."),
    eval_episodes: int = typer.Option(32, "--eval-episodes", help="Greedy episodes of each checkpoint's evaluation."),
    split: str = typer.Option("sit", "--split", help="sit (30/40/30 %), thirds, or fractions like 0.3,0.4,0.3."),
    episodes: int = typer.Option(100, "--episodes", help="Episodes each checkpoint plays to be binned."),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="A value learner's ε-greedy ε."),
) -> None:
    """Train an online learner keeping a checkpoint series, then bin it (cached in $OFFMARL_HOME/pools)."""
    from offmarl.commands.pool import run_pool_build

    _run(run_pool_build, env=env, algo=algo, steps=steps, seed=seed, env_set=env_set, sets=sets, preset=preset,
         num_envs=num_envs, series_every=series_every, eval_episodes=eval_episodes, split=split, episodes=episodes,
         epsilon=epsilon)


@pool_app.command("show")
def pool_show(
    pool: Path = typer.Argument(..., help="A pool directory."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw return vs checkpoint to this PNG."),
) -> None:
    """List a pool's levels, checkpoints and returns."""
    from offmarl.commands.pool import run_pool_show

    _run(run_pool_show, pool=pool, plot=plot)


@pool_app.command("ship")
def pool_ship(
    pool: Path = typer.Argument(..., help="A built pool: its directory, or the cache directory holding its pool/ "
                                "($OFFMARL_HOME/pools/<env>/<algo>-<digest>-seed<k>)."),
    to: Optional[Path] = typer.Option(None, "--to", help="The shipped pools' directory (default: the checkout's "
                                      "pools/)."),
) -> None:
    """Copy a built pool, its checkpoints policy-only, into the checkout's pools/ (to commit: a fresh clone has it)."""
    from offmarl.commands.pool import run_pool_ship

    _run(run_pool_ship, pool=pool, to=to)


@app.command("sit-report")
def sit_report(
    run: Path = typer.Argument(..., help="A run directory of `offmarl train sit` (past its Stage II)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the figures and sit_report.json "
                                       "(default RUN/sit_report)."),
) -> None:
    """Plot a sit run's decomposed weighted reward per agent over Stage I and the priority histograms per agent
    within each type's replay; tabulate them per agent (and per behaviour level when the dataset records it)."""
    from offmarl.commands.sit_report import run_sit_report

    _run(run_sit_report, run=run, out=out)


@app.command()
def info(
    path: Path = typer.Argument(..., help="Dataset file (HDF5)."),
    as_json: bool = typer.Option(False, "--json",
                                 help="Print the card as JSON (with episodes, return_mean, return_std)."),
    agent: Optional[int] = typer.Option(None, "--agent", help="Agent group of a per-agent dataset."),
) -> None:
    """Validate a dataset and print its card and statistics."""
    from offmarl.commands.info import run_info

    _run(run_info, path=path, as_json=as_json, agent=agent)


@import_app.command("og-marl")
def import_og_marl(
    vault: Path = typer.Argument(..., help="An OG-MARL vault: its <scenario>.vlt folder (with --uid) or one of its "
                                 "<uid> folders."),
    out: Path = typer.Option(..., "--out", help="Output HDF5 path."),
    uid: Optional[str] = typer.Option(None, "--uid", help="The vault's dataset (Good, Medium, Poor, Replay, ...); "
                                      "may be omitted when it holds one."),
    task: Optional[str] = typer.Option(None, "--task", help="Names the card's environment external:TASK (default: "
                                       "the vault folder's name without .vlt)."),
    compression: Optional[str] = typer.Option(None, "--compression", help="lzf or gzip (default: none)."),
) -> None:
    """Convert an OG-MARL dataset (a flashbax Vault) into an offmarl dataset file; needs offmarl[og-marl]."""
    from offmarl.commands.interop import run_import_og_marl

    _run(run_import_og_marl, vault=vault, out=out, uid=uid, task=task, compression=compression)


@export_app.command("og-marl")
def export_og_marl(
    dataset: Path = typer.Argument(..., help="Dataset file (HDF5)."),
    out: Path = typer.Option(..., "--out", help="The vault folder (<scenario>.vlt) to write the dataset into."),
    uid: Optional[str] = typer.Option(None, "--uid", help="The dataset's name in the vault (default: the file's "
                                      "stem); an existing one is replaced."),
    agent: Optional[int] = typer.Option(None, "--agent", help="Agent group of a per-agent dataset."),
) -> None:
    """Write an offmarl dataset as an OG-MARL vault dataset (flashbax Vault); needs offmarl[og-marl]."""
    from offmarl.commands.interop import run_export_og_marl

    _run(run_export_og_marl, dataset=dataset, out=out, uid=uid, agent=agent)


# ---- training and evaluation -------------------------------------------------------------------------
@app.command()
def train(
    algo: Optional[str] = typer.Argument(None, help="Algorithm name (see `offmarl train --list`)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset path or recipe name (offline learners)."),
    env: Optional[str] = typer.Option(None, "--env", help="Environment of an online learner (see `offmarl envs`)."),
    env_set: List[str] = typer.Option([], "--env-set", help="Environment keyword argument key=value (repeatable)."),
    num_envs: int = typer.Option(8, "--num-envs", help="Sub-environments an online learner steps together."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory."),
    seed: int = typer.Option(0, "--seed", help="Seed of everything."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Step budget, replacing the paper default: gradient "
                                        "updates offline, environment frames online."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply the default number of steps."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of config overrides."),
    sets: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    ablation: Optional[str] = typer.Option(None, "--ablation", help="Ablation switch set of the algorithm."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Variant of the algorithm."),
    preset: Optional[str] = typer.Option(None, "--preset",
                                         help="Hyper-parameter preset of the algorithm (e.g. tseng, sit)."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Appended to the run's label (distill@TAG) in eval.json, "
                                      "config.json and the default run directory: tells apart runs that differ in "
                                      "overrides."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 (autocast)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's last checkpoint."),
    eval_episodes: int = typer.Option(32, "--eval-episodes", help="Episodes of the final evaluation (0: none)."),
    eval_every: int = typer.Option(0, "--eval-every",
                                   help="Evaluate every N steps for the learning curve (0: end only)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Write a checkpoint every N steps."),
    series_every: Optional[int] = typer.Option(None, "--series-every", help="Keep a numbered, evaluated copy of the "
                                               "algorithm every N steps in checkpoints/series/ (default: every "
                                               "100000 frames online, none offline; 0: none)."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="Weights the final evaluation scores: last, or "
                                   "best (the best --eval-every evaluation, scored on held-out episodes)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (default: torch's, one per "
                                          "core; 1 on a machine shared with other jobs)."),
    list_algos: bool = typer.Option(False, "--list", help="List the algorithms and exit."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train an algorithm on a dataset (or online in an env), writing checkpoints, metrics.csv and eval.json to
    the run directory."""
    from offmarl.commands.train import run_train

    _run(run_train, algo=algo, dataset=dataset, env=env, env_set=env_set, num_envs=num_envs, out=out, seed=seed,
         steps=steps, scale=scale, config=config,
         sets=sets, ablation=ablation, variant=variant, preset=preset, precision=precision, resume=resume,
         eval_episodes=eval_episodes, eval_every=eval_every, checkpoint_every=checkpoint_every, device=device,
         threads=threads, list_algos=list_algos, quiet=quiet, tag=tag, checkpoint=checkpoint,
         series_every=series_every)


@app.command()
def finetune(
    run: Path = typer.Argument(..., help="An offline run directory of distill, idt, madt or bc (`offmarl train`)."),
    algo: str = typer.Option("mappo", "--algo", help="The online algorithm: mappo (Tseng et al. §4.3)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Environment frames of online training (default: "
                                        "Table 10's 10 online epochs of 64 episodes)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: finetune[ALGO]/seed<k> beside "
                                       "RUN)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of everything (default: RUN's)."),
    weights: str = typer.Option("last", "--weights", help="RUN's weights to start from: last or best."),
    num_envs: int = typer.Option(8, "--num-envs", help="Sub-environments stepped together."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of config overrides (finetune's "
                                          "fields; see docs/training.md)."),
    sets: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    eval_episodes: int = typer.Option(32, "--eval-episodes", help="Episodes of each evaluation (0: none)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Frames between evaluations (default: a "
                                             "tenth of the budget); step 0 is the offline policy's."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Write a checkpoint every N frames (at "
                                         "the first update after each multiple)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's last checkpoint."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Appended to the run's label (finetune[madt]@TAG)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Continue an offline run online with MAPPO: its policy becomes the actor, a fresh centralized critic is added;
    the learning curve starts at the offline policy's return."""
    from offmarl.commands.finetune import run_finetune

    _run(run_finetune, run=run, algo=algo, steps=steps, out=out, seed=seed, weights=weights, num_envs=num_envs,
         config=config, sets=sets, eval_episodes=eval_episodes, eval_every=eval_every,
         checkpoint_every=checkpoint_every, resume=resume, device=device, threads=threads, quiet=quiet, tag=tag)


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="Run directory written by `offmarl train`."),
    episodes: int = typer.Option(32, "--episodes", help="Episodes, run as one batch."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Evaluation seed (default 12345; 54321 for --checkpoint "
                                       "best, whose selection used 12345's episodes)."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="last: the final weights; best: the best "
                                   "evaluation during training (RUN/best)."),
    target_return: Optional[float] = typer.Option(None, "--target-return",
                                                  help="Per-agent target return of return-conditioned policies."),
    render: Optional[Path] = typer.Option(None, "--render", help="Write a GIF of one episode."),
) -> None:
    """Evaluate a trained run's policies in its environment and write eval.json."""
    from offmarl.commands.train import run_eval

    _run(run_eval, run_dir=run_dir, episodes=episodes, seed=seed, target_return=target_return, render=render,
         checkpoint=checkpoint)


# ---- benchmarks ----------------------------------------------------------------------------------------
@bench_app.command("list")
def bench_list() -> None:
    """List the built-in suites."""
    from offmarl.commands.bench import run_bench_list

    _run(run_bench_list)


@bench_app.command("run")
def bench_run(
    suite: str = typer.Argument(..., help="Built-in suite name or a YAML file."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="N (seeds 0..N-1) or a list 3,7."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel runs (default: number of cores)."),
    backend: str = typer.Option("local", "--backend", help="local or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address."),
    out: Path = typer.Option(Path("runs"), "--out", help="Runs directory."),
    scale: Optional[float] = typer.Option(None, "--scale", help="Multiply the suite's training scale."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per run (default: the cores "
                                          "shared out among the workers)."),
    first: Optional[str] = typer.Option(None, "--first", help="Comma-separated algorithm and/or dataset labels: "
                                        "their runs go before the others (the order only; every run still runs)."),
    restore: Optional[Path] = typer.Option(None, "--restore", help="A results folder (bench table --out) whose "
                                           "recorded runs count as finished, checked against this suite's settings."),
) -> None:
    """Run every (dataset, algorithm, seed) of a suite, resumably, then print its table."""
    from offmarl.commands.bench import run_bench

    _run(run_bench, suite=suite, seeds=seeds, workers=workers, backend=backend, address=address, out=out, scale=scale,
         threads=threads, first=first, restore=restore)


@bench_app.command("table")
def bench_table(
    runs_dir: Path = typer.Argument(..., help="Runs directory, suite directory or results folder to aggregate."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write each report to OUT/<folder name> (a results "
                                                           "folder) instead of beside its runs."),
) -> None:
    """Aggregate the eval.json files (or a results folder's records) into markdown/CSV tables, plots and records."""
    from offmarl.commands.bench import run_bench_table

    _run(run_bench_table, runs_dir=runs_dir, out=out)


@bench_app.command("status")
def bench_status(
    runs_dir: Path = typer.Argument(..., help="A suite directory, or a runs directory holding suites."),
) -> None:
    """How far each suite under a runs directory has got (done / running / partial / failed / pending runs)."""
    from offmarl.commands.bench import run_bench_status

    _run(run_bench_status, runs_dir=runs_dir)


@bench_app.command("export")
def bench_export(
    runs_dir: Path = typer.Argument(..., help="A suite directory, or any folder of run directories."),
    out: Path = typer.Option(..., "--out", help="Output JSON file."),
    fmt: str = typer.Option("marl-eval", "--format", help="marl-eval: the raw-results JSON marl-eval's "
                            "data_process_pipeline reads."),
) -> None:
    """Write the runs' evaluations in another tool's format (marl-eval: environment/task/algorithm/run/step)."""
    from offmarl.commands.bench import run_bench_export

    _run(run_bench_export, runs_dir=runs_dir, out=out, fmt=fmt)


@bench_app.command("speed")
def bench_speed(
    runs_dir: Path = typer.Argument(..., help="A suite directory, or any folder of run directories."),
    reference: str = typer.Option("ippo", "--reference", help="The algorithm whose final score sets the target."),
    metric: str = typer.Option("win_rate", "--metric", help="win_rate (eval.json's win_curve) or return (its curve)."),
    fraction: float = typer.Option(0.8, "--fraction", help="The target: this fraction of the reference's final score."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the markdown table to this file."),
) -> None:
    """Frames to reach a fraction of a reference's final score per algorithm, with bootstrap intervals over seeds."""
    from offmarl.commands.bench import run_bench_speed

    _run(run_bench_speed, runs_dir=runs_dir, reference=reference, metric=metric, fraction=fraction, out=out)


@bench_app.command("cost")
def bench_cost(
    runs_dir: Path = typer.Argument(..., help="A suite directory, a results folder, or a folder holding several."),
    reference: str = typer.Option("madt", "--reference", help="The algorithm the times are compared with."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the markdown table to this file."),
) -> None:
    """Training time per algorithm (median over seeds) vs a reference's at equal updates, and its stages' shares."""
    from offmarl.commands.bench import run_bench_cost

    _run(run_bench_cost, runs_dir=runs_dir, reference=reference, out=out)


@bench_app.command("compare")
def bench_compare(
    suite_dir: Path = typer.Argument(..., help="A suite directory or results folder."),
    algos: List[str] = typer.Argument(..., help="Two or more algorithm labels (rows of its table)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write probability_of_improvement.md and .csv "
                                                           "into this folder."),
) -> None:
    """Probability of improvement P(X > Y) of every ordered pair of ALGOS over their common tasks, with 95 %
    stratified-bootstrap CIs (Agarwal et al. 2021)."""
    from offmarl.commands.bench import run_bench_compare

    _run(run_bench_compare, suite_dir=suite_dir, algos=algos, out=out)


@bench_app.command("paired")
def bench_paired(
    suite_dir: Path = typer.Argument(..., help="A suite directory or results folder."),
    pairs: List[str] = typer.Argument(..., help="One or more X:Y pairs of algorithm labels (rows of its table); "
                                                "Y = @best: each task's best other row."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write paired.md and .csv into this folder."),
    others: List[Path] = typer.Option([], "--with", help="Another suite directory or results folder to take the "
                                                         "named rows SUITE_DIR lacks from (repeatable)."),
) -> None:
    """X − Y seed by seed for each X:Y pair of rows run at the same seeds (a controlled experiment), per task:
    the differences, their mean and Student's t 95 % interval, and on how many seeds X scored higher."""
    from offmarl.commands.bench import run_bench_paired

    _run(run_bench_paired, suite_dir=suite_dir, pairs=pairs, out=out, others=others)


@app.command("matrix-game")
def matrix_game(
    payoff: Optional[str] = typer.Option(None, "--payoff",
                                         help='Payoff matrix, rows by ";" (default "1,5;6,1", MABCQ Table 1).'),
    behavior: Optional[str] = typer.Option(None, "--behavior",
                                           help='Behaviour distributions of agents 1 and 2 '
                                                '(default "0.8,0.2;0.4,0.6").'),
    epsilon: Optional[float] = typer.Option(None, "--epsilon",
                                            help="Clip lambda_vd to [1-E, 1+E] (default: no clipping)."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON result."),
) -> None:
    """MABCQ's matrix game: tabular operator and deep dec_mabcq learners for bcq, vd, tn, vd_tn (Tables 2-4)."""
    from offmarl.commands.matrix_game import run_matrix_game

    _run(run_matrix_game, payoff=payoff, behavior=behavior, epsilon=epsilon, as_json=as_json)


# ---- the demo ----------------------------------------------------------------------------------------
@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the demo writes its datasets and runs."),
) -> None:
    """Tseng et al. Table 1 in miniature: the built-in `quick` suite (= offmarl bench run quick --out OUT)."""
    from offmarl.commands.demo import run_demo

    _run(run_demo, out=out)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {one_line(message)}", err=True)


def main() -> None:
    warnings.showwarning = _show_warning
    app(prog_name="offmarl")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
