"""Relational teacher→student distillation (Tseng et al. Eq. 1-4, Algorithm 1): losses, masks, stages,
the momentum-like mapping update, the ablation switches and resuming across the stage boundary."""

from __future__ import annotations

import copy
import json
import math
import shutil

import numpy as np
import pytest
import torch
from _datasets import make_dataset
from _drive import drive
from _run_files import metrics_without_timing
from _torch_threads import one_torch_thread  # noqa: F401  (autouse)

from offmarl.algos import load_algo, make_algo
from offmarl.algos.distill import ABLATIONS, kl_loss, relation_loss
from offmarl.nets.action_head import ActionHead
from offmarl.train import TrainConfig, fit, seed_everything

ANGLE_KEYS = {f"angle_{side}{kind}" for side in ("teacher", "student") for kind in ("", "_mapped", "_mapped_std")}
TINY = dict(hidden=16, n_layers=1, n_heads=2, feature_dim=8, context_len=4, batch_size=8, dropout=0.0,
            warmup_frac=0.0, lr=1e-3)


# ---- relation loss ----------------------------------------------------------------------------------
def _features():
    """Batch element 0: teacher angles θ̂12 = π/2, θ̂13 = π/4, θ̂23 = π/4; student angles θ̄12 = π/4,
    θ̄13 = π/2, θ̄23 = 3π/4. Batch element 1: identical teacher and student relations (loss 0)."""
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                            [[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]]])
    student = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]],
                            [[2.0, 0.0], [0.0, 1.0], [6.0, 2.0]]])  # element 1: rescaled teacher, same angles
    return teacher, student


def test_relation_loss_hand_computed_huber_and_mse():
    teacher, student = _features()
    q = math.pi / 4  # |θ̄12 − θ̂12| = |θ̄13 − θ̂13| = π/4 < δ = 1;  |θ̄23 − θ̂23| = π/2 > 1
    h_small = 0.5 * q ** 2  # Huber, quadratic part: 0.308425
    h_large = 2 * q - 0.5  # Huber, linear part: |d| − δ/2 = 1.070796
    # entry i = batch mean of Σ_{j≠i}; element 1 contributes 0, so the mean halves element 0's sum
    # huber = [0.308425, 0.689610, 0.689610], mse = [0.616850, 1.542126, 1.542126]
    huber = torch.tensor([h_small + h_small, h_small + h_large, h_small + h_large]) / 2
    mse = torch.tensor([q ** 2 + q ** 2, q ** 2 + (2 * q) ** 2, q ** 2 + (2 * q) ** 2]) / 2
    assert torch.allclose(relation_loss(teacher, student), huber, atol=1e-5)
    assert torch.allclose(relation_loss(teacher, student, kind="mse"), mse, atol=1e-5)
    assert torch.allclose(relation_loss(teacher, teacher.clone()), torch.zeros(3), atol=1e-5)


def test_relation_loss_gradient_reaches_own_student_only():
    teacher, student = _features()
    teacher.requires_grad_(True)
    for i in range(3):
        s = student.clone().requires_grad_(True)
        relation_loss(teacher, s)[i].backward()
        others = [j for j in range(3) if j != i]
        assert torch.all(s.grad[:, others] == 0)
        assert s.grad[0, i].abs().sum() > 0
    assert teacher.grad.abs().sum() > 0  # the teacher side (M) is trained through the loss


def test_relation_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="kind must be"):
        relation_loss(torch.ones(2, 3, 4), torch.ones(2, 3, 4), kind="l1")
    with pytest.raises(ValueError, match=r"\[B, n, d\]"):
        relation_loss(torch.ones(2, 3, 4), torch.ones(2, 3, 5))


# ---- KL -------------------------------------------------------------------------------------------
def test_kl_discrete_hand_computed_with_masks():
    head = ActionHead(n_actions=3)
    # one agent, B = 1, K = 2: step 0 is a pad, step 1 real; action 2 unavailable at the real step
    teacher = torch.tensor([[[[9.0, -9.0, 3.0], [0.0, 0.0, 5.0]]]])  # masked: p_T = (0.5, 0.5, 0)
    student = torch.tensor([[[[0.0, 0.0, 0.0], [math.log(3.0), 0.0, -2.0]]]])  # masked: p_S = (0.75, 0.25, 0)
    batch = {"mask": torch.tensor([[False, True]]), "avail": torch.tensor([[[[True] * 3], [[True, True, False]]]])}
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # 0.143841
    assert kl_loss(head, teacher, student, batch).item() == pytest.approx(expected, abs=1e-6)
    batch["mask"][:] = True  # were step 0 real, its KL(softmax(9, -9, 3) ∥ uniform) would enter the mean
    z = math.exp(9) + math.exp(-9) + math.exp(3)
    p = [math.exp(9) / z, math.exp(-9) / z, math.exp(3) / z]
    step0 = sum(pi * math.log(pi * 3) for pi in p)  # 1.0832
    assert kl_loss(head, teacher, student, batch).item() == pytest.approx((step0 + expected) / 2, abs=1e-5)


def test_kl_continuous_is_fixed_variance_gaussian():
    head = ActionHead(low=[-1.0, -1.0], high=[1.0, 1.0])  # squash = tanh
    teacher = torch.zeros(1, 1, 1, 2)
    student = torch.tensor([[[[math.atanh(0.6), math.atanh(-0.8)]]]])  # actions (0.6, -0.8): ||Δ||² = 1
    batch = {"mask": torch.ones(1, 1, dtype=torch.bool)}
    assert kl_loss(head, teacher, student, batch, kl_std=1.0).item() == pytest.approx(0.5, abs=1e-6)
    assert kl_loss(head, teacher, student, batch, kl_std=0.5).item() == pytest.approx(2.0, abs=1e-5)


# ---- the algorithm ------------------------------------------------------------------------------------
def _distill(ds, steps: int = 8, seed: int = 0, **overrides):
    seed_everything(seed)
    cfg = dict(TINY, steps=steps, teacher_fraction=0.25)
    cfg.update(overrides)
    algo = make_algo("distill", ds.spec, **cfg)
    algo.fit_dataset(ds)
    return algo


def _sharpen_teacher(algo):
    """An untrained teacher is almost uniform; scale its output layer so the KL term is far from 0."""
    with torch.no_grad():
        algo.teacher.model.head.out.weight.mul_(200.0)


def _student_batch(algo, ds, seed: int = 3):
    sampler = algo.make_sampler(ds, seed)
    batch = sampler.batch_at(np.arange(ds.n_steps)[:24])  # includes left-padded windows
    assert (~batch["mask"]).any()
    return batch


def test_teacher_frozen_and_students_trained_in_student_stage():
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    algo = _distill(ds, steps=8)
    sampler = algo.make_sampler(ds, 0)
    assert algo.teacher_steps == 2 and algo.student_steps == 6 and algo.total_steps == 8
    assert set(drive(algo, sampler, 2)[-1]) == {"teacher_loss"}
    assert algo.stage == "student" and not any(p.requires_grad for p in algo.teacher.model.parameters())
    teacher = copy.deepcopy(algo.teacher.model.state_dict())
    students = copy.deepcopy(algo.students.state_dict())
    for losses in drive(algo, sampler, 6):
        assert set(losses) == {"loss", "action", "rel", "kl", *ANGLE_KEYS}
    for key, value in algo.teacher.model.state_dict().items():
        assert torch.equal(value, teacher[key]), key
    assert not all(torch.equal(v, students[k]) for k, v in algo.students.state_dict().items())


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("ablation, m_every", [(None, 3), ("no_momentum", 1)])
def test_mapping_m_steps_every_e_updates_of_n(ablation, m_every):
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    algo = _distill(ds, steps=10, ablation=ablation, mapping_period=3, teacher_fraction=0.1)
    sampler = algo.make_sampler(ds, 0)
    drive(algo, sampler, 1)
    assert algo.stage == "student"
    m_steps = []
    for k in range(1, 10):
        m0, n0 = _params(algo.M), _params(algo.N)
        drive(algo, sampler, 1)
        assert _changed(n0, algo.N), f"N did not step at student update {k}"
        if _changed(m0, algo.M):
            m_steps.append(k)
    assert m_steps == [k for k in range(1, 10) if k % m_every == 0]
    assert algo.m_updates == len(m_steps)


def test_shared_mapping_is_one_network_stepped_every_update():
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    algo = _distill(ds, steps=6, ablation="shared_mapping", teacher_fraction=0.2)
    assert algo.M is algo.N and algo.m_optimizer is None
    sampler = algo.make_sampler(ds, 0)
    drive(algo, sampler, 1)
    for _ in range(3):
        before = _params(algo.N)
        drive(algo, sampler, 1)
        assert _changed(before, algo.N)


# which Eq. 4 term each ablation changes (compared with the full method on the same weights and batch)
EXPECTED_CHANGES = {
    "conventional": {"rel"},          # α = 0: the relation term is off
    "shared_mapping": {"rel"},        # M = N: teacher features go through N
    "no_momentum": set(),             # same losses, different M schedule (test above)
    "no_mapping": {"rel"},            # identity maps
    "no_kl": {"kl"},                  # β = 0
    "no_kl_no_mapping": {"kl", "rel"},
    "rel_mse": {"rel"},               # squared error instead of Huber
}


def _weighted_terms(algo, batch):
    s = algo.settings
    with torch.no_grad():
        terms = algo.distill_losses(algo.to_device(batch))
    return {"action": terms["action"], "rel": s.alpha * terms["rel"], "kl": s.beta * terms["kl"]}


def test_each_ablation_changes_exactly_its_term():
    assert set(EXPECTED_CHANGES) == set(ABLATIONS)
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    full = _distill(ds)
    _sharpen_teacher(full)
    batch = _student_batch(full, ds)
    reference = _weighted_terms(full, batch)
    assert all(v.abs().sum() > 0 for v in reference.values())
    for ablation, changes in EXPECTED_CHANGES.items():
        algo = _distill(ds, ablation=ablation)
        _sharpen_teacher(algo)
        terms = _weighted_terms(algo, batch)
        for name, value in terms.items():
            same = torch.allclose(value, reference[name], atol=1e-7, rtol=1e-6)
            assert same != (name in changes), f"{ablation}: term {name} {'unchanged' if same else 'changed'}"
        if ablation in ("conventional", "no_kl", "no_kl_no_mapping"):
            off = "rel" if ablation == "conventional" else "kl"
            assert torch.all(terms[off] == 0)
    identity = _distill(ds, ablation="no_mapping")
    _sharpen_teacher(identity)
    with torch.no_grad():
        t = identity.teacher.outputs(batch).features.permute(1, 2, 0, 3)[batch["mask"]]
        s = identity.students.eval()(batch["rtg"], batch["obs"], batch["actions"], batch["timesteps"],
                                     batch["mask"]).features.permute(1, 2, 0, 3)[batch["mask"]]
        assert torch.allclose(identity.distill_losses(batch)["rel"], relation_loss(t, s), atol=1e-6)


def test_padding_never_leaks_into_distillation_losses_or_gradients():
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    algo = _distill(ds)
    _sharpen_teacher(algo)
    batch = _student_batch(algo, ds)
    pad = ~batch["mask"]
    g = torch.Generator().manual_seed(5)
    noisy = {k: v.clone() for k, v in batch.items()}
    noisy["obs"][pad] = torch.randn(noisy["obs"][pad].shape, generator=g) * 50
    noisy["rtg"][pad] = torch.randn(noisy["rtg"][pad].shape, generator=g) * 50
    noisy["actions"][pad] = torch.randint(0, 5, noisy["actions"][pad].shape, generator=g)
    noisy["timesteps"][pad] = torch.randint(0, 6, noisy["timesteps"][pad].shape, generator=g)
    avail = torch.rand(noisy["avail"][pad].shape, generator=g) < 0.5
    avail[..., 0] = True
    noisy["avail"][pad] = avail

    def losses_and_grads(b):
        modules = [algo.students, algo.M, algo.N]
        for m in modules:
            m.zero_grad(set_to_none=True)
        terms = algo.distill_losses(b)
        sum(terms.values()).sum().backward()
        grads = [p.grad.clone() for m in modules for p in m.parameters()]
        return {k: v.detach() for k, v in terms.items()}, grads

    terms_a, grads_a = losses_and_grads(batch)
    terms_b, grads_b = losses_and_grads(noisy)
    for name in terms_a:
        assert torch.equal(terms_a[name], terms_b[name]), name
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_student_depends_only_on_its_agent_data():
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    algo = _distill(ds, alpha=0.0)  # L_rel couples the students' inputs through the (detached) relation targets
    _sharpen_teacher(algo)
    batch = _student_batch(algo, ds)
    with torch.no_grad():
        base = algo.forward(algo.students, batch).action
        other = {k: v.clone() for k, v in batch.items()}
        other["obs"][:, :, 1:] += 5.0
        other["actions"][:, :, 1:] = (other["actions"][:, :, 1:] + 1) % 5
        changed = algo.forward(algo.students, other).action
    assert torch.equal(base[0], changed[0]) and not torch.allclose(base[1:], changed[1:])


# ---- stages across runs ------------------------------------------------------------------------------
def _fit(algo, ds, run_dir, **kw):
    cfg = TrainConfig(steps=algo.total_steps, seed=0, checkpoint_every=2, log_every=1, progress=False,
                      tensorboard=False, **kw)
    return fit(algo, ds, run_dir, cfg)


def _kill_at_first_student_update(algo):
    """Make ``algo`` die (as a kill would) on its first student update: the last checkpoint is the hand-over."""
    original = algo._student_update

    def dies(batch):
        if algo.student_updates == 0:
            raise KeyboardInterrupt
        return original(batch)

    algo._student_update = dies


def test_a_resume_at_the_hand_over_continues_the_students_exactly(tmp_path):
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    reference = _distill(ds, steps=8, teacher_fraction=0.375)  # 3 teacher + 5 student updates
    _fit(reference, ds, tmp_path / "a")
    assert json.loads((tmp_path / "a" / "teacher" / "stage.json").read_text())["step"] == 3
    assert load_algo(tmp_path / "a" / "teacher").name == "teacher"

    interrupted = _distill(ds, steps=8, teacher_fraction=0.375)
    _kill_at_first_student_update(interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fit(interrupted, ds, tmp_path / "b")
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    artifact = tmp_path / "b" / "teacher" / "algo.pt"
    stamp = artifact.stat().st_mtime_ns

    resumed = _distill(ds, steps=8, teacher_fraction=0.375)
    teacher_updates = []
    original_update = resumed.teacher.update
    resumed.teacher.update = lambda batch: teacher_updates.append(1) or original_update(batch)
    _fit(resumed, ds, tmp_path / "b", resume=True)
    assert teacher_updates == []  # the teacher came back from the hand-over's checkpoint, not trained again
    assert artifact.stat().st_mtime_ns == stamp
    assert resumed.stage == "student" and resumed.student_updates == resumed.student_steps
    for mine, ref in ((resumed.students, reference.students), (resumed.teacher.model, reference.teacher.model),
                      (resumed.M, reference.M), (resumed.N, reference.N)):
        for (key, a), b in zip(mine.state_dict().items(), ref.state_dict().values()):
            assert torch.equal(a, b), key  # bit-identical to the uninterrupted run
    assert (metrics_without_timing(tmp_path / "b" / "metrics.csv")
            == metrics_without_timing(tmp_path / "a" / "metrics.csv"))


def test_a_resume_refuses_another_runs_teacher_and_rewrites_a_missing_one(tmp_path):
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    _fit(_distill(ds, steps=4, alpha=0.02), ds, tmp_path / "other")
    interrupted = _distill(ds, steps=4)
    _kill_at_first_student_update(interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fit(interrupted, ds, tmp_path / "run")
    teacher = tmp_path / "run" / "teacher"
    shutil.rmtree(teacher)
    shutil.copytree(tmp_path / "other" / "teacher", teacher)
    with pytest.raises(ValueError, match=r"run/teacher does not belong to this run .*delete it to resume"):
        _fit(_distill(ds, steps=4), ds, tmp_path / "run", resume=True)
    shutil.rmtree(teacher)
    resumed = _distill(ds, steps=4)
    _fit(resumed, ds, tmp_path / "run", resume=True)
    saved = load_algo(teacher)
    assert all(torch.equal(a, b) for a, b in zip(saved.model.state_dict().values(),
                                                 resumed.teacher.model.state_dict().values()))


def test_sum_reduction_scales_rel_and_kl_by_the_real_positions_only():
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    mean_algo, sum_algo = _distill(ds, steps=4), _distill(ds, steps=4, distill_reduction="sum")
    for algo in (mean_algo, sum_algo):
        algo.enter_stage("student")
        _sharpen_teacher(algo)
    batch = _student_batch(mean_algo, ds)
    positions = int(batch["mask"].sum())
    assert positions < batch["mask"].numel()  # pads are not counted
    mean, summed = mean_algo.distill_losses(batch), sum_algo.distill_losses(batch)
    assert torch.equal(mean["action"], summed["action"])
    for term in ("rel", "kl"):
        assert mean[term].min() > 0
        torch.testing.assert_close(summed[term], mean[term] * positions)
    with pytest.raises(ValueError, match="distill_reduction must be one of mean, sum"):
        make_algo("distill", ds.spec, distill_reduction="total")


def test_a_wider_deeper_teacher_distils_into_students_of_their_own_size():
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    algo = _distill(ds, steps=8, teacher_hidden=32, teacher_layers=2)
    assert algo.teacher.model.spec.hidden == 32 and len(algo.teacher.model.transformer.blocks) == 2
    assert algo.students.spec.hidden == 16 and len(algo.students.transformer.blocks) == 1
    losses = drive(algo, algo.make_sampler(ds, 0), 8)[-1]
    assert algo.stage == "student" and set(losses) == {"loss", "action", "rel", "kl", *ANGLE_KEYS}
    assert all(np.isfinite(v) for v in losses.values()) and losses["kl"] > 0
    with pytest.raises(ValueError, match="teacher_hidden and teacher_layers must be >= 0"):
        make_algo("distill", ds.spec, teacher_layers=-1)


def test_distill_config_errors_name_the_field():
    ds = make_dataset(n_agents=3, episodes=2, seed=1)
    with pytest.raises(ValueError, match="mapping must be one of"):
        make_algo("distill", ds.spec, mapping="mirror")
    with pytest.raises(ValueError, match=r"a budget of 1 steps cannot train the 2 stages \[.teacher., .student.\]"):
        make_algo("distill", ds.spec, steps=1)
    with pytest.raises(ValueError, match="no ablation 'no_teacher'"):
        make_algo("distill", ds.spec, ablation="no_teacher")


def test_a_scaled_budget_trains_both_stages_in_proportion():
    """fit(TrainConfig(scale=0.4)) on a distill built for 200 steps: 80 updates, 40 per stage (the stage
    boundaries come from the one budget, not from the config the algorithm was built with)."""
    ds = make_dataset(n_agents=3, episodes=6, seed=1)
    algo = _distill(ds, steps=200, teacher_fraction=0.5)
    teacher_updates = []
    original = algo.teacher.update
    algo.teacher.update = lambda batch: teacher_updates.append(1) or original(batch)
    summary = fit(algo, ds, None, TrainConfig(scale=0.4, seed=0, progress=False))
    assert summary["steps"] == 80 and algo.schedule.stages == (("teacher", 40), ("student", 40))
    assert len(teacher_updates) == 40 and algo.student_updates == 40 and algo.config.steps == 80
