"""Fuzzing the dataset loader: seeded random mutations of small valid files must each end in a clean outcome.

Clean means either the file loads and samplers draw batches from it, or ``load_dataset`` raises a one-line
:class:`~offmarl.errors.DatasetError` that names the file. Anything else -- a ``KeyError``, an ``OSError``
from h5py, a ``MemoryError``, a ``UnicodeDecodeError``, a hang on a huge declared shape -- is a loader bug.

Every case is a plain-Python generator, ``random.Random(f"{seed}:{case}")``, that picks a base file and one
to three mutations of its fields (dtypes, shapes, values, huge declared shapes, empty dataspaces), its card
(keys, values, raw bytes), the file's root attributes, the episode boundaries (``episode_starts``,
terminal/truncation flags) and its HDF5 links (soft, external, dangling, hard links to another field, groups
where arrays belong). A failure lists each bad case with its seed, number and mutations; rerun only those
with ``OFFMARL_FUZZ_SEED=<seed> OFFMARL_FUZZ_CASES=<n>,<m> pytest tests/test_fuzz_dataset.py``.

A last test overwrites random bytes of a valid file (corrupted HDF5 metadata), in a child process: libhdf5
itself may crash or hang on such a file, which only a separate process survives.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from _datasets import collected_dataset, make_dataset

from offmarl.data.io import load_dataset, save_dataset, save_per_agent_datasets
from offmarl.data.samplers import TransitionSampler, WindowSampler
from offmarl.data.validate import ALL_FIELDS, EPISODE_FIELDS
from offmarl.errors import DatasetError

SEED = int(os.environ.get("OFFMARL_FUZZ_SEED", "20261206"))
CASES = [int(c) for c in os.environ["OFFMARL_FUZZ_CASES"].split(",")] if "OFFMARL_FUZZ_CASES" in os.environ \
    else range(600)
BUDGET_SECONDS = 60

# values a mutation puts where they do not belong
JSON_VALUES: list[Any] = [None, True, False, 0, -1, 3, 2**62, 1.5, -0.0, 1e308, float("nan"), float("inf"), "", "x",
                          "smac_2s3z", [], [1, "a"], [3, 3, 3], [[1]], {}, {"a": 1}, {"kind": "discrete", "n": 0}]
ENV_NAMES = ["nope", "", "external:x", "smac_1c3s5z", "matrix_game", "mpe_cn_4ls4l", "equal_space", "highway",
             "fill_in", "toy_pick"]
ATTRIBUTE_VALUES: list[Any] = [0, -1, 1, 2, 2**62, 1.0, 1.5, "1", "yes", b"\xff", True, False, np.array([1, 2]),
                               np.array([], dtype=np.int64), np.float64("nan")]
DTYPES = [np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_, np.complex64, ">f4", "S4",
          [("a", "<f4")]]


# ---- the base files -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Small valid files: discrete with state and masks, continuous without state, state-only, one with
    behaviour levels, a registered env's (its card is checked against the registry) and a per-agent file."""
    root = tmp_path_factory.mktemp("fuzz_bases")
    return {
        "discrete": save_dataset(make_dataset(episodes=3), root / "discrete.h5"),
        "continuous": save_dataset(make_dataset(episodes=3, discrete=False, state=False, seed=1), root / "box.h5"),
        "state_only": save_dataset(make_dataset(episodes=2, state_only=True, seed=2), root / "state_only.h5"),
        "levels": save_dataset(make_dataset(episodes=3, levels=True, seed=5), root / "levels.h5"),
        "mpe": save_dataset(collected_dataset("mpe_cn_3ls3l", episodes=2), root / "mpe.h5"),
        "per_agent": save_per_agent_datasets([make_dataset(n_agents=2, episodes=2, seed=s) for s in (3, 4)],
                                             root / "per_agent.h5"),
    }


# ---- mutations: each edits an open file and says what it did, or returns None when it does not apply ---------
Mutation = Callable[[h5py.File, h5py.Group, random.Random, Path], "str | None"]


def _array(group: h5py.Group, name: str) -> np.ndarray | None:
    """Field ``name`` as an array, when an earlier mutation left it one that is small enough to read."""
    if not isinstance(group.get(name, getlink=True), h5py.HardLink):
        return None
    item = group[name]
    if not isinstance(item, h5py.Dataset) or item.shape is None or item.size > 10**6:
        return None
    return item[...]


def _field(group: h5py.Group, rng: random.Random) -> str | None:
    present = [name for name in ALL_FIELDS if _array(group, name) is not None]
    return rng.choice(present) if present else None


def _replace(group: h5py.Group, name: str, value: Any) -> None:
    if name in group:
        del group[name]
    group[name] = value


def delete_field(f, group, rng, base):
    name = _field(group, rng)
    if name is None:
        return None
    del group[name]
    return f"delete field {name!r}"


def unknown_field(f, group, rng, base):
    name = rng.choice(["avail_action", "Obs", "extra", "agent_0", "card"])
    _replace(group, name, np.zeros(3, np.float32))
    return f"add field {name!r}"


def retype_field(f, group, rng, base):
    name = _field(group, rng)
    if name is None:
        return None
    dtype = rng.choice(DTYPES)
    arr = _array(group, name)
    if isinstance(dtype, list):
        value = np.zeros(arr.shape, dtype=dtype)
    elif dtype == "S4":
        value = arr.astype(str).astype("S4")
    else:
        with np.errstate(all="ignore"):
            value = arr.astype(dtype)
    _replace(group, name, value)
    return f"field {name!r} as dtype {dtype}"


def reshape_field(f, group, rng, base):
    name = _field(group, rng)
    if name is None:
        return None
    arr = _array(group, name)
    how = rng.choice(["drop_axis", "add_axis", "one_less_row", "one_more_row", "no_rows", "scalar", "wider"])
    if how == "drop_axis" and arr.ndim:
        value = arr[..., 0]
    elif how == "add_axis":
        value = arr[..., None]
    elif how == "one_less_row" and arr.ndim:
        value = arr[:-1]
    elif how == "one_more_row" and arr.ndim:
        value = np.concatenate([arr, arr[-1:]])
    elif how == "no_rows" and arr.ndim:
        value = arr[:0]
    elif how == "wider" and arr.ndim > 1:
        value = np.concatenate([arr, arr[..., -1:]], axis=-1)
    else:
        value = arr.reshape(-1)[:1].reshape(())
    _replace(group, name, value)
    return f"field {name!r} reshaped ({how}) to {list(value.shape)}"


def declare_huge(f, group, rng, base):
    """A shape nobody could load, written as metadata only (unwritten chunks take no room)."""
    name = _field(group, rng)
    if name is None:
        return None
    old = group[name]
    shape, dtype = old.shape, old.dtype
    if not shape:
        return None
    axis = rng.randrange(len(shape))
    huge = list(shape)
    # 10**12 rows are terabytes even of bools: should the loader ever read them, allocating fails at once with a
    # MemoryError (a few GiB would be allocated, then filled, and take the machine down)
    huge[axis] = 10**12
    del group[name]
    group.create_dataset(name, shape=tuple(huge), dtype=dtype, chunks=tuple(1 for _ in huge))
    card = _card(group)
    if axis == 0 and card is not None and rng.random() < 0.5:  # the card agrees: only the size is wrong
        card["steps" if name not in ("episode_starts", *EPISODE_FIELDS) else "episodes"] = huge[0]
        _set_card(group, card)
        return f"field {name!r} declared {huge}, card agreeing"
    return f"field {name!r} declared {huge}"


def empty_dataspace(f, group, rng, base):
    name = rng.choice(ALL_FIELDS)
    if name in group:
        del group[name]
    group.create_dataset(name, data=h5py.Empty("f4"))
    return f"field {name!r} with no dataspace"


def bad_value(f, group, rng, base):
    name = _field(group, rng)
    if name is None:
        return None
    arr = _array(group, name)
    if arr.size == 0 or arr.dtype.kind not in "biuf":
        return None
    index = tuple(rng.randrange(n) for n in arr.shape)
    if arr.dtype == np.bool_:
        arr[index] = not arr[index]
    elif arr.dtype.kind == "i":
        arr[index] = rng.choice([-1, -(2**62), 2**62, 5, 6, 100, 0])
    elif arr.dtype.kind == "u":  # behaviour levels: in range, just past it, far past it
        arr[index] = rng.choice([0, 1, 2, 3, 7, int(np.iinfo(arr.dtype).max)])
    else:
        arr[index] = rng.choice([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 7.0, -2.0, 0.0])
    group[name][...] = arr
    return f"field {name!r} at {list(index)} set to {arr[index]!r}"


def fill_value(f, group, rng, base):
    name = _field(group, rng)
    if name is None:
        return None
    value = rng.choice([0, 1, -1, np.nan])
    arr = _array(group, name)
    if arr.dtype.kind not in "biuf":
        return None
    with np.errstate(all="ignore"):
        group[name][...] = np.full(arr.shape, value).astype(arr.dtype)
    return f"field {name!r} filled with {value}"


# ---- the card ------------------------------------------------------------------------------------------------
def _card(group: h5py.Group) -> dict | None:
    try:
        card = json.loads(group.attrs["card"])
    except (KeyError, TypeError, ValueError, RecursionError):  # an earlier mutation broke it
        return None
    return card if isinstance(card, dict) else None


def _set_card(group: h5py.Group, card: dict) -> None:
    group.attrs["card"] = json.dumps(card)


def card_key(f, group, rng, base):
    card = _card(group)
    if card is None:
        return None
    key = rng.choice(sorted(card))
    if rng.random() < 0.3:
        del card[key]
        _set_card(group, card)
        return f"card: delete {key!r}"
    card[key] = rng.choice(JSON_VALUES)
    _set_card(group, card)
    return f"card: {key!r} = {card[key]!r}"


def card_unknown_key(f, group, rng, base):
    card = _card(group)
    if card is None:
        return None
    card[rng.choice(["colour", "envname", "Steps"])] = rng.choice(JSON_VALUES)
    _set_card(group, card)
    return "card: an unknown key"


def card_env_spec(f, group, rng, base):
    card = _card(group)
    if card is None or not isinstance(card.get("env_spec"), dict):
        return None
    spec = card["env_spec"]
    if rng.random() < 0.4 and isinstance(spec.get("action_space"), dict):
        space = spec["action_space"]
        key = rng.choice(sorted(space))
        space[key] = rng.choice(JSON_VALUES)
        what = f"env_spec.action_space.{key} = {space[key]!r}"
    else:
        key = rng.choice(sorted(spec))
        if rng.random() < 0.2:
            del spec[key]
            what = f"delete env_spec.{key}"
        else:
            spec[key] = rng.choice(JSON_VALUES)
            what = f"env_spec.{key} = {spec[key]!r}"
    _set_card(group, card)
    return f"card: {what}"


def card_environment(f, group, rng, base):
    card = _card(group)
    if card is None:
        return None
    how = rng.choice(["name", "bogus_kwarg", "kwarg_value", "no_kwargs"])
    if how == "name":
        card["env_name"] = rng.choice(ENV_NAMES)
        what = f"env_name = {card['env_name']!r}"
    elif how == "bogus_kwarg" or not card.get("env_kwargs") or not isinstance(card["env_kwargs"], dict):
        card["env_kwargs"] = {"bogus": 1}
        what = "env_kwargs = {'bogus': 1}"
    elif how == "kwarg_value":
        key = rng.choice(sorted(card["env_kwargs"]))
        card["env_kwargs"][key] = rng.choice(JSON_VALUES)
        what = f"env_kwargs.{key} = {card['env_kwargs'][key]!r}"
    else:
        card["env_kwargs"] = {}
        what = "env_kwargs = {}"
    _set_card(group, card)
    return f"card: {what}"


def card_statistic(f, group, rng, base):
    card = _card(group)
    if card is None:
        return None
    key = rng.choice(["return_mean", "return_std", "return_min", "team_return_max", "per_agent_return_mean",
                      "per_agent_return_std"])
    factor = 1 + rng.choice([1e-7, 1e-5, 1e-3, 1.0])
    value = card.get(key)
    if isinstance(value, list):
        card[key] = [v * factor for v in value if isinstance(v, (int, float))]
    elif isinstance(value, (int, float)):
        card[key] = value * factor + (1e-3 if factor > 1.0001 else 0.0)
    _set_card(group, card)
    return f"card: {key} x {factor}"


def card_raw(f, group, rng, base):
    raw = group.attrs.get("card")
    text = raw if isinstance(raw, str) and raw.isprintable() and raw.isascii() else "{}"  # a card JSON writes
    how = rng.choice(["not_utf8_bytes", "not_utf8_text", "truncated", "int", "array", "float", "list", "deep",
                      "empty", "delete", "opaque"])
    if how == "delete":
        del group.attrs["card"]
    elif how == "not_utf8_bytes":
        group.attrs["card"] = np.bytes_(b"\xff\xfe" + text.encode()[:50])
    elif how == "not_utf8_text":
        group.attrs.create("card", np.array(b"{\xc3\x28}", dtype=h5py.string_dtype("utf-8")))
    elif how == "truncated":
        group.attrs["card"] = text[: rng.randrange(max(len(text), 1))]
    elif how == "int":
        group.attrs["card"] = 7
    elif how == "array":
        group.attrs["card"] = np.arange(3)
    elif how == "float":
        group.attrs["card"] = 1.5
    elif how == "list":
        group.attrs["card"] = json.dumps([text])
    elif how == "deep":
        group.attrs["card"] = "[" * 50_000 + "]" * 50_000
    elif how == "opaque":
        group.attrs["card"] = np.void(b"{}")
    else:
        group.attrs["card"] = ""
    return f"card attribute: {how}"


# ---- the file's root attributes ------------------------------------------------------------------------------
def root_attribute(f, group, rng, base):
    name = rng.choice(["format_version", "per_agent", "n_groups"])
    if rng.random() < 0.2:
        if name not in f.attrs:
            return None
        del f.attrs[name]
        return f"delete root attribute {name!r}"
    value = rng.choice(ATTRIBUTE_VALUES)
    f.attrs[name] = value
    return f"root attribute {name!r} = {value!r}"


# ---- episode boundaries --------------------------------------------------------------------------------------
def flags(f, group, rng, base):
    terminals, truncations = _array(group, "terminals"), _array(group, "truncations")
    if terminals is None or truncations is None or terminals.ndim != 1 or truncations.shape != terminals.shape \
            or not terminals.size:
        return None
    t = rng.randrange(terminals.size)
    how = rng.choice(["flip_terminal", "flip_truncation", "both", "none", "all"])
    if how == "flip_terminal":
        terminals[t] = not terminals[t]
    elif how == "flip_truncation":
        truncations[t] = not truncations[t]
    elif how == "both":
        terminals[t] = truncations[t] = True
    elif how == "none":
        terminals[:] = truncations[:] = False
    else:
        terminals[:] = True
    group["terminals"][...], group["truncations"][...] = terminals, truncations
    return f"flags: {how} at step {t}"


def episode_starts(f, group, rng, base):
    starts = _array(group, "episode_starts")
    if starts is None or starts.ndim != 1 or not starts.size:
        return None
    card = _card(group)
    steps = card.get("steps", 10) if card else 10
    steps = steps if isinstance(steps, int) and 0 < steps < 10**6 else 10
    how = rng.choice(["set", "shuffle", "repeat", "drop_last", "drop_first_keep_count"])
    if how == "set":
        starts[rng.randrange(starts.size)] = rng.randint(-2, steps + 2)
    elif how == "shuffle":
        rng.shuffle(starts)
    elif how == "repeat" and starts.size > 1:
        starts[1] = starts[0]
    elif how == "drop_last":
        starts = starts[:-1]
    else:
        starts = np.append(starts[1:], steps - 1)
    _replace(group, "episode_starts", starts.astype(np.int64))
    return f"episode_starts: {how} -> {starts.tolist()}"


# ---- links and groups ----------------------------------------------------------------------------------------
def link(f, group, rng, base):
    name = rng.choice(ALL_FIELDS)
    other = rng.choice([n for n in ALL_FIELDS if n != name])
    prefix = group.name.rstrip("/")
    how = rng.choice(["soft_to_field", "soft_dangling", "external_to_base", "external_missing", "external_to_self",
                      "hard_to_other", "group", "nested_group"])
    if name in group:
        del group[name]
    if how == "soft_to_field":
        group[name] = h5py.SoftLink(f"{prefix}/{other}")
    elif how == "soft_dangling":
        group[name] = h5py.SoftLink("/nowhere")
    elif how == "external_to_base":
        group[name] = h5py.ExternalLink(str(base), f"{prefix}/{name}")
    elif how == "external_missing":
        group[name] = h5py.ExternalLink("/nonexistent/file.h5", "/obs")
    elif how == "external_to_self":
        group[name] = h5py.ExternalLink(f.filename, f"{prefix}/{name}")
    elif how == "hard_to_other" and _array(group, other) is not None:
        group[name] = group[other]
    elif how == "nested_group":
        group.create_group(name).create_dataset("data", data=np.zeros(3))
    else:
        group.create_group(name)
    return f"field {name!r}: {how} ({other!r})"


def agent_group(f, group, rng, base):
    """Per-agent files: an agent group that is not one."""
    if not f.attrs.get("per_agent", False) or "agent_0" not in f:
        return None
    how = rng.choice(["dataset", "soft", "external_missing", "delete"])
    del f["agent_0"]
    if how == "dataset":
        f["agent_0"] = np.zeros(3)
    elif how == "soft":
        f["agent_0"] = h5py.SoftLink("/agent_1")
    elif how == "external_missing":
        f["agent_0"] = h5py.ExternalLink("/nonexistent/file.h5", "/agent_0")
    return f"agent_0: {how}"


MUTATIONS: list[Mutation] = [delete_field, unknown_field, retype_field, reshape_field, declare_huge, empty_dataspace,
                             bad_value, bad_value, fill_value, card_key, card_key, card_unknown_key, card_env_spec,
                             card_environment, card_environment, card_statistic, card_raw, root_attribute, flags,
                             flags, episode_starts, episode_starts, link, link, agent_group]


# ---- one case ------------------------------------------------------------------------------------------------
def run_case(case: int, bases: dict[str, Path], workdir: Path) -> str | None:
    """Mutate a copy of a base file and load it; None when the outcome is clean, else what went wrong."""
    rng = random.Random(f"{SEED}:{case}")
    base_name = rng.choice(sorted(bases))
    path = workdir / f"case{case}.h5"
    shutil.copyfile(bases[base_name], path)
    agent = rng.choice([0, 1]) if base_name == "per_agent" else None
    done: list[str] = []
    with h5py.File(path, "r+") as f:
        group = f[f"agent_{agent}"] if agent is not None else f
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            if group.name is None:  # an earlier mutation unlinked the agent group this case edits: nothing to edit
                break
            for _attempt in range(10):
                what = rng.choice(MUTATIONS)(f, group, rng, bases[base_name])
                if what is not None:
                    done.append(what)
                    break
    where = f"seed {SEED}, case {case}: base {base_name!r}{'' if agent is None else f' agent {agent}'}, {done}"
    try:
        ds = load_dataset(path, agent=agent)
        TransitionSampler(ds, batch_size=4, seed=0, require_actions=not ds.state_only).sample()
        if not ds.state_only:
            WindowSampler(ds, batch_size=4, seed=0, K=3).sample()
    except DatasetError as exc:
        message = str(exc)
        if not message.startswith(str(path)) or "\n" in message:
            return f"{where}: DatasetError without the file name first, or over several lines: {message!r}"
    except Exception as exc:  # any other type is the bug this test looks for
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        trail = " <- ".join(f"{Path(fr.filename).name}:{fr.lineno}" for fr in reversed(frames))
        return f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} (at {trail})"
    finally:
        path.unlink(missing_ok=True)
    return None


def test_fuzzed_datasets_load_cleanly_or_fail_with_one_line(bases: dict[str, Path], tmp_path: Path) -> None:
    start = time.monotonic()
    failures = [failure for case in CASES if (failure := run_case(case, bases, tmp_path)) is not None]
    elapsed = time.monotonic() - start
    assert not failures, f"{len(failures)} of {len(CASES)} fuzzed files broke the loader:\n" + "\n".join(failures[:20])
    assert elapsed < BUDGET_SECONDS, f"{len(CASES)} cases took {elapsed:.0f} s (budget {BUDGET_SECONDS} s)"


def test_the_fuzzer_both_accepts_and_rejects(bases: dict[str, Path], tmp_path: Path) -> None:
    """The mutations are neither all harmless nor all fatal (a generator that broke every file, or none,
    would prove nothing)."""
    accepted = 0
    for case in range(60):
        rng = random.Random(f"{SEED}:{case}")
        base_name = rng.choice(sorted(bases))
        path = tmp_path / "plain.h5"
        shutil.copyfile(bases[base_name], path)
        with h5py.File(path, "r+") as f:
            group = f["agent_0"] if base_name == "per_agent" else f
            while rng.choice(MUTATIONS)(f, group, rng, bases[base_name]) is None:
                pass
        try:
            load_dataset(path, agent=0 if base_name == "per_agent" else None)
            accepted += 1
        except DatasetError:
            pass
    assert 3 <= accepted <= 45, accepted


# ---- corrupted bytes -----------------------------------------------------------------------------------------
# In a child process: libhdf5 itself may crash (a segfault no Python code can catch) or hang on a rare corrupted
# file; the child prints each case before loading it, so the parent can tell that case and go on after it.
CORRUPT_BYTES = """
import random, sys
from pathlib import Path
from offmarl.data.io import load_dataset
from offmarl.errors import DatasetError, one_line
base, path, seed, start, stop = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), *map(int, sys.argv[3:])
for case in range(start, stop):
    print("case", case, flush=True)
    rng = random.Random(f"{seed}:bytes:{case}")
    data = bytearray(base)
    for _ in range(rng.choice([1, 2, 8, 32])):
        data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))
    try:
        load_dataset(path)
    except DatasetError as exc:
        if not str(exc).startswith(str(path)) or "\\n" in str(exc):
            print("bad", case, "DatasetError", repr(str(exc)), flush=True)
    except Exception as exc:
        print("bad", case, type(exc).__name__, one_line(exc)[:300], flush=True)
"""


def test_corrupted_bytes_load_or_fail_with_one_line(bases: dict[str, Path], tmp_path: Path) -> None:
    """Bytes overwritten at random in a valid file: whatever h5py raises on the corrupted metadata (an
    ``OSError``, ``KeyError``, ``RuntimeError``, ``TypeError``) is a DatasetError naming the file. The cases
    where libhdf5 crashes or hangs are beyond any loader and only counted."""
    import offmarl

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(offmarl.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    start, stop, bad, lost = 0, 150, [], []
    while start < stop:
        args = [sys.executable, "-c", CORRUPT_BYTES, str(bases["discrete"]), str(tmp_path / "x.h5"), str(SEED),
                str(start), str(stop)]
        try:
            child = subprocess.run(args, capture_output=True, text=True, env=env, timeout=30)
            output, finished = child.stdout, child.returncode == 0
            assert finished or child.returncode < 0, child.stderr[-2000:]  # only a signal may end it early
        except subprocess.TimeoutExpired as hung:
            output, finished = hung.stdout.decode() if isinstance(hung.stdout, bytes) else hung.stdout or "", False
        lines = output.splitlines()
        bad += [line for line in lines if line.startswith("bad ")]
        if finished:
            break
        cases = [int(line.split()[1]) for line in lines if line.startswith("case ")]
        lost.append(cases[-1] if cases else start)
        start = lost[-1] + 1
    assert not bad, f"seed {SEED}: " + "\n".join(bad)
    assert len(lost) <= 3, f"libhdf5 crashed or hung on {len(lost)} of {stop} corrupted files: cases {lost}"
