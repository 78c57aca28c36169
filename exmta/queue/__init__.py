"""
The durable queue between receiving and delivery: the spool (a documented
on-disk format, see L{exmta.queue.spool}), the manager that works it, its
retry policy (L{exmta.queue.retry}) and the delivery status notifications
it sends (L{exmta.queue.dsn}).
"""

from exmta.queue.manager import QueueManager
from exmta.queue.retry import RetrySchedule
from exmta.queue.spool import DELIVERED, FAILED, READY, Spool

__all__ = ["DELIVERED", "FAILED", "READY", "QueueManager", "RetrySchedule", "Spool"]
