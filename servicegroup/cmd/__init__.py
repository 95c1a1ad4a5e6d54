"""The ``servicegroup`` command."""
