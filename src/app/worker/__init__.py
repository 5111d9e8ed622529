"""The delivery worker: the asyncio loop that claims due deliveries, sends and records them."""

from .dispatcher import Dispatcher, DispatchSettings
from .recorder import DispatchStats

__all__ = ["DispatchSettings", "DispatchStats", "Dispatcher"]
