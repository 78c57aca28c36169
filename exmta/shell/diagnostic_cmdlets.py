"""
Get-ExchangeDiagnosticInfo: what a running transport server says of
itself.  exmta knows one process (C{EdgeTransport}, the transport service)
and one component, C{ResourceThrottling}: back pressure's level and each
monitored resource's value, level and thresholds, read over the admin
endpoint (L{exmta.admin})::

    Get-ExchangeDiagnosticInfo -Process EdgeTransport -Component ResourceThrottling
"""

from dataclasses import dataclass

from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet
from exmta.shell.queue_cmdlets import _call, _transportServer


@dataclass
class ResourceThrottlingInfo:
    DefaultDisplayPropertySet = ("Resource", "Value", "Level")

    Server: str
    BackPressureLevel: str
    Resource: str
    Value: float
    Unit: str
    Level: str
    NormalThreshold: float
    MediumThreshold: float
    HighThreshold: float


@cmdlet(
    "Get-ExchangeDiagnosticInfo",
    Parameter("Process"),
    Parameter("Component"),
    Parameter("Server"),
)
def getExchangeDiagnosticInfo(context, Process="EdgeTransport", Component=None, Server=None):
    if str(Process).lower() not in ("edgetransport", "edgetransport.exe"):
        raise CmdletError(f"The process '{Process}' was not found; exmta has EdgeTransport only.")
    if Component is None:
        raise CmdletError("Give -Component ResourceThrottling.")
    info = _call(context, "getDiagnosticInfo", Server, component=str(Component))
    if not info["ResourceMonitoringEnabled"]:
        context.writeWarning("Resource monitoring is disabled (EnableResourceMonitoring $false).")
    server = _transportServer(context, Server).name
    return [
        ResourceThrottlingInfo(
            Server=server,
            BackPressureLevel=info["BackPressureLevel"],
            **row,
        )
        for row in info["Resources"]
    ]
