"""
org.ini: one organization in one file (or one etcd key), read into frozen
values.
"""

from exmta.config.organization import parseOrganization
from exmta.config.storage import loadOrganization, storageFor

__all__ = ["loadOrganization", "parseOrganization", "storageFor"]
