"""docs/api.md's examples run as written (doctest), so the documentation cannot drift from the API."""
import doctest
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_api_doc_examples_pass():
    result = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 20, f"only {result.attempted} examples found in {DOC}"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {DOC} failed (see output above)"
