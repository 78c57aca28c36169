"""
Routing: where each recipient goes.  Pure functions of the organization.
"""

from exmta.routing.resolver import LOCAL, REMOTE, UNKNOWN, Resolution, Resolver

__all__ = ["LOCAL", "REMOTE", "UNKNOWN", "Resolution", "Resolver"]
