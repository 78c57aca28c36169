"""exmta: a programmable mail transfer agent on Twisted."""
