from tests.consumers.queues import moto

__all__ = ["moto"]
