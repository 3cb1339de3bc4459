"""metrics.positions: the share of a feature's variance that token position explains."""

import math

import torch

from interbasis.metrics.positions import PositionMoments


def test_a_function_of_position_has_share_one_and_noise_about_none():
    g = torch.Generator().manual_seed(0)
    windows, positions = 400, 16
    by_position = torch.randn(positions, generator=g)
    noise = torch.randn(windows, positions, generator=g)
    features = torch.stack([by_position.expand(windows, positions),  # position alone
                            noise,  # nothing to do with position
                            by_position + noise,  # half and half
                            torch.full((windows, positions), 3.0)], dim=-1)  # constant
    moments = PositionMoments()
    for batch in features.split(64):  # batch by batch equals all at once
        moments.update(batch)
    share = moments.position_share()
    assert share[0].item() == 1.0 or abs(share[0].item() - 1.0) < 1e-12
    assert share[1].item() < 0.05  # ~ (positions - 1) / (windows * positions) by chance
    expected = by_position.var(unbiased=False) / (by_position.var(unbiased=False) + 1)
    assert abs(share[2].item() - expected.item()) < 0.05
    assert math.isnan(share[3].item())
    whole = PositionMoments()
    whole.update(features)
    torch.testing.assert_close(whole.position_share()[:3], share[:3])
