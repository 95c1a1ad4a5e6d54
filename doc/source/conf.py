"""Sphinx configuration of the servicegroup documentation.

Built with warnings as errors (``tox -e docs`` or ``tools/build-docs.sh``).
The configuration reference is generated from the options themselves
(``oslo_config.sphinxext``), so it cannot drift from ``servicegroup.conf``;
the API reference comes from the docstrings (autodoc).
"""

from __future__ import annotations

import os
import sys

# Import the package from this checkout even when it is not installed, so
# autodoc documents the code next to these pages. The option reference
# still needs the package installed: it finds the options through the
# 'oslo.config.opts' entry point.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

project = "servicegroup"
author = "servicegroup contributors"
copyright = "servicegroup contributors"  # noqa: A001 - the name Sphinx reads

try:
    from importlib.metadata import version as _version

    release = _version("servicegroup")
except Exception:  # noqa: BLE001 - building docs from a bare checkout
    release = "unknown"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "oslo_config.sphinxext",
]

# The machine building the docs must not change them: the option defaults
# that depend on $HOME have a sample_default, which the reference shows.
templates_path: list[str] = []
exclude_patterns: list[str] = []
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"
pygments_style = "sphinx"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# Type aliases read better than their expansion in signatures.
autodoc_type_aliases: dict[str, str] = {}

html_theme = "alabaster"
html_theme_options = {
    "description": "Who is alive in a group of services, on tooz",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []
html_title = f"servicegroup {release}"
