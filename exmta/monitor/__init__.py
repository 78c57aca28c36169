"""
Back pressure: the resource monitor of a transport server
(L{exmta.monitor.service}) and the levels it sets, which the receive side
asks through L{exmta.interfaces.IBackPressure} (L{exmta.monitor.levels}).
"""
