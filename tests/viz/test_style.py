"""The shared look: distinct line styles for many runs, and PNG files that are the same bytes for
the same figure."""

from matplotlib.figure import Figure
from samples import png_size

from noisy_mask.viz.style import DPI, LINE_STYLES, OKABE_ITO, default_style, line_style, save_figure


def test_line_styles_differ_for_32_runs_and_start_with_the_palette():
    styles = [line_style(i) for i in range(32)]
    assert len({(s["color"], s["linestyle"]) for s in styles}) == 32 == 8 * len(LINE_STYLES)
    assert [s["color"] for s in styles[:8]] == list(OKABE_ITO)
    # the 9th run: the first colour again, with the second line style
    assert styles[8] == {"color": OKABE_ITO[0], "linestyle": LINE_STYLES[1]}


def test_save_figure_is_deterministic_and_leaves_no_temporary_file(tmp_path):
    paths = []
    for name in ("a.png", "b.png"):
        with default_style():
            fig = Figure(figsize=(2.0, 1.5), dpi=DPI)
            fig.add_subplot().plot([0, 1], [1, 0], **line_style(3))
        paths.append(save_figure(fig, tmp_path / "out" / name))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert b"Software" not in paths[0].read_bytes()
    assert png_size(paths[0]) == (200, 150)
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["a.png", "b.png"]
