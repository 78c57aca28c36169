"""
exmta: a programmable mail transfer agent on Twisted, with Exchange 2010's
transport model.

The public API is what this module exports; everything else may change.
Names are imported on first use, so that importing one part of exmta (the
configuration, say) does not import the whole server.
"""

__all__ = ["loadOrganization", "makeService"]


def __getattr__(name):
    if name == "loadOrganization":
        from exmta.config import loadOrganization

        return loadOrganization
    if name == "makeService":
        from exmta.service import makeService

        return makeService
    raise AttributeError(f"module 'exmta' has no attribute {name!r}")
