"""
Local delivery agents: where mail for this organization's mailboxes is
written.
"""

from exmta.deliver.maildir import MaildirDeliveryAgent

__all__ = ["MaildirDeliveryAgent"]
