"""Streaming statistics: the worked example, batch invariance and the centred Gram's shape."""

import torch

from interbasis.basis.stats import RunningMoments


def test_worked_example_uncentred_gram():
    moments = RunningMoments(2)
    moments.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(moments.gram(center=False),
                               torch.tensor([[5.0, 7.0], [7.0, 10.0]], dtype=torch.float64))


def test_streaming_equals_whole_data_for_any_batching():
    generator = torch.Generator().manual_seed(0)
    x = 100 + torch.randn(1000, 5, generator=generator, dtype=torch.float64)
    x[:, -1] = 1.0
    whole = RunningMoments(5)
    whole.update(x)
    for sizes in ([1000], [1, 999], [333, 333, 334], [7] * 142 + [6]):
        streamed = RunningMoments(5)
        for chunk in x.split(sizes):
            streamed.update(chunk)
        torch.testing.assert_close(streamed.mean, whole.mean, atol=1e-12, rtol=0)
        torch.testing.assert_close(streamed.gram(True), whole.gram(True), atol=1e-12, rtol=0)
    reference = torch.cov(x[:, :-1].T, correction=0)
    torch.testing.assert_close(whole.gram(True)[:-1, :-1], reference, atol=1e-12, rtol=0)


def test_centred_gram_keeps_the_constant_and_positions_count_as_samples():
    x = torch.randn(20, 3, 4, dtype=torch.float64)  # 20 samples x 3 positions
    x[..., -1] = 1.0
    moments = RunningMoments(4)
    moments.update(x)
    assert moments.count == 60
    gram = moments.gram(center=True)
    assert gram[-1, -1] == 1.0 and torch.all(gram[-1, :-1] == 0) and torch.all(gram[:-1, -1] == 0)
    assert moments.mean[-1] == 1.0


def test_memory_does_not_grow_with_samples():
    moments = RunningMoments(8)
    for _ in range(50):
        moments.update(torch.randn(1000, 8, dtype=torch.float64))
    state = [t for t in vars(moments).values() if isinstance(t, torch.Tensor)]
    assert sum(t.numel() for t in state) == 8 + 8 * 8
