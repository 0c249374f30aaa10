"""What an algorithm learns from: the named sources the fit loop hands to ``algo.make_sampler``.

* :class:`~offmarl.data.dataset.MultiAgentDataset` -- a joint dataset (every agent at every step);
* :class:`PerAgentDatasets` -- one dataset per agent (a per-agent file, Jiang & Lu's B_i): group i is what
  agent i's behaviour policy saw, with either all n agents' fields or agent i's alone;
* :class:`~offmarl.envs.registry.EnvSource` -- an environment, for online learners;
* :class:`DatasetAndEnv` -- a dataset, then an environment (finetuning, imitation with interaction).

:func:`incompatibility` is the one check of a dataset against the env spec an algorithm was built for;
``Algorithm.check_source`` calls it once, before training, and words every refusal the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Union

from offmarl.data.dataset import DatasetCard, MultiAgentDataset
from offmarl.envs.base import EnvSpec
from offmarl.envs.registry import EnvSource


@dataclass(frozen=True)
class PerAgentDatasets:
    """Agent i's dataset at index i (``load_dataset(path, agent=i)`` for each group of a per-agent file)."""

    datasets: tuple[MultiAgentDataset, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.datasets:
            raise ValueError("PerAgentDatasets needs one dataset per agent, got none")

    def __len__(self) -> int:
        return len(self.datasets)

    def __iter__(self) -> Iterator[MultiAgentDataset]:
        return iter(self.datasets)

    def __getitem__(self, agent: int) -> MultiAgentDataset:
        return self.datasets[agent]

    @property
    def spec(self) -> EnvSpec:
        return self.datasets[0].spec


Dataset = Union[MultiAgentDataset, PerAgentDatasets]


@dataclass(frozen=True)
class DatasetAndEnv:
    """A dataset stage, then an environment stage."""

    dataset: Dataset
    env: EnvSource


Source = Union[MultiAgentDataset, PerAgentDatasets, EnvSource, DatasetAndEnv]


def source_dataset(source: Source) -> Dataset | None:
    """The dataset of ``source`` (None for an environment alone)."""
    if isinstance(source, DatasetAndEnv):
        return source.dataset
    return None if isinstance(source, EnvSource) else source


def source_env(source: Source) -> EnvSource | None:
    """The environment of ``source`` (None for a dataset alone)."""
    if isinstance(source, DatasetAndEnv):
        return source.env
    return source if isinstance(source, EnvSource) else None


def datasets_of(dataset: Dataset) -> list[MultiAgentDataset]:
    """A joint dataset alone, or the groups of a per-agent one (agent i's at i)."""
    return list(dataset) if isinstance(dataset, PerAgentDatasets) else [dataset]


def dataset_cards(dataset: Dataset) -> list[DatasetCard]:
    """The card of a joint dataset, or the cards of a per-agent one (agent i's at i)."""
    return [ds.card for ds in datasets_of(dataset)]


def source_record(source: Source) -> dict[str, Any]:
    """What config.json records of ``source``: ``dataset`` (a card, or a list of cards for per-agent data)
    and/or ``env_source``."""
    record: dict[str, Any] = {}
    dataset = source_dataset(source)
    if dataset is not None:
        cards = [card.to_dict() for card in dataset_cards(dataset)]
        record["dataset"] = cards if isinstance(dataset, PerAgentDatasets) else cards[0]
    env = source_env(source)
    if env is not None:
        record["env_source"] = env.to_dict()
    return record


def describe(source: Source) -> str:
    """A short name for errors: ``dataset of env 'fill_in' (2000 episodes)``, ``env 'matrix_game'``."""
    dataset = source_dataset(source)
    if dataset is None:
        return f"env {source_env(source).env_name!r}"
    card = dataset_cards(dataset)[0]
    kind = f"per-agent dataset ({len(dataset)} groups)" if isinstance(dataset, PerAgentDatasets) else "dataset"
    origin = f"recipe {card.recipe!r}, " if card.recipe else ""
    return f"{kind} of env {card.env_name!r} ({origin}{card.episodes} episodes)"


def incompatibility(dataset: MultiAgentDataset, spec: EnvSpec, agent: int | None = None,
                    needs_actions: bool = True) -> str | None:
    """Why ``dataset`` cannot train an algorithm built for ``spec`` (None when it can).

    ``agent`` None: a joint dataset, which must have ``spec``'s agents and widths. ``agent`` i: group i of
    per-agent data, with all n agents (same as a joint dataset) or agent i alone (its width
    ``spec.obs_dims[i]``)."""
    card = dataset.card
    if needs_actions and dataset.state_only:
        return "it is state-only (no actions) and this algorithm learns from actions"
    one_agent = agent is not None and dataset.n_agents == 1 and spec.n_agents > 1
    if not one_agent and dataset.n_agents != spec.n_agents:
        expected = f"{spec.n_agents}" + (" (or 1, agent i's alone)" if agent is not None else "")
        return f"it has {dataset.n_agents} agents, the algorithm was built for {expected}"
    dims = [spec.obs_dims[agent]] if one_agent else list(spec.obs_dims)
    if list(card.obs_dims) != dims or dataset.obs.shape[2] != (dims[0] if one_agent else spec.obs_dim):
        return f"its observation widths are {list(card.obs_dims)}, the algorithm was built for {dims}"
    if (card.action_kind == "discrete") != spec.discrete:
        built = "discrete" if spec.discrete else "continuous"
        return f"its actions are {card.action_kind}, the algorithm was built for {built} ones"
    if dataset.actions is not None:
        if spec.discrete and dataset.card.spec.n_actions != spec.n_actions:
            return f"it has {dataset.card.spec.n_actions} actions, the algorithm was built for {spec.n_actions}"
        if not spec.discrete and dataset.actions.shape[-1] != spec.act_dim:
            return (f"its actions are {dataset.actions.shape[-1]}-dimensional, "
                    f"the algorithm was built for {spec.act_dim}")
    return None
