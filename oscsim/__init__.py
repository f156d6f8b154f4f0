"""oscsim: topographic coupled oscillator networks — simulate, train, analyse."""

from oscsim.errors import IntegrationError, OscsimInputError, OscsimWarning
from oscsim.parameters import ACTIVATIONS, COUPLINGS, NetworkParameters

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "COUPLINGS",
    "IntegrationError",
    "NetworkParameters",
    "OscsimInputError",
    "OscsimWarning",
    "__version__",
]
