"""One module per ``lakehouse`` command, each with ``run(settings, args) -> int`` (its exit code).

A command module imports what its command needs at module level; lakehouse/cli/main.py imports
only the module of the command being run.
"""
