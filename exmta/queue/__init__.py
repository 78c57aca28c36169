"""
The durable queue between receiving and delivery: the spool (a documented
on-disk format, see L{exmta.queue.spool}) and the manager that works it.
"""

from exmta.queue.manager import QueueManager
from exmta.queue.spool import DELIVERED, FAILED, READY, Spool

__all__ = ["DELIVERED", "FAILED", "READY", "QueueManager", "Spool"]
