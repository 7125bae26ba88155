"""The look shared by every figure and picture: Okabe & Ito's colour-blind safe palette, line
styles, the resolution, and PNG files that are the same bytes for the same inputs."""

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Union

from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..utils.atomic import atomic_write

DPI = 100
# Okabe & Ito's colour-blind safe palette, yellow last (faint on white), with line styles varying
# too, so that colour never carries the distinction alone.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINE_STYLES = ("-", "--", "-.", ":")


def line_style(index: int) -> Dict[str, Any]:
    """Colour and line style of the index-th run: the pair is unique for the first 32 runs."""
    n_colours, n_styles = len(OKABE_ITO), len(LINE_STYLES)
    return {
        "color": OKABE_ITO[index % n_colours],
        "linestyle": LINE_STYLES[(index + index // n_colours) % n_styles],
    }


@contextmanager
def default_style() -> Iterator[None]:
    """matplotlib's default style: the same picture whatever the user's matplotlibrc."""
    with mpl_style.context("default"):
        yield


def save_figure(fig: Figure, path: Union[str, os.PathLike]) -> Path:
    """Write `fig` as PNG, atomically, without the metadata (software version) that varies."""
    path = Path(path)
    FigureCanvasAgg(fig)
    atomic_write(
        path,
        lambda f: fig.savefig(f, format="png", dpi=DPI, metadata={"Software": None}),
        mode="wb",
    )
    return path
