"""HDF5 files of multi-agent datasets: :func:`save_dataset`, :func:`load_dataset` (DESIGN.md, "Dataset").

File layout (format version :data:`~offmarl.data.dataset.FORMAT_VERSION`)::

    /                         attrs: format_version (int), per_agent (bool)
      card                    attr: the DatasetCard as a JSON string
      obs, rewards, terminals, truncations, episode_starts, final_obs      (always)
      actions, state, final_state, avail_actions, behavior_levels          (only when not None)

Each field is an HDF5 dataset with exactly the shape and dtype of ``MultiAgentDataset`` (module
docstring of :mod:`offmarl.data.dataset`); optional fields that are ``None`` are absent. Datasets are
chunked along the leading (time or episode) axis with about :data:`TARGET_CHUNK_BYTES` per chunk and
every trailing dimension whole, so a chunk holds complete steps (or episodes: ``final_obs``,
``final_state``, ``behavior_levels [E, n] uint8``); ``compression="lzf"`` or ``"gzip"`` adds the shuffle
filter. ``behavior_levels`` indexes the card's ``behavior_level_names`` (both present, or neither).

Format versions: 2 added the card's ``random_return``, ``reference_return`` and ``behavior_level_names`` and
the ``behavior_levels`` field; a file of version 1 has none of them and loads with each None.

A per-agent file (decentralized methods, e.g. MABCQ's per-agent datasets) holds one group per agent::

    /                         attrs: format_version, per_agent=True, n_groups=n
      agent_0/ ... agent_{n-1}/   each laid out like the root of a plain file (its own card and fields)

and is read one group at a time with ``load_dataset(path, agent=i)``.

Saving is atomic: the file is written under a hidden temporary name in the target's directory,
flushed to disk, then renamed over the target with ``os.replace``; an exception (or a crash) during
the write never leaves a partial file at the target path, and a previous file there stays intact.
The temporary file is removed on any exception; after a hard kill it remains as
``.<name>.<random>.tmp`` next to the target until a sweep removes it
(:func:`offmarl.core.files.sweep_stale_temporaries`; ``offmarl collect`` sweeps before collecting).

Loading checks before it reads: the root attributes, the card (UTF-8 JSON text, every key of its type), and
each field's layout from the HDF5 metadata (:func:`offmarl.data.validate.check_layout`: dtype, shape, step and
episode counts agreeing with each other and with the card), that every field is an array stored in the file
itself (soft and external links, dangling or not, and groups are refused) and that the fields fit in the
machine's memory (a huge declared shape costs nothing to write). Only then does it read whole arrays and
validate them with :func:`offmarl.data.validate.validate_dataset`. Every problem -- including a truncated,
corrupted or non-HDF5 file (whatever h5py raises on it) and a too-new format version -- raises
:class:`offmarl.errors.DatasetError` with one line naming the file and the field. (libhdf5 itself may crash or hang
on a rare corrupted file -- once each in a few thousand files with random bytes overwritten, see
``tests/test_fuzz_dataset.py`` -- which no Python code can catch.)
"""

from __future__ import annotations

import json
import math
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from offmarl.core.files import atomic_path
from offmarl.data.dataset import FORMAT_VERSION, DatasetCard, MultiAgentDataset
from offmarl.data.validate import (
    ALL_FIELDS,
    as_integer,
    card_from_dict,
    check_environment,
    check_format_version,
    check_layout,
    plain,
    validate_dataset,
)
from offmarl.errors import DatasetError, one_line

#: Bytes per HDF5 chunk (rows along the leading axis are chosen to get close to it).
TARGET_CHUNK_BYTES = 1 << 20
#: Accepted values of ``compression``.
COMPRESSIONS = (None, "lzf", "gzip")
_GZIP_LEVEL = 4


def agent_group(i: int) -> str:
    """Name of agent ``i``'s group in a per-agent file."""
    return f"agent_{i}"


# ---- writing -------------------------------------------------------------------------------------------
def save_dataset(ds: MultiAgentDataset, path: str | os.PathLike, *, compression: str | None = None) -> Path:
    """Validate ``ds`` and write it atomically to ``path`` (HDF5); returns the path.

    ``compression``: ``None`` (fastest), ``"lzf"`` (fast, moderate ratio) or ``"gzip"`` (level 4).
    Parent directories are created. Raises :class:`DatasetError` (nothing written) if ``ds`` is invalid.
    """
    path = Path(path)
    _check_compression(compression)
    validate_dataset(ds, source=str(path))

    def write(f: h5py.File) -> None:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["per_agent"] = False
        _write_group(f, ds, compression)

    _atomic_write(path, write)
    return path


def save_per_agent_datasets(datasets: Sequence[MultiAgentDataset], path: str | os.PathLike, *,
                            compression: str | None = None) -> Path:
    """Write one file with a group ``agent_i`` per dataset (each with its own card); returns the path.

    Read back with ``load_dataset(path, agent=i)``. Every dataset is validated before anything is written.
    """
    path = Path(path)
    _check_compression(compression)
    if len(datasets) == 0:
        raise ValueError(f"{path}: save_per_agent_datasets needs at least one dataset")
    for i, ds in enumerate(datasets):
        validate_dataset(ds, source=_group_source(path, i))

    def write(f: h5py.File) -> None:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["per_agent"] = True
        f.attrs["n_groups"] = len(datasets)
        for i, ds in enumerate(datasets):
            _write_group(f.create_group(agent_group(i)), ds, compression)

    _atomic_write(path, write)
    return path


def _check_compression(compression: str | None) -> None:
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")


def _json_default(value: Any) -> Any:
    """Numpy scalars/arrays inside card dicts (env_kwargs, behavior, extra) as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"card value of type {type(value).__name__} is not JSON-serializable")


def card_to_json(card: DatasetCard) -> str:
    """The card as stored in a file (its ``format_version`` is the version the file is written in)."""
    d = card.to_dict()
    d["format_version"] = FORMAT_VERSION
    return json.dumps(d, sort_keys=True, default=_json_default)


def _write_group(group: h5py.Group, ds: MultiAgentDataset, compression: str | None) -> None:
    group.attrs["card"] = card_to_json(ds.card)
    for name in ALL_FIELDS:
        arr = getattr(ds, name)
        if arr is not None:
            _write_array(group, name, arr, compression)


def _chunk_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Whole trailing dims, about TARGET_CHUNK_BYTES along the leading axis."""
    row_bytes = itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = min(shape[0], max(1, TARGET_CHUNK_BYTES // max(row_bytes, 1)))
    return (int(rows), *shape[1:])


def _write_array(group: h5py.Group, name: str, arr: np.ndarray, compression: str | None) -> None:
    options: dict[str, Any] = {}
    if arr.size:  # HDF5 cannot chunk a dataset with a zero-length dimension
        options["chunks"] = _chunk_shape(arr.shape, arr.itemsize)
        if compression is not None:
            options.update(compression=compression, shuffle=True)
            if compression == "gzip":
                options["compression_opts"] = _GZIP_LEVEL
    group.create_dataset(name, data=arr, **options)


def _atomic_write(path: Path, write: Callable[[h5py.File], None]) -> None:
    """Run ``write`` on a fresh HDF5 file written atomically to ``path`` (``offmarl.core.files``).

    Without a chunk cache (``rdcc_nbytes=0``) every chunk goes to disk inside ``create_dataset``, so a full
    disk fails there as an OSError; with the cache, the failure comes when the cache is flushed at close,
    where HDF5 2.0 / h5py 3.16 crash the process (segmentation fault). Whole arrays are written at once,
    so the cache gains nothing here."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w-", rdcc_nbytes=0) as f:
        write(f)



# ---- reading -------------------------------------------------------------------------------------------
def _group_source(path: Path | str, i: int) -> str:
    return f"{path} [{agent_group(i)}]"


@contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """The file open for reading; whatever HDF5 cannot read in it (a torn or corrupted file) is a DatasetError."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file")
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a dataset file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated, corrupted or another format): "
                           f"{one_line(exc)}") from None
    try:
        yield f
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        # h5py reads metadata lazily: a corrupted file can open, then fail anywhere, with any of these types
        if not _raised_by_h5py(exc):
            raise
        raise DatasetError(f"{path}: cannot be read (corrupted or truncated file, or HDF5 content h5py cannot "
                           f"read): {type(exc).__name__}: {one_line(exc)}") from None
    finally:
        f.close()


def _raised_by_h5py(exc: BaseException) -> bool:
    """Whether h5py raised ``exc`` (from its Python or Cython modules), not offmarl's own code."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "h5py" in Path(frames[-1].filename).parts


def _member(group: h5py.Group, name: str, source: str) -> h5py.Group | h5py.Dataset | None:
    """``group[name]``, None when absent. Only objects stored in the file itself are read: a soft link or an
    external link (to another file, maybe missing, maybe huge) is refused, dangling or not."""
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise DatasetError(f"{source}: field {name!r}: is an external link (to {link.path!r} in {link.filename!r}); "
                           "a dataset file holds its own arrays")
    if isinstance(link, h5py.SoftLink):
        raise DatasetError(f"{source}: field {name!r}: is a soft link (to {link.path!r}); a dataset file holds its "
                           "arrays under their own names")
    return group[name]


def _root_header(f: h5py.File, source: str) -> tuple[int, int | None]:
    """(format version, number of agent groups or None for a plain file)."""
    version = check_format_version(f.attrs.get("format_version"), source)
    per_agent = f.attrs.get("per_agent", False)
    if not isinstance(per_agent, (bool, np.bool_)):
        raise DatasetError(f"{source}: field 'per_agent': must be true or false, got {plain(per_agent)!r}")
    if not per_agent:
        return version, None
    n = as_integer(f.attrs.get("n_groups"))
    if n is None or n < 1:
        raise DatasetError(f"{source}: field 'n_groups': per-agent file without a positive group count "
                           f"({plain(f.attrs.get('n_groups'))!r})")
    for i in range(n):
        if not isinstance(_member(f, agent_group(i), source), h5py.Group):
            raise DatasetError(f"{source}: field {agent_group(i)!r}: missing or not a group (the file says "
                               f"n_groups={n})")
    return version, n


def _read_card(group: h5py.Group, source: str) -> DatasetCard:
    raw = group.attrs.get("card")
    if raw is None:
        raise DatasetError(f"{source}: card: missing (no 'card' attribute)")
    try:
        # h5py hands back undecodable bytes as lone surrogates; encoding finds them
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw.encode("utf-8").decode("utf-8")
    except AttributeError:
        raise DatasetError(f"{source}: card: must be a JSON text attribute, got {type(raw).__name__}") from None
    except UnicodeError:
        raise DatasetError(f"{source}: card: not UTF-8 text") from None
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DatasetError(f"{source}: card: not valid JSON ({one_line(exc)})") from None
    return card_from_dict(d, source)


def _select_group(f: h5py.File, n_groups: int | None, agent: int | None, path: Path) -> tuple[h5py.Group, str]:
    source = str(path)
    if n_groups is None:
        if agent is not None:
            raise DatasetError(f"{source}: not a per-agent dataset; omit agent={agent} (CLI: --agent)")
        return f, source
    if agent is None:
        raise DatasetError(f"{source}: is a per-agent dataset with {n_groups} agent groups "
                           f"(agent_0..agent_{n_groups - 1}); pass agent=i with 0 <= i < {n_groups} (CLI: --agent i)")
    if not 0 <= agent < n_groups:
        raise DatasetError(f"{source}: agent {agent} out of range; this per-agent dataset has {n_groups} agent "
                           f"groups (0 <= agent < {n_groups})")
    return f[agent_group(agent)], _group_source(path, agent)


def _fields(group: h5py.Group, source: str) -> dict[str, h5py.Dataset | None]:
    """The group's field arrays, unread (None when absent); anything but a known field stored as an array
    in the file is refused."""
    for name in group.keys():
        if name not in ALL_FIELDS:
            raise DatasetError(f"{source}: field {name!r}: unknown field (known: {', '.join(ALL_FIELDS)})")
    fields: dict[str, h5py.Dataset | None] = {}
    for name in ALL_FIELDS:
        item = _member(group, name, source)
        if item is not None and not isinstance(item, h5py.Dataset):
            raise DatasetError(f"{source}: field {name!r}: is an HDF5 group, not an array")
        if item is not None and item.shape is None:
            raise DatasetError(f"{source}: field {name!r}: is an empty HDF5 dataset (no shape), not an array")
        fields[name] = item
    return fields


def _memory_bytes() -> int | None:
    """This machine's physical memory, when the OS says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits_in_memory(fields: dict[str, h5py.Dataset | None], source: str) -> None:
    """Refuse, before reading, fields that declare more bytes than the machine has (a shape is cheap to
    write: unwritten chunks of a huge HDF5 dataset take no room in the file)."""
    sizes = {name: math.prod(item.shape) * item.dtype.itemsize for name, item in fields.items() if item is not None}
    memory = _memory_bytes()
    if memory is None or sum(sizes.values()) <= memory:
        return
    name = max(sizes, key=sizes.__getitem__)
    raise DatasetError(f"{source}: field {name!r}: shape {list(fields[name].shape)} {fields[name].dtype} is "
                       f"{_gib(sizes[name])}; the fields need {_gib(sum(sizes.values()))}, more than this machine's "
                       f"{_gib(memory)} of memory")


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def _read_group(group: h5py.Group, source: str) -> MultiAgentDataset:
    """The dataset of ``group``: its card and fields' layouts are checked before any array is read."""
    card = _read_card(group, source)
    fields = _fields(group, source)
    check_layout(card, fields, source)
    _check_fits_in_memory(fields, source)
    arrays: dict[str, np.ndarray | None] = {}
    for name, item in fields.items():
        try:
            arrays[name] = None if item is None else item[...]
        except OSError as exc:
            raise DatasetError(f"{source}: field {name!r}: cannot be read (truncated or corrupted file?): "
                               f"{one_line(exc)}") from None
    return MultiAgentDataset(card=card, **arrays)


def load_dataset(path: str | os.PathLike, agent: int | None = None, *, validate: bool = True) -> MultiAgentDataset:
    """Read a dataset file written by :func:`save_dataset` (or group ``agent_i`` of a per-agent file).

    ``agent`` must be given for a per-agent file and omitted otherwise. With ``validate=True`` (default)
    every check of :func:`validate_dataset` and the card's environment (:func:`check_environment`) run;
    ``validate=False`` keeps only the cheap structural checks (card, fields present, dtypes, shapes) and
    skips the scans of the data and the environment.
    Raises :class:`DatasetError` naming the file (and group) and the field; ``FileNotFoundError`` if
    there is no file.
    """
    path = Path(path)
    with _open(path) as f:
        _, n_groups = _root_header(f, str(path))
        group, source = _select_group(f, n_groups, agent, path)
        ds = _read_group(group, source)
    if validate:
        validate_dataset(ds, source)
        check_environment(ds.card, source)
    return ds


def dataset_info(path: str | os.PathLike) -> dict[str, Any]:
    """Header of a dataset file without reading its arrays (cards are checked, data is not).

    Plain file: ``{"path", "format_version", "per_agent": False, "card": {...}, "fields": {name: {"shape",
    "dtype"}}}``. Per-agent file: ``{"path", "format_version", "per_agent": True, "n_groups": n,
    "agents": [{"card", "fields"}, ...]}``.
    """
    path = Path(path)

    def describe(group: h5py.Group, source: str) -> dict[str, Any]:
        card = _read_card(group, source)
        fields = {name: {"shape": list(item.shape), "dtype": str(item.dtype)}
                  for name, item in _fields(group, source).items() if item is not None}
        return {"card": card.to_dict(), "fields": fields}

    with _open(path) as f:
        version, n_groups = _root_header(f, str(path))
        header: dict[str, Any] = {"path": str(path), "format_version": version, "per_agent": n_groups is not None}
        if n_groups is None:
            header.update(describe(f, str(path)))
        else:
            header["n_groups"] = n_groups
            header["agents"] = [describe(f[agent_group(i)], _group_source(path, i)) for i in range(n_groups)]
    return header
