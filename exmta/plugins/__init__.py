"""
The dropin package of exmta's plugins, searched with C{twisted.plugin}:
transport agents (L{exmta.interfaces.IAgentFactory}) here and in any
installed package's C{exmta/plugins/} folder.  Built-in agents are plugins
too.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__ = []
