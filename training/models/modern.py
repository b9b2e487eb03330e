"""Beyond ResNets: torchvision's Vision Transformer and MobileNetV2, sized from the data's input shape.

* ``vit``: ``torchvision.models.VisionTransformer`` with the CIFAR recipe of omihub777/ViT-CIFAR
  (4×4 patches, 7 layers, 12 heads, hidden 384, MLP 384: 6,268,810 parameters for 3×32×32 and 10
  classes). ``width`` is the hidden size (a multiple of ``heads``), the MLP as wide. The patch embedding
  takes the data's channels (torchvision's is fixed at 3). Prunable: the attention's packed input
  projection ``in_proj_weight`` (a raw parameter, named explicitly by :func:`training.masks.prunable_names`),
  its output projection and the two MLP layers; LayerNorm, biases, the class token and the position
  embedding are never pruned, and the patch embedding and the head only with ``--prune-patch-and-head``
  (default dense, as TurboPrune's DeiT keeps its patch embedding).
* ``mobilenetv2``: ``torchvision.models.MobileNetV2`` with kuangliu/pytorch-cifar's strides for small
  inputs (the first convolution and the second stage at stride 1: a 4×4 final map at 32×32, 2,236,682
  parameters for 10 classes). ``width`` is the first convolution's channels (32 at ``width_mult`` 1,
  torchvision's channel rounding to multiples of 8 applies). ``--dense-depthwise`` keeps the first
  convolution and every depthwise convolution dense, as AC/DC's MobileNet configurations do.

Both refuse permutation alignment in one line (:data:`NOT_ALIGNABLE`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from training.errors import ConfigError

NOT_ALIGNABLE = {
    "vit": "attention heads permute as blocks of the packed input projection, which no declared structure covers",
    "mobilenetv2": "its depthwise (grouped) convolutions tie each channel to its own filter; no structure is declared",
}


def _square(input_shape: Sequence[int], name: str) -> tuple[int, int]:
    if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
        raise ConfigError(f"{name} needs square images (channels, side, side), got input shape {tuple(input_shape)}")
    return int(input_shape[0]), int(input_shape[1])


def vit(
    num_classes: int,
    input_shape: Sequence[int] = (3, 32, 32),
    width: int = 384,
    layers: int = 7,
    heads: int = 12,
    patch: int = 4,
) -> nn.Module:
    """A Vision Transformer for small images (see the module docstring); torchvision's initialisation."""
    from torchvision.models import VisionTransformer

    channels, side = _square(input_shape, "vit")
    if side % patch:
        raise ConfigError(f"vit: the image side {side} is not a multiple of the patch size {patch}")
    if width % heads:
        raise ConfigError(f"vit: width {width} is not a multiple of the {heads} heads", param="model.width")
    model = VisionTransformer(side, patch, layers, heads, width, width, num_classes=num_classes)
    if channels != 3:  # torchvision's patch embedding takes 3 channels; initialised as torchvision does
        model.conv_proj = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        fan_in = channels * patch * patch
        nn.init.trunc_normal_(model.conv_proj.weight, std=(1.0 / fan_in) ** 0.5)
        nn.init.zeros_(model.conv_proj.bias)
    # torchvision zero-initialises the head (ViT fine-tuning's convention): at initialisation no gradient would
    # reach the other weights, and SNIP, GraSP and SynFlow would score them all zero. ViT-CIFAR, trained from
    # scratch, keeps nn.Linear's own initialisation, as here.
    model.heads.head.reset_parameters()
    model.patch_and_head = ("conv_proj.weight", "heads.head.weight")  # dense unless asked (prunable_names)
    return model


def mobilenetv2(num_classes: int, input_shape: Sequence[int] = (3, 32, 32), width: int = 32) -> nn.Module:
    """MobileNetV2 with CIFAR strides (see the module docstring); torchvision's initialisation."""
    from torchvision.models import MobileNetV2

    channels, _ = _square(input_shape, "mobilenetv2")
    if width < 8:
        raise ConfigError(f"mobilenetv2: width {width} is below 8 channels", param="model.width")
    setting = [
        [1, 16, 1, 1],
        [6, 24, 2, 1],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ]
    model = MobileNetV2(num_classes=num_classes, width_mult=width / 32, inverted_residual_setting=setting)
    first = model.features[0][0]
    first.stride = (1, 1)
    if channels != 3:
        conv = nn.Conv2d(channels, first.out_channels, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out")
        model.features[0][0] = conv
    depthwise = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    model.first_and_depthwise = ("features.0.0.weight", *depthwise)  # dense with --dense-depthwise
    return model
