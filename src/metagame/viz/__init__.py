"""Pictures, HTML report, terminal summary and the files every command writes."""

from .outputs import write_outputs
from .plots import (
    arc_diagram,
    comparison,
    cross_blocks_figure,
    default_figures,
    heatmap,
    image_overlay,
    matrix_figure,
    save_figure,
    tensor_heatmap,
    waterfall,
)
from .report import render_report, write_report
from .terminal import print_summary, summary_table

__all__ = [
    "write_outputs",
    "heatmap",
    "arc_diagram",
    "waterfall",
    "image_overlay",
    "comparison",
    "cross_blocks_figure",
    "matrix_figure",
    "tensor_heatmap",
    "default_figures",
    "save_figure",
    "render_report",
    "write_report",
    "print_summary",
    "summary_table",
]
