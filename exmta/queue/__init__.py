"""
The durable queue between receiving and delivery: the spool (a documented
on-disk format, see L{exmta.queue.spool}), the manager that works it
(L{exmta.queue.manager}), its retry policy (L{exmta.queue.retry}) and the
delivery status notifications it sends (L{exmta.queue.dsn}).

Nothing is imported here: the receive package loads the spool alone and
must not load the manager.
"""
