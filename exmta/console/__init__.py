"""
The web console: Exchange 2010's Management Console on the web, served by
twisted.web.  Like the EMC, it is a client of the Shell: every page runs
the Shell's cmdlets through L{exmta.shell.runtime} (docs/architecture.rst).

L{exmta.console.resource.ConsoleResource} is the root resource; the
transport server mounts it at the C{/ecp/} of its
C{[EcpVirtualDirectory]}'s InternalUrl, and an embedding application may
mount it in its own site.
"""
