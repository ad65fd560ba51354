"""Interactive correction: one organ from positive and negative clicks, boxes and scribbles (``ct.segment_prompts``)."""

from .grid import WorkGrid, work_grid
from .prompts import PromptResult, segment_prompts
from .sizes import PROMPTING, OrganPrompting

__all__ = ["segment_prompts", "PromptResult", "PROMPTING", "OrganPrompting", "WorkGrid", "work_grid"]
