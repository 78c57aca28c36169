"""
The exmta Shell: the Exchange Management Shell commands of the reference
document, run against org.ini and a running server.
"""
