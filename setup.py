"""Setuptools shim: the metadata lives in pyproject.toml.

Kept because ``twisted/plugins/`` is a namespace shared with Twisted: the
``[tool.setuptools.packages.find]`` table lists it so the plugin file is
installed next to Twisted's own plugins.
"""

from setuptools import setup

setup()
