# Lists the packages only; all metadata lives in pyproject.toml.  Computing the list
# means a new subpackage under core/ or plugins/ can never be left out of the wheel.
from setuptools import find_packages, setup

packages = ["conveyor", "conveyor.plugins"]
packages += [f"conveyor.{p}" for p in find_packages("core")]
packages += [f"conveyor.plugins.{p}" for p in find_packages("plugins")]
setup(packages=packages)
