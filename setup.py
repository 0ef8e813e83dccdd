"""The one thing pyproject.toml cannot say: the config tree's packages.

`conf/` stays at the top of the checkout (the source of truth, read there by lepton_cli/config.py);
in a wheel it becomes the package `lepton_cli.conf` (pyproject.toml maps the name to the folder). Its
sub-folders are found here, so a new group or data-set family needs no packaging change.
"""

from setuptools import find_namespace_packages, setup

conf_packages = ["lepton_cli.conf", *(f"lepton_cli.conf.{name}" for name in find_namespace_packages("conf"))]
setup(packages=[*find_namespace_packages(include=["lepton_cli", "lepton_cli.*"]), *conf_packages])
