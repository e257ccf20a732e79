"""lima-run: the LIMA recipe as repeatable jobs."""

__version__ = "0.1.0"
