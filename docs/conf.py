"""
Sphinx configuration: docs/ as one site, with the README and an API
reference made from the code's docstrings.  tests/test_docs.py builds it
with warnings as errors, so the docs cannot drift from the code:

    python -m sphinx -W -b html docs docs/_build/html
"""

import os
import posixpath
import sys

from docutils import nodes
from sphinx.util import logging

DOCS = os.path.dirname(os.path.abspath(__file__))
# Document the checkout these docs are in, not some installed exmta; the
# epytext converter is the interface reference generator's.
sys.path[:0] = [os.path.dirname(DOCS), DOCS]

from generate_interfaces import convertDocstring  # noqa: E402

project = "exmta"
root_doc = "index"
exclude_patterns = ["_build"]
extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
html_theme = "alabaster"

# Pages outside docs/ that the site holds, by the path the docs link to
# them with.
OUTSIDE = {"../README": "readme"}

log = logging.getLogger(__name__)


def epytextToReST(app, what, name, obj, options, lines):
    """
    exmta's docstrings are epytext, as Twisted's are: C{@param x:} fields
    and C{L{...}} / C{C{...}} markup become reStructuredText.
    """
    lines[:] = convertDocstring("\n".join(lines)).splitlines()


def linkPages(app, doctree, docname):
    """
    The pages link to each other by file name (C{`events <events.rst>`_}),
    which is what GitHub shows them by; in the site those links lead to
    the built pages, and a link to no page is an error.
    """
    for reference in doctree.findall(nodes.reference):
        target = reference.get("refuri", "")
        path, hashmark, anchor = target.partition("#")
        if "://" in path or not path.endswith(".rst"):
            continue
        linked = posixpath.normpath(posixpath.join(posixpath.dirname(docname), path[: -len(".rst")]))
        linked = OUTSIDE.get(linked, linked)
        if linked not in app.env.found_docs:
            log.warning("%s links to %s, which is no page of the docs", docname, target, location=reference)
            continue
        reference["refuri"] = app.builder.get_relative_uri(docname, linked) + hashmark + anchor


def readmeImages(app, relativePath, parent, content):
    """
    The README shows the console's screenshots by their path from the
    checkout (C{docs/console/...}), as GitHub does; included in the site,
    paths are read from docs/.
    """
    if relativePath.name == "README.rst":
        content[0] = content[0].replace(".. image:: docs/", ".. image:: ")


def setup(app):
    app.connect("include-read", readmeImages)
    app.connect("autodoc-process-docstring", epytextToReST)
    app.connect("doctree-resolved", linkPages)
