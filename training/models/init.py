"""Weight initialisation shared by the architectures defined here."""

from torch import nn


def kaiming_init(model: nn.Module) -> nn.Module:
    """Kaiming-normal init (fan_out, ReLU gain) for conv weights, Kaiming-normal (fan_in) for linear
    weights, zero biases, and BatchNorm weight 1 / bias 0, as in open_lth and Su et al. 2020's
    ``sanity-checking-pruning``."""
    for m in model.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
