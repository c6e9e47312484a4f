"""Messenger: a self-hostable messaging server on Twisted."""

from setuptools import find_packages, setup

setup(
    name="messenger",
    version="0.1.0",
    description="A self-hostable messaging server and client built on Twisted",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted.plugins is a namespace shared with Twisted itself: list it
    # explicitly (it has no __init__.py) so the plugin file is installed.
    packages=find_packages(include=["messenger", "messenger.*"]) + ["twisted.plugins"],
    package_data={"messenger": ["store/schema/*.sql"]},
    install_requires=[
        "twisted>=24.3",
        "service-identity>=24.1",
        "pyopenssl>=24.0",
        "argon2-cffi>=23.1",
        "prometheus_client>=0.20",
        "tqdm>=4.66",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100"],
        # Optional for `python -m bench`: a faster load generator, the plot,
        # and profiles of the server.
        "bench": ["uvloop>=0.19", "matplotlib>=3.8", "py-spy>=0.3"],
    },
    entry_points={
        "console_scripts": [
            "messenger-client = messenger.client.__main__:main",
            "messenger-admin = messenger.admin.__main__:main",
        ],
    },
)
