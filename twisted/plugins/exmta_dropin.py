from twisted.application.service import ServiceMaker

exmta = ServiceMaker("exmta", "exmta.tap", "An Exchange-style mail transfer agent", "exmta")
