"""The one thing pyproject.toml cannot say: the packages found under aetools/ plus one more,
`aetools.weights_data`, which pyproject.toml maps to the top-level weights/ folder so that the shipped
weights travel in the wheel (`aetools.weights.weights_dir` finds them). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["aetools", "aetools.*"]), "aetools.weights_data"])
