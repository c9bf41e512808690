"""The EfficientNet-Lite trunk, folded for speed, against the network its weights describe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from defectlens.encode.efficientnet import BN_EPS, STAGE_STRIDES, load_efficientnet_lite, weights_path


def _conv_bn(state: dict[str, torch.Tensor], x: torch.Tensor, conv: str, bn: str, stride: int = 1, groups: int = 1) -> torch.Tensor:
    """One convolution with TensorFlow's 'SAME' padding done by hand, then its batch norm as such."""
    weight = state[f"{conv}.weight"]
    k = weight.shape[-1]
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + k - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + k - w, 0)
    x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
    y = F.conv2d(x, weight, stride=stride, groups=groups)
    return F.batch_norm(y, state[f"{bn}.running_mean"], state[f"{bn}.running_var"], state[f"{bn}.weight"], state[f"{bn}.bias"], eps=BN_EPS)


def _reference_blocks(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """Every block's output straight from the state dict (EfficientNet-Lite: a stage starts where
    the channel count changes, its first block with the stage's stride): no folding, no layout."""
    x = F.relu6(_conv_bn(state, x, "_conv_stem", "_bn0", stride=2))
    outs, stage = [], -1
    n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    for i in range(n_blocks):
        b = f"_blocks.{i}"
        c_mid, c_out = state[f"{b}._depthwise_conv.weight"].shape[0], state[f"{b}._project_conv.weight"].shape[0]
        expands = f"{b}._expand_conv.weight" in state
        c_in = state[f"{b}._expand_conv.weight"].shape[1] if expands else c_mid
        stride = 1
        if i == 0 or c_in != c_out:
            stage += 1
            stride = STAGE_STRIDES[stage]
        y = F.relu6(_conv_bn(state, x, f"{b}._expand_conv", f"{b}._bn0")) if expands else x
        y = F.relu6(_conv_bn(state, y, f"{b}._depthwise_conv", f"{b}._bn1", stride=stride, groups=c_mid))
        y = _conv_bn(state, y, f"{b}._project_conv", f"{b}._bn2")
        x = x + y if stride == 1 and c_in == c_out else y
        outs.append(x)
    return outs


@pytest.mark.parametrize("size", [(64, 48), (67, 45)])
def test_folded_trunk_gives_the_unfolded_networks_features(size):
    # Folded batch norms, padding inside the stride-1 convolutions and in-place activations must
    # not change what comes out, on even and odd input sizes alike.
    trunk = load_efficientnet_lite("efficientnet-lite0")
    state = torch.load(weights_path("efficientnet-lite0"), map_location="cpu", weights_only=True)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = trunk.forward_stages(x, tuple(range(len(trunk.stages))))
        reference = _reference_blocks(state, x)
    for stage, out in zip(trunk.stages, got, strict=True):
        expected = reference[stage.last_block]
        assert out.shape == expected.shape
        assert float((out - expected).abs().max()) <= 1e-4 * float(expected.abs().max())
