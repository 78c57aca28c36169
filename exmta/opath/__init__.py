"""
The filter language of Exchange's Shell, in one place: the script blocks
of Where-Object and ForEach-Object, and the OPATH filters of C{-Filter}
that a transport server evaluates::

    Get-SendConnector | Where-Object {$_.Name -like "To*"}
    Get-Message -Filter {FromAddress -eq "kim@fabrikam.com" -and Status -ne "Suspended"}

It belongs to no stage: the Shell (L{exmta.shell.builtins}) and the admin
endpoint (L{exmta.admin.commands}) both use it, and it loads neither.

  - L{exmta.opath.reader}: PowerShell's tokens (strings, variables,
    numbers, barewords), which the Shell's own parser builds on too.
  - L{exmta.opath.parser}: the grammar, to the tree of
    L{exmta.opath.syntax}.
  - L{exmta.opath.evaluate}: the evaluation, with PowerShell's semantics
    (Where-Object).
  - L{exmta.opath.query}: C{-Filter} over rows: OPATH's subset, its
    comparisons and Exchange's error messages.

What it reads: comparisons (C{-eq -ne -gt -ge -lt -le -like -notlike
-match -notmatch -contains -notcontains -in -notin}; each also with a C{c}
prefix, case-sensitive, or an C{i} prefix, as the default is
case-insensitive), C{-and}, C{-or}, C{-xor}, C{-not} and C{!}, and
parentheses.  Operands are quoted strings, numbers (C{10MB}), C{$true},
C{$false}, C{$null}, variables with members (C{$_.Name}, C{$PSItem.Name},
C{$sender}), comma lists, and barewords: a bareword on the left of a
comparison, or alone, names a property of the object (Exchange's OPATH
filters: C{FromAddress -eq "x"}); elsewhere it is a string
(C{Status -eq Retry}).  C{-Filter} takes less (L{exmta.opath.query}).

    from exmta.opath import parseFilter, Evaluator
    node = parseFilter(text)                 # once; raises FilterSyntaxError
    [m for m in messages if Evaluator(getProperty, toText).matches(node, m)]

    from exmta.opath import parseQuery
    predicate = parseQuery(text, ("FromAddress", "Status"))   # raises FilterError
"""

from exmta.opath.evaluate import Evaluator, FilterError, lookupVariable, truthy
from exmta.opath.parser import parseFilter
from exmta.opath.query import parseDateTime, parseQuery
from exmta.opath.syntax import FilterSyntaxError

__all__ = [
    "Evaluator",
    "FilterError",
    "FilterSyntaxError",
    "lookupVariable",
    "parseDateTime",
    "parseFilter",
    "parseQuery",
    "truthy",
]
