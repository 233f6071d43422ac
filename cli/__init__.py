"""The protodb command line (typer). No logic lives here: each command is one library call."""
