"""Training core: datasets, models, masks, schedules and the masked trainer.

``training`` produces checkpoints; ``landscape`` analyses them. ``training`` never imports
``landscape``.
"""

from training.errors import CheckpointError, ConfigError, DataError, DivergedError, LandscapeError, UserError

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DivergedError",
    "LandscapeError",
    "UserError",
    "__version__",
]
