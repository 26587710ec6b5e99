"""README's settings table is the one made from the Settings definition."""

from runner.settings import KEYS
from runner.settings.docs import END, START, table
from tests.conftest import ROOT


def test_readme_documents_every_setting_as_the_definition_says():
    """The table between README's markers is exactly table(): a new or changed setting
    fails here until `python -m runner.settings.docs README.md` is run."""
    readme = (ROOT / "README.md").read_text()
    assert START in readme and END in readme
    shown = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == table()
    for key in KEYS:
        assert f"| `{key}` |" in shown, key
