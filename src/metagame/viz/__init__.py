"""Pictures, HTML report, terminal summary and the files every command writes."""

from .outputs import write_outputs

__all__ = ["write_outputs"]
