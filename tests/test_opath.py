"""
Tests for L{exmta.opath}: the filter language's grammar and its errors,
Exchange's -Filter over rows (L{exmta.opath.query}), dates, and that the
language loads neither the Shell nor the server.
"""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from exmta.opath import FilterError, FilterSyntaxError, parseDateTime, parseFilter, parseQuery
from exmta.opath.syntax import ArrayLiteral, Bareword, Comparison, Logical, Not

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SHELLISH = st.text(
    alphabet=st.sampled_from(list("ab-$'\"`(){}[]@,;|&<>#=:.*?!1 \t\n\r\u2013\u201c\u2019xyz_")),
    max_size=60,
)


# The grammar.


def test_filters():
    node = parseFilter('FromAddress -eq "kim@fabrikam.com" -and -not ($_.Status -clike "S*")')
    assert isinstance(node, Logical) and node.operator == "and"
    assert isinstance(node.left, Comparison) and node.left.operator == "eq"
    assert node.left.left == Bareword("FromAddress", 0, 11)
    assert isinstance(node.right, Not) and node.right.operand.operator == "clike"
    assert parseFilter("Size -gt 10MB").right.value == 10 * 2**20
    assert isinstance(parseFilter("Status -in Retry,Ready").right, ArrayLiteral)
    assert isinstance(parseFilter("!Enabled"), Not)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "The filter is empty."),
        ("a -eq", "You must provide a value expression following the '-eq' operator."),
        ("a -frob b", "Unexpected token '-frob' in expression or statement."),
        ("(a -eq b", "Missing closing ')' in expression."),
        ("a b", "Unexpected token 'b' in expression or statement."),
        ("a -eq )", "You must provide a value expression following the '-eq' operator."),
    ],
)
def test_filterErrors(text, message):
    with pytest.raises(FilterSyntaxError) as caught:
        parseFilter(text)
    assert caught.value.message == message


@settings(max_examples=800, deadline=None)
@given(st.one_of(st.text(max_size=60), _SHELLISH))
def test_anyFilterParsesOrIsRefused(text):
    try:
        parseFilter(text)
    except FilterSyntaxError as error:
        str(error)


# Exchange's -Filter.

FIELDS = ("FromAddress", "Status", "Size", "Recipients", "DateReceived", "LastError")
DATES = ("DateReceived",)


def row(**values):
    base = {
        "FromAddress": "kim@fabrikam.com",
        "Status": "Retry",
        "Size": 2048,
        "Recipients": ["lee@contoso.com", "max@contoso.com"],
        "DateReceived": "2026-01-01T10:00:00Z",
        "LastError": None,
    }
    base.update(values)
    return base


class QueryTests(SynchronousTestCase):
    def matches(self, text, **values):
        return parseQuery(text, FIELDS, DATES)(row(**values))

    def test_comparisons(self):
        self.assertTrue(self.matches('FromAddress -eq "KIM@fabrikam.com"'))
        self.assertTrue(self.matches("FromAddress -ne 'ann@fabrikam.com'"))
        self.assertTrue(self.matches("FromAddress -like '*@FABRIKAM.com'"))
        self.assertTrue(self.matches("FromAddress -notlike 'ann*'"))
        self.assertTrue(self.matches("Size -gt 2KB") is False)
        self.assertTrue(self.matches("Size -ge 2KB"))
        self.assertTrue(self.matches("Size -lt 3000"))
        self.assertTrue(self.matches("Size -le 2048"))
        self.assertTrue(self.matches("Status -eq Retry"))
        self.assertTrue(self.matches("LastError -eq $null"))
        self.assertFalse(self.matches("LastError -ne $null"))

    def test_lists(self):
        self.assertTrue(self.matches("Recipients -eq 'max@contoso.com'"))
        self.assertTrue(self.matches("Recipients -contains 'LEE@contoso.com'"))
        self.assertTrue(self.matches("Recipients -like 'm*'"))
        self.assertFalse(self.matches("Recipients -ne 'max@contoso.com'"))
        self.assertTrue(self.matches("Recipients -notcontains 'ann@contoso.com'"))

    def test_dates(self):
        self.assertTrue(self.matches("DateReceived -gt '2026-01-01T09:59:59Z'"))
        self.assertFalse(self.matches("DateReceived -gt '2026-01-01T10:00:00+00:00'"))
        self.assertTrue(self.matches("DateReceived -lt '2026-01-02'"))
        with self.assertRaises(FilterError):
            parseQuery("DateReceived -gt 'soon'", FIELDS, DATES)

    def test_logic(self):
        """
        -and binds tighter than -or; -not and parentheses work; braces of
        a script block are optional.
        """
        text = "{Status -eq 'Ready' -and Size -gt 0 -or FromAddress -like 'kim*'}"
        self.assertTrue(self.matches(text))
        self.assertFalse(self.matches("Status -eq 'Ready' -and (Size -gt 0 -or FromAddress -like 'kim*')"))
        self.assertTrue(self.matches("-not (Status -eq 'Ready')"))
        self.assertFalse(self.matches("-not Status -eq 'Retry'"))

    def test_quoting(self):
        self.assertTrue(self.matches("FromAddress -eq 'o''brien@x'", FromAddress="o'brien@x"))
        self.assertTrue(self.matches('FromAddress -eq "say `"hi`""', FromAddress='say "hi"'))

    def test_errorsInExchangesWords(self):
        """
        The grammar's errors (in PowerShell's words in the Shell) are told
        as the -Filter of Exchange's cmdlets tells them.
        """
        for text, message in [
            ("", "The filter is empty"),
            ("Status -eq", "Invalid filter syntax: expected a value after -eq, found the end of the filter"),
            ("Status -eq )", "Invalid filter syntax: expected a value after -eq, found )"),
            ("Status 'Retry'", "Invalid filter syntax: expected a comparison such as -eq after Status, found 'Retry'"),
            ("Status -match 'R'", "Invalid filter syntax: expected a comparison such as -eq after Status, found -match"),
            ("-not Status", "Invalid filter syntax: expected a comparison such as -eq after Status, found the end of the filter"),
            ("Status -eq 'a' -or", "Invalid filter syntax: expected a property name, found the end of the filter"),
            ("'Retry' -eq Status", "Invalid filter syntax: expected a property name, found 'Retry'"),
            ("Status -eq 'a' Size", "Invalid filter syntax at 'Size'"),
            ("Status -eq a,b", "Invalid filter syntax at ,"),
            ("(Status -eq 'a'", "Invalid filter syntax: a ( is not closed"),
            ("Status -eq 'a')", "Invalid filter syntax at )"),
            ("Status -eq 'unterminated", "Invalid filter syntax at \"'unterminated\""),
            ("Status -eq \"$who\"", "Unknown variable $who in the filter"),
        ]:
            with self.assertRaises(FilterError, msg=text) as caught:
                parseQuery(text, FIELDS, DATES)
            self.assertEqual(str(caught.exception), message)

    def test_longChains(self):
        """
        A filter of many terms is read and matched without recursing once
        per term.
        """
        text = " -and ".join(["Size -gt 1"] * 5000)
        self.assertTrue(parseQuery(text, FIELDS, DATES)(row()))
        self.assertFalse(parseQuery(text + " -and Size -lt 1", FIELDS, DATES)(row()))
        self.assertTrue(parseQuery(text.replace("-and", "-or") + " -or Size -lt 1", FIELDS, DATES)(row()))

    def test_errors(self):
        for text, words in [
            ("", "empty"),
            ("Colour -eq 'red'", "Colour is not a property"),
            ("Status 'Retry'", "expected a comparison"),
            ("Status -eq", "expected a value"),
            ("Status -eq 'a' -and", "expected a property name"),
            ("(Status -eq 'a'", "is not closed"),
            ("Status -eq 'a')", "Invalid filter syntax"),
            ("Status -eq $who", "Unknown variable $who"),
            ("Status -eq 'unterminated", "Invalid filter syntax"),
        ]:
            with self.assertRaises(FilterError, msg=text) as caught:
                parseQuery(text, FIELDS, DATES)
            self.assertIn(words, str(caught.exception), text)

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.sampled_from(list("Status-eqandor()'\" $1KB*Size")), max_size=40))
    def test_parserNeverCrashes(self, text):
        """
        Any text either parses or raises FilterError, never anything else.
        """
        try:
            predicate = parseQuery(text, FIELDS, DATES)
        except FilterError:
            return
        try:
            predicate(row())
        except FilterError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=30))
    def test_anyText(self, text):
        try:
            parseQuery(text, FIELDS, DATES)
        except FilterError:
            pass


class DateTests(SynchronousTestCase):
    def test_forms(self):
        self.assertEqual(parseDateTime("2026-01-01T00:00:00Z"), 1767225600)
        self.assertEqual(parseDateTime("2026-01-01T01:00:00+01:00"), 1767225600)
        self.assertEqual(parseDateTime(1767225600), 1767225600)
        local = parseDateTime("1/1/2026 10:00 AM")
        self.assertEqual(local, parseDateTime("2026-01-01 10:00"))
        self.assertEqual(parseDateTime("1/1/2026"), parseDateTime("2026-01-01"))
        with self.assertRaises(ValueError):
            parseDateTime("tomorrow")


def test_loadsNeitherShellNorServer():
    """
    The filter language belongs to no stage: importing it loads none of
    the Shell, the queue, the admin endpoint or Twisted.
    """
    code = "import json, sys, exmta.opath; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )
    loaded = json.loads(result.stdout)
    assert [m for m in loaded if m.startswith(("exmta.shell", "exmta.queue", "exmta.admin", "twisted"))] == []
