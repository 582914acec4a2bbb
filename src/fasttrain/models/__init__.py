"""Language models as forward/backward pairs over a parameter arena."""
from fasttrain.models.mlp import MLP

__all__ = ["MLP"]
