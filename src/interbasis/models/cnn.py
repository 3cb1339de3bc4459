"""A small convolutional network for the vision family (docs/experiments.md E2, ``model.arch=cnn``).

Images flow as tokens, like a sequence model: a (channels, height, width) image is a sequence of
height x width positions with ``channels`` coordinates each, so every node layer is a
(batch, positions, width) tensor and LIB's statistics, Jacobians and stochastic sources treat
spatial positions exactly as they treat token positions. The network::

    pixels (N, C*H*W) -> tokens (N, H*W, C)
      conv0: 3x3 conv, stride 2, padding 1, ReLU   -> (N, H/2 * W/2, c0)
      conv1: 3x3 conv, stride 2, padding 1, ReLU   -> (N, H/4 * W/4, c1)
      pool:  mean over positions                   -> (N, c1)
      head:  linear                                -> (N, classes)

Node layers are the inputs of ``conv0``, ``conv1`` and ``head`` and the logits; ``pool`` and
``head`` read ReLU outputs (degeneracy/relu_sync).

:meth:`SmallCNN.fold_bias` returns a copy whose tokens carry a constant last channel that is
always 1 (docs/method.md section 2): each convolution gets an extra input channel, whose weight
at the kernel's centre tap is the bias, and an extra output channel that reads 1 from the same
tap (ReLU(1) = 1). The centre tap of a 3x3 kernel with padding 1 never falls on padding, so the
constant is exactly 1 at every position; mean pooling keeps it 1, and the head takes its bias as
the constant's weight.

    >>> model = SmallCNN((1, 28, 28), [16, 32], 10, seed=0)
    >>> model(torch.rand(5, 784)).shape
    torch.Size([5, 10])
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

KERNEL, STRIDE, PADDING = 3, 2, 1


def _side_after(side: int) -> int:
    return (side + 2 * PADDING - KERNEL) // STRIDE + 1


class ConvTokens(nn.Module):
    """A 3x3 stride-2 convolution and a ReLU on tokens (N, side*side, channels)."""

    def __init__(self, c_in: int, c_out: int, side: int, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING, bias=bias)
        self.side = side

    def forward(self, tokens: Float[Tensor, "batch pos c_in"]) -> Float[Tensor, "batch pos2 c_out"]:
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, self.side, self.side)
        return F.relu(self.conv(grid)).flatten(2).transpose(1, 2)

    def folded_copy(self) -> ConvTokens:
        """The same map on tokens with a constant last channel, which it passes on as 1."""
        c_out, c_in = self.conv.out_channels, self.conv.in_channels
        folded = ConvTokens(c_in + 1, c_out + 1, self.side, bias=False).to(self.conv.weight.dtype)
        centre = KERNEL // 2
        with torch.no_grad():
            weight = torch.zeros_like(folded.conv.weight)
            weight[:c_out, :c_in] = self.conv.weight
            if self.conv.bias is not None:  # no bias: the constant's weight stays 0
                weight[:c_out, c_in, centre, centre] = self.conv.bias
            weight[c_out, c_in, centre, centre] = 1.0  # ReLU(1) = 1: the constant channel
            folded.conv.weight.copy_(weight)
        return folded


class MeanOverPositions(nn.Module):
    """Global average pooling of tokens: (N, P, C) -> (N, C)."""

    def forward(self, tokens: Tensor) -> Tensor:
        return tokens.mean(dim=1)


class SmallCNN(nn.Module):
    """Two stride-2 convolutions, global mean pooling and a linear head."""

    def __init__(self, image_shape: tuple[int, int, int], channels: list[int], d_out: int,
                 seed: int):
        super().__init__()
        if len(channels) != 2:
            raise ValueError(f"SmallCNN has two convolutions; got channels {channels}")
        c_in, height, width = image_shape
        if height != width:
            raise ValueError(f"SmallCNN takes square images; got {height} x {width}")
        self.image_shape = tuple(image_shape)
        self.is_bias_folded = False
        with torch.random.fork_rng(devices=[]):  # private init: the global RNG is untouched
            torch.manual_seed(seed)
            self.conv0 = ConvTokens(c_in, channels[0], height)
            self.conv1 = ConvTokens(channels[0], channels[1], _side_after(height))
            self.pool = MeanOverPositions()
            self.head = nn.Linear(channels[1], d_out)

    def forward(self, pixels: Float[Tensor, "batch features"]) -> Float[Tensor, "batch classes"]:
        c_in, height, width = self.image_shape
        tokens = pixels.reshape(len(pixels), c_in, height * width).transpose(1, 2)
        if self.is_bias_folded:
            tokens = torch.cat([tokens, tokens.new_ones(*tokens.shape[:-1], 1)], dim=-1)
        return self.head(self.pool(self.conv1(self.conv0(tokens))))

    def fold_bias(self) -> SmallCNN:
        """A copy with the constant channel in every node layer (see the module docstring)."""
        if self.is_bias_folded:
            return self
        folded = copy.deepcopy(self)
        folded.is_bias_folded = True
        folded.conv0, folded.conv1 = self.conv0.folded_copy(), self.conv1.folded_copy()
        head = nn.Linear(self.head.in_features + 1, self.head.out_features, bias=False).to(
            self.head.weight.dtype)
        with torch.no_grad():
            head.weight.copy_(torch.cat([self.head.weight, self.head.bias[:, None]], dim=1))
        folded.head = head
        return folded

    @staticmethod
    def relu_layers() -> list[str]:
        """Modules whose input is a ReLU's output: every neuron of these counts in relu_sync."""
        return ["conv1", "pool"]


def image_shape(dataset: str, n_features: int) -> tuple[int, int, int]:
    """(channels, height, width) of a flattened image of ``dataset`` (square images)."""
    channels = 3 if dataset == "cifar10" else 1
    side = round((n_features // channels) ** 0.5)
    if channels * side * side != n_features:
        raise ValueError(f"{dataset} images of {n_features} values are not {channels} square "
                         "channels")
    return channels, side, side
