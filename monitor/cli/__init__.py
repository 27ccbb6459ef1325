"""The ``driftwarden`` command line: argument parsing, dispatch and terminal output."""
