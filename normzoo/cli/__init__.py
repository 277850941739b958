"""Command-line plumbing shared by the experiment entry points."""

from normzoo.cli.config_errors import config_help, explain_flag_error, run

__all__ = ["config_help", "explain_flag_error", "run"]
