"""
The admin endpoint of a running transport server: what the Shell's queue
cmdlets (Get-Queue, Suspend-Message, ...) and configuration reloads talk
to, through a UNIX socket beside the queue.

  - L{exmta.admin.protocol}: the wire protocol, the seam between a server
    and its clients: where the socket is, the JSON lines, the commands and
    their errors.
  - L{exmta.admin.client}: a client (the Shell's); it loads nothing of the
    server.
  - L{exmta.admin.commands}: what each command does, on the queue manager.
  - L{exmta.admin.server}: the socket: who may connect, one connection's
    requests answered in order.
  - L{exmta.admin.parts}: the commands of a server whose receive workers
    each own a part of the queue: every part asked on its own socket, the
    answers put together.

Nothing is imported here, so that a client loads only what it uses.
"""
