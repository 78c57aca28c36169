"""
org.ini: one organization in one file, read into frozen values.
"""

from exmta.config.organization import loadOrganization, parseOrganization

__all__ = ["loadOrganization", "parseOrganization"]
