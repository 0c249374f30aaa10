"""The graph attention layer (SIT Eq. 8, offmarl.nets.gat): its weights, its symmetry, its groups."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from offmarl.nets.gat import GraphAttention


def _layer(groups: int = 1, seed: int = 0) -> GraphAttention:
    torch.manual_seed(seed)
    return GraphAttention(in_dim=6, embed_dim=4, groups=groups)


def test_attention_weights_sum_to_one_over_the_nodes():
    gat = _layer()
    x = torch.randn(7, 5, 6)  # [B, N, d]
    w = gat.attention(x)  # [B, N, N]
    assert w.shape == (7, 5, 5) and (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(7, 5))


def test_eq_8_by_hand():
    gat = _layer()
    x = torch.randn(4, 6)  # 4 nodes
    h = x @ gat.w1[0]  # W_1 o_j
    a = torch.cat([gat.w2[0, 0], gat.w2[0, 1]])  # W_2
    for i in range(4):
        scores = torch.stack([F.leaky_relu(a @ torch.cat([h[i], h[j]]), 0.2) for j in range(4)])
        weights = torch.softmax(scores, dim=0)
        torch.testing.assert_close(gat(x)[i], (weights[:, None] * h).sum(dim=0))


def test_permuting_the_other_agents_permutes_nothing_in_agent_i():
    gat = _layer()
    x = torch.randn(3, 5, 6)
    out = gat(x)
    for i in range(5):
        others = [j for j in range(5) if j != i]
        order = torch.tensor(others)[torch.randperm(4, generator=torch.Generator().manual_seed(i))]
        perm = torch.cat([order[:i], torch.tensor([i]), order[i:]])  # node i stays at i, the others are shuffled
        torch.testing.assert_close(gat(x[:, perm])[:, i], out[:, i])
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(gat(x[:, perm]), out[:, perm])  # and the layer is permutation-equivariant


def test_a_masked_node_gets_no_weight():
    gat = _layer()
    x = torch.randn(2, 4, 6)
    mask = torch.tensor([True, True, False, True]).expand(2, 4)
    w = gat.attention(x, mask)
    assert (w[..., 2] == 0).all()
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(2, 4))
    moved = x.clone()
    moved[:, 2] += 100.0  # a masked node cannot change the others' outputs
    torch.testing.assert_close(gat(moved, mask)[:, [0, 1, 3]], gat(x, mask)[:, [0, 1, 3]])


def test_groups_are_independent_layers():
    grouped = _layer(groups=3)
    x = torch.randn(2, 3, 5, 6)  # [B, G, N, d]
    out = grouped(x)
    for g in range(3):
        single = GraphAttention(6, 4)
        with torch.no_grad():
            single.w1.copy_(grouped.w1[g:g + 1])
            single.w2.copy_(grouped.w2[g:g + 1])
        torch.testing.assert_close(out[:, g], single(x[:, g]))
    out.sum().backward()  # group 0's gradient does not depend on group 1's input
    x2 = x.clone()
    x2[:, 1] = torch.randn(2, 5, 6)
    grouped2 = _layer(groups=3)
    grouped2(x2).sum().backward()
    torch.testing.assert_close(grouped.w1.grad[0], grouped2.w1.grad[0])


def test_one_nodes_output_is_its_row_of_the_full_layer():
    """``node=`` computes only that node's weights, with the same values as the whole layer's row (grouped,
    masked, a different node per batch entry and group)."""
    grouped = _layer(groups=3)
    x = torch.randn(2, 7, 3, 5, 6)  # [B, L, G, N, d]
    mask = torch.rand(2, 7, 3, 5) > 0.3
    mask[..., 0] = True
    node = torch.randint(0, 5, (2, 1, 3))  # broadcast over L
    full = grouped(x, mask)  # [B, L, G, N, E]
    expected = full.gather(-2, node.expand(2, 7, 3)[..., None, None].expand(2, 7, 3, 1, 4)).squeeze(-2)
    torch.testing.assert_close(grouped(x, mask, node=node), expected)
    single = _layer()
    y = torch.randn(4, 5, 6)
    torch.testing.assert_close(single(y, node=torch.tensor(3)), single(y)[:, 3])
