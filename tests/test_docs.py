"""
The docs in docs/ against the code they describe: the site builds with
Sphinx without a warning, the generated interface reference is current,
every agent event is documented, the example's code shown in the
walkthrough is the example's code, and links between the docs lead
somewhere.
"""

import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap

import exmta

from exmta import agents
from exmta.interfaces import IReceiveAgent, IRoutingAgent

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPOSITORY, "docs")


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def generator():
    spec = importlib.util.spec_from_file_location(
        "generate_interfaces", os.path.join(DOCS, "generate_interfaces.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sectionTitles(text):
    """
    @return: the titles of the sections of a reStructuredText document.
    """
    lines = text.splitlines()
    return {
        lines[index - 1].strip()
        for index in range(1, len(lines))
        if re.fullmatch(r"([=\-~^])\1{2,}", lines[index]) and lines[index - 1].strip()
    }


def codeBlocks(text):
    """
    @return: (what the comment before it says the block is, the block's
        text) for each code block of a document preceded by a comment
        C{.. This block is <path>; ...}.
    """
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        named = re.match(r"\.\. This block is (\S+);", line)
        if not named:
            continue
        start = next(i for i in range(index + 1, len(lines)) if lines[i].startswith(".. code::")) + 2
        end = next(
            (i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith("    ")),
            len(lines),
        )
        block = [line[4:] for line in lines[start:end]]
        while block and not block[-1]:
            block.pop()
        found.append((named.group(1), "\n".join(block) + "\n"))
    return found


def test_interfaceReferenceIsCurrent():
    committed = read(os.path.join(DOCS, "interfaces.rst"))
    assert committed == generator().render(), (
        "docs/interfaces.rst differs from exmta/interfaces.py; regenerate it with: "
        "python docs/generate_interfaces.py"
    )


def test_generatorConvertsEpytext():
    convert = generator().convertDocstring
    assert convert("See L{exmta.agents.Verdict} and C{a{b}c}.") == "See ``exmta.agents.Verdict`` and ``a{b}c``."
    assert convert("the L{Address}es") == "the ``Address``\\ es"
    assert convert("L{the queue<exmta.queue.spool.Spool>}") == "``exmta.queue.spool.Spool``"
    assert convert("I{one} B{two}") == "*one* **two**"
    assert convert(
        "Do it.\n\n@param name: the name,\n    long.\n@return: L{None}.\n@raise ValueError: bad."
    ) == "Do it.\n\n:param name: the name,\n    long.\n:return: ``None``.\n:raise ValueError: bad."


def test_everyEventDocumented():
    titles = sectionTitles(read(os.path.join(DOCS, "events.rst")))
    events = set(agents.EVENTS + agents.ROUTING_EVENTS + agents.DELIVERY_EVENTS)
    events |= set(IReceiveAgent.names()) | set(IRoutingAgent.names())
    assert {"OnRcptCommand", "OnResolvedMessage", "OnFailed"} <= events
    assert sorted(events - titles) == []


def test_exampleCodeShownAsItIs():
    blocks = codeBlocks(read(os.path.join(DOCS, "writing-an-agent.rst")))
    assert {path for path, _ in blocks} == {
        "examples/hello-agent/pyproject.toml",
        "examples/hello-agent/setup.cfg",
        "examples/hello-agent/exmta/plugins/hello_agent.py",
    }
    for path, block in blocks:
        assert block == read(os.path.join(REPOSITORY, path)), (
            f"docs/writing-an-agent.rst shows {path} other than it is; copy the file into the doc"
        )


def test_unitTestInTheWalkthroughPasses():
    text = read(os.path.join(DOCS, "writing-an-agent.rst"))
    lines = text.splitlines()
    comment = lines.index(".. tests/test_docs.py runs this block with examples/hello-agent on the path.")
    start = lines.index(".. code:: python", comment) + 1
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" "))
    # Its own process: the example must not join this one's plugins.
    path = [os.path.join(REPOSITORY, "examples", "hello-agent"), os.path.dirname(os.path.dirname(exmta.__file__))]
    ran = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("\n".join(lines[start:end]))],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(path)),
        capture_output=True, text=True, timeout=60,
    )
    assert ran.returncode == 0, ran.stderr


def test_linksBetweenDocsLead():
    for path in glob.glob(os.path.join(DOCS, "*.rst")):
        for target in re.findall(r"`[^`<]*<([^>`:]+)>`_", read(path)):
            assert os.path.exists(os.path.join(DOCS, target)), f"{os.path.basename(path)} links to {target}"


def buildSite(source, into):
    """
    Build the Sphinx site in C{source} as HTML into C{into}, warnings as
    errors (all of them reported, not only the first).

    @return: the finished L{subprocess.CompletedProcess}.
    """
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", os.path.join(into, "doctrees"), source, os.path.join(into, "html")],
        capture_output=True, text=True, timeout=300,
    )


def test_siteBuildsWithoutWarnings(tmp_path):
    """
    Every page is in the table of contents, every link between pages leads
    to a page, and the API reference imports everything it documents.
    """
    built = buildSite(DOCS, str(tmp_path))
    assert built.returncode == 0, built.stderr
    index = read(os.path.join(tmp_path, "html", "index.html"))
    for page in ("readme", "writing-an-agent", "events", "interfaces", "api"):
        assert f'href="{page}.html"' in index
    api = read(os.path.join(tmp_path, "html", "api.html"))
    assert "exmta.agents.Verdict" in api and "exmta.errors.SettingError" in api


def test_siteLinksLeadToPages(tmp_path):
    """
    The pages link to each other by file name, as GitHub shows them; the
    site turns those links into links to its pages, and a link to a page
    it does not have fails the build.
    """
    source = tmp_path / "source"
    source.mkdir()
    for name in ("conf.py", "generate_interfaces.py"):
        shutil.copy(os.path.join(DOCS, name), source)
    (source / "index.rst").write_text(
        "Index\n=====\n\n`Other <other.rst>`_, `its part <other.rst#part>`_, "
        "`gone <gone.rst>`_, `the web <https://example.com/x.rst>`_.\n\n"
        ".. toctree::\n   :hidden:\n\n   other\n"
    )
    (source / "other.rst").write_text("Other\n=====\n\nPart\n----\n")
    built = buildSite(str(source), str(tmp_path / "out"))
    assert built.returncode != 0
    assert "index links to gone.rst, which is no page of the docs" in built.stderr
    assert built.stderr.count("WARNING") == 1, built.stderr
    index = read(os.path.join(tmp_path, "out", "html", "index.html"))
    assert 'href="other.html"' in index and 'href="other.html#part"' in index
    assert 'href="https://example.com/x.rst"' in index
