"""The delivery worker: the asyncio loop that claims due deliveries, sends and records them."""

from .dispatcher import Dispatcher, DispatchSettings
from .observer import DeliveryObserver, NoObserver
from .recorder import DispatchStats

__all__ = ["DeliveryObserver", "DispatchSettings", "DispatchStats", "Dispatcher", "NoObserver"]
