"""The pools committed under ``pools/`` (``offmarl pool ship``): each loads, has every level, lies where its spec's
key puts it, is policy-only, and its files are the ones its card's content hash was computed over -- so a bad
commit of a pool fails here. Reads cards and hashes files; plays no episode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offmarl.collect.pools import Pool, PoolSpec, shipped_pools_dir, verify_content_hash

ROOT = shipped_pools_dir()
SHIPPED = sorted(path.parent for path in ROOT.glob("*/*/pool/pool.json")) if ROOT is not None else []


def test_the_checkout_ships_pools():
    assert ROOT is not None and ROOT == Path(__file__).resolve().parents[1] / "pools"
    assert SHIPPED, f"no pool under {ROOT}"


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT).parent) for p in SHIPPED])
def test_a_shipped_pool_is_whole_and_where_its_spec_puts_it(path):
    pool = Pool.load(path)
    for level in ("r", "m", "e"):
        assert pool.checkpoints(level), f"level {level} is empty"
    spec = PoolSpec.from_key(pool.card["spec"])
    assert spec.key() == pool.card["spec"]  # the recorded key is a whole spec's, nothing lost or added
    assert path.relative_to(ROOT) == spec.relative_dir / "pool"  # the directory name PoolSpec.cache_dir uses
    assert (pool.env_name, pool.card["key"]["algo"], pool.card["key"]["seed"]) == (spec.env, spec.algo, spec.seed)
    verify_content_hash(pool)
    # the cache copy's hash: different where it kept full checkpoints (pools binned before policy-only ones), equal
    # where it was binned policy-only already
    assert len(pool.card["converted_from"]) == len(pool.content_hash)
    for checkpoint in pool.rows():
        meta = json.loads((path / checkpoint["path"] / "algo.json").read_text())
        assert meta["state"] == "policy" and meta["algo"] == spec.algo
    files = [f for f in path.rglob("*") if f.is_file()]
    assert len(files) == 1 + 2 * len(pool.rows()), "files beside the card and the checkpoints"
