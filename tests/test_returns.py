"""Returns-to-go: the training function and the evaluation tracker agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

from offmarl.data.returns import ReturnToGoTracker, returns_to_go


def test_returns_to_go_two_episodes_two_agents_by_hand():
    # episode 0: steps 0..2, episode 1: steps 3..4
    rewards = np.array(
        [[1.0, 0.5],
         [2.0, 0.0],
         [3.0, -1.0],
         [4.0, 1.0],
         [5.0, 1.0]], dtype=np.float32)
    starts = np.array([0, 3])
    # agent 0: 1+2+3, 2+3, 3 | 4+5, 5 ; agent 1: 0.5+0-1, 0-1, -1 | 1+1, 1
    expected = np.array([[6, -0.5], [5, -1], [3, -1], [9, 2], [5, 1]], dtype=np.float32)
    out = returns_to_go(rewards, starts)
    assert out.dtype == np.float32 and out.shape == (5, 2)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(returns_to_go(rewards[:, 0], starts), expected[:, 0])
    scaled = returns_to_go(rewards, starts, scale=0.25)
    np.testing.assert_array_equal(scaled, expected * 0.25)


def test_first_return_to_go_is_the_episode_return_d3rlpy_401():
    # d3rlpy#401: rewards [1, 2, 3, 4, 5] must give [15, 14, 12, 9, 5] (not [14, 12, 9, 5, 0])
    rtg = returns_to_go(np.array([1, 2, 3, 4, 5], dtype=np.float32), np.array([0]))
    np.testing.assert_array_equal(rtg, [15, 14, 12, 9, 5])
    tracker = ReturnToGoTracker(15.0, batch_size=1)
    seen = []
    for r in [1, 2, 3, 4, 5]:
        seen.append(tracker.current[0])
        tracker.update(np.array([r], dtype=np.float32))
    np.testing.assert_array_equal(seen, rtg)


@pytest.mark.parametrize("scale", [1.0, 0.001, 1 / 3])
def test_tracker_replays_dataset_episodes_exactly(scale):
    rng = np.random.default_rng(0)
    lengths = np.array([7, 1, 12, 5])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rewards = (rng.normal(size=(lengths.sum(), 3)) * 0.37).astype(np.float32)  # non-dyadic values
    rewards[rng.random(rewards.shape) < 0.2] = 0.1
    train = returns_to_go(rewards, starts, scale=scale)  # [T, 3]
    ends = starts + lengths
    prefix = np.concatenate([np.zeros((1, 3)), np.cumsum(rewards, axis=0, dtype=np.float64)])
    for s, e in zip(starts, ends):
        episode_return = prefix[e] - prefix[s]  # [3]
        # per-agent targets, two parallel copies of the same episode
        tracker = ReturnToGoTracker(episode_return, batch_size=2, scale=scale)
        team = ReturnToGoTracker(float(episode_return.sum()), batch_size=2, scale=scale)
        team_train = returns_to_go(rewards.sum(axis=1, dtype=np.float64)[s:e], np.array([0]), scale=scale)
        for t in range(s, e):
            np.testing.assert_array_equal(tracker.current, np.stack([train[t], train[t]]))
            np.testing.assert_array_equal(team.current, [team_train[t - s]] * 2)
            tracker.update(np.stack([rewards[t], rewards[t]]))
            team.update(np.full(2, rewards[t].astype(np.float64).sum()))
        # after the last reward the remaining return is zero
        np.testing.assert_array_equal(tracker.current, np.zeros((2, 3), np.float32))


def test_tracker_reset_mask_and_shapes():
    tracker = ReturnToGoTracker(np.array([10.0, 20.0]), batch_size=3, scale=0.5)
    assert tracker.current.shape == (3, 2) and tracker.current.dtype == np.float32
    np.testing.assert_array_equal(tracker.current, [[5, 10]] * 3)
    tracker.update(np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32))
    np.testing.assert_array_equal(tracker.current, [[4.5, 9], [3.5, 8], [2.5, 7]])
    tracker.reset(np.array([False, True, False]))
    np.testing.assert_array_equal(tracker.current, [[4.5, 9], [5, 10], [2.5, 7]])
    tracker.reset()
    np.testing.assert_array_equal(tracker.current, [[5, 10]] * 3)
    scalar = ReturnToGoTracker(3.0, batch_size=2)
    assert scalar.current.shape == (2,)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="episode_starts must begin with 0"):
        returns_to_go(np.zeros(4, np.float32), np.array([1]))
    with pytest.raises(ValueError, match="strictly increasing"):
        returns_to_go(np.zeros(4, np.float32), np.array([0, 2, 2]))
    with pytest.raises(ValueError, match="rewards must be"):
        returns_to_go(np.zeros((4, 2, 1), np.float32), np.array([0]))
    tracker = ReturnToGoTracker(np.array([1.0, 2.0]), batch_size=2)
    with pytest.raises(ValueError, match=r"reward must have shape \[2, 2\], got \[2\]"):
        tracker.update(np.zeros(2))
    with pytest.raises(ValueError, match=r"mask must have shape \[2\]"):
        tracker.reset(np.ones(3, bool))
