"""audit.html: one static page to walk through the suspects, offline (no external URL).

A table with one row per annotation, in rank order, each with a thumbnail (the annotation's
outline solid vermillion, its best match's dashed blue; `audit.pictures`), sortable by any score
column (a click on its header, a second click reverses; a few lines of inline JavaScript), and a
second table of the possibly missing instances. Thumbnails are PNG files in audit_thumbs/ next to
the page, loaded lazily (`loading="lazy"`) with their size given, so that a page of 10,000 rows
opens at once and scrolls without the layout jumping.

Thumbnails are named by annotation id (a17.png) and by rank for the missing instances (m3.png);
a second audit writes only those whose bytes change and deletes those it no longer needs, then
writes the page atomically.
"""

import html
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..utils.atomic import write_text_atomic
from .pictures import draw_crops, annotation_crop, missing_crops
from .report import DIGITS
from .scores import Audit

PAGE_FILE, THUMBS_DIR = "audit.html", "audit_thumbs"
THUMB_NAME = re.compile(r"^[am]-?\d+\.png$")  # the thumbnails' file names
THUMB_SIZE = 96  # px, the longer side of a thumbnail

# (header, data-sort kind or None, the first direction of a click, the cell's (value, text))
Column = Tuple[str, Optional[str], str, Callable[[Dict[str, Any]], Tuple[Any, str]]]

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 0.3em; }
h2 { font-size: 1.15em; margin: 1.5em 0 0.4em; }
p { max-width: 60em; margin: 0.3em 0; }
.summary { font-weight: 600; }
.key span { display: inline-block; width: 2.2em; vertical-align: middle; margin: 0 0.3em; }
.key .ann { border-top: 3px solid #D55E00; }
.key .pred { border-top: 3px dashed #0072B2; }
table { border-collapse: collapse; margin-top: 0.5em; }
th, td { padding: 3px 6px; border-bottom: 1px solid #ddd; text-align: right; }
td { vertical-align: middle; }
td.text, th.text { text-align: left; }
thead th { position: sticky; top: 0; background: #f4f4f4; z-index: 1; }
th[data-sort] { cursor: pointer; user-select: none; white-space: nowrap; }
th[data-sort]::after { content: " \\2195"; color: #999; }
th[aria-sort="ascending"]::after { content: " \\2191"; color: #222; }
th[aria-sort="descending"]::after { content: " \\2193"; color: #222; }
td img { display: block; background: #eee; }
.no { color: #B00; font-weight: 600; }
"""

SCRIPT = """
(function () {
  function key(row, col, numeric) {
    var v = row.cells[col].getAttribute("data-v");
    if (v === null || v === "") return null;
    return numeric ? parseFloat(v) : v;
  }
  function sortBy(table, th, col) {
    var numeric = th.getAttribute("data-sort") === "num";
    var now = th.getAttribute("aria-sort");
    var order = (now === "ascending") ? "descending" : (now === "descending") ? "ascending" :
      (th.getAttribute("data-first") === "desc" ? "descending" : "ascending");
    var sign = order === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var keyed = Array.prototype.map.call(body.rows, function (row, i) {
      return [key(row, col, numeric), i, row];
    });
    keyed.sort(function (a, b) {
      if (a[0] === null || b[0] === null) {
        return a[0] === b[0] ? a[1] - b[1] : (a[0] === null ? 1 : -1);
      }
      var c = numeric ? a[0] - b[0] : a[0].localeCompare(b[0]);
      return c !== 0 ? sign * c : a[1] - b[1];
    });
    var fragment = document.createDocumentFragment();
    keyed.forEach(function (k) { fragment.appendChild(k[2]); });
    body.appendChild(fragment);
    Array.prototype.forEach.call(th.parentNode.cells, function (h) {
      if (h.hasAttribute("data-sort")) h.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", order);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      if (!th.hasAttribute("data-sort")) return;
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th, col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, col); }
      });
    });
  });
})();
"""


def _number(value: Optional[float], digits: int = 3) -> Tuple[Any, str]:
    return (value, "") if value is None else (value, f"{value:.{digits}f}")


def _id(value: Optional[int]) -> Tuple[Any, str]:
    return (value, "") if value is None else (value, str(value))


def _agrees(row: Dict[str, Any]) -> Tuple[Any, str]:
    if row["class_agrees"] is None:
        return None, ""
    if row["class_agrees"]:
        return 1, "yes"
    return 0, f"no: {row['other_category_name']} {row['other_class_score']:.2f}"


def _class_margin(row: Dict[str, Any]) -> Tuple[Any, str]:
    """other_class_score - same_class_score: the class evidence alone, the outline's left out
    (the flips rank higher by it than by the suspicion, docs/audit.md)."""
    return _number(round(row["other_class_score"] - row["same_class_score"], DIGITS), 2)


ANNOTATION_COLUMNS: Sequence[Column] = (
    ("rank", "num", "asc", lambda r: _id(r["rank"])),
    ("picture", None, "", lambda r: (None, "")),
    ("annotation", "num", "asc", lambda r: _id(r["id"])),
    ("image", "num", "asc", lambda r: _id(r["image_id"])),
    ("class", "text", "asc", lambda r: (r["category"], r["category"] or "")),
    ("best match", "text", "asc", lambda r: (r["pred_category"], r["pred_category"] or "none")),
    ("score", "num", "desc", lambda r: _number(r["pred_score"], 2)),
    ("mask IoU", "num", "asc", lambda r: _number(r["mask_iou"])),
    ("boundary IoU", "num", "asc", lambda r: _number(r["boundary_iou"])),
    ("class agrees", "num", "asc", _agrees),
    ("other class", "num", "desc", lambda r: _number(r["other_class_score"], 2)),
    ("class margin", "num", "desc", _class_margin),
    ("suspicion", "num", "desc", lambda r: _number(r["suspicion"])),
    ("area", "num", "asc", lambda r: (r["area"], f"{r['area']:.0f}")),
)
MISSING_COLUMNS: Sequence[Column] = (
    ("rank", "num", "asc", lambda r: _id(r["rank"])),
    ("picture", None, "", lambda r: (None, "")),
    ("image", "num", "asc", lambda r: _id(r["image_id"])),
    ("predicted class", "text", "asc", lambda r: (r["pred_category"], r["pred_category"] or "")),
    ("score", "num", "desc", lambda r: _number(r["pred_score"], 2)),
    ("best IoU with an annotation", "num", "asc", lambda r: _number(r["max_iou"])),
    ("area", "num", "desc", lambda r: (r["area"], f"{r['area']:.0f}")),
)
TEXT_COLUMNS = ("class", "best match", "class agrees", "predicted class")


def _table(
    table_id: str,
    columns: Sequence[Column],
    rows: Sequence[Dict[str, Any]],
    thumbs: Sequence[Tuple[str, int, int]],
    alt: Callable[[Dict[str, Any]], str],
) -> str:
    head = []
    for name, sort, first, _ in columns:
        attrs = f' data-sort="{sort}" data-first="{first}"' if sort else ""
        attrs += ' aria-sort="ascending"' if name == "rank" else ""
        attrs += ' class="text"' if name in TEXT_COLUMNS else ""
        head.append(f"<th{attrs}>{html.escape(name)}</th>")
    body = []
    for row, (src, width, height) in zip(rows, thumbs):
        cells = []
        for name, sort, _, cell in columns:
            if sort is None:
                image = (
                    f'<img loading="lazy" src="{html.escape(src)}" width="{width}" '
                    f'height="{height}" alt="{html.escape(alt(row))}">'
                )
                cells.append(f"<td>{image}</td>")
                continue
            value, text = cell(row)
            value = "" if value is None else html.escape(str(value))
            css = ' class="text"' if name in TEXT_COLUMNS else ""
            if name == "class agrees" and text.startswith("no"):
                css = ' class="text no"'
            cells.append(f'<td data-v="{value}"{css}>{html.escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table id="{table_id}" class="sortable"><thead><tr>{"".join(head)}</tr></thead>\n'
        f"<tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    )


def write_thumbnails(
    audit: Audit, gt: Mapping[str, Any], image_dir: os.PathLike, folder: os.PathLike
) -> Tuple[List[Tuple[str, int, int]], List[Tuple[str, int, int]]]:
    """Draw every annotation's thumbnail (a<id>.png) and every possibly missing instance's
    (m<rank>.png) into `folder`; ([(path relative to the page, width, height)] of the
    annotations, of the missing). A file whose bytes are unchanged is not written again, each
    other one is replaced atomically (without fsync), and the thumbnails of an earlier audit
    that this one has not are deleted."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    annotations = audit.annotations
    jobs = (
        ([f"a{s.id}.png" for s in annotations], [annotation_crop(s) for s in annotations]),
        ([f"m{m.rank}.png" for m in audit.missing], missing_crops(audit)),
    )
    out, written = [], set()
    for names, crops in jobs:
        sizes: List[Tuple[str, int, int]] = [("", 0, 0)] * len(crops)
        for k, picture in draw_crops(gt, image_dir, crops, THUMB_SIZE):
            ok, data = cv2.imencode(".png", np.ascontiguousarray(picture[:, :, ::-1]))
            if not ok:
                raise RuntimeError(f"could not encode the thumbnail {names[k]}")
            _write_if_changed(folder / names[k], data.tobytes())
            written.add(names[k])
            sizes[k] = (f"{folder.name}/{names[k]}", picture.shape[1], picture.shape[0])
        out.append(sizes)
    for path in folder.iterdir():
        if THUMB_NAME.match(path.name) and path.name not in written:
            path.unlink()
    return out[0], out[1]


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_page(
    output_dir: os.PathLike,
    audit: Audit,
    rows: Mapping[str, List[Dict[str, Any]]],
    gt: Mapping[str, Any],
    image_dir: os.PathLike,
    title: str,
    summary_text: str,
) -> Path:
    """Write OUTPUT_DIR/audit_thumbs/ and then OUTPUT_DIR/audit.html; return the page's path.
    `rows`: `report.audit_rows` of `audit`."""
    output_dir = Path(output_dir)
    annotation_thumbs, missing_thumbs = write_thumbnails(
        audit, gt, image_dir, output_dir / THUMBS_DIR
    )
    names = {c["id"]: str(c["name"]) for c in gt["categories"]}
    annotations = [
        {**row, "other_category_name": names.get(row["other_category_id"], "")}
        for row in rows["annotations"]
    ]
    n, m = len(annotations), len(rows["missing"])
    missing_part = (
        _table("missing", MISSING_COLUMNS, rows["missing"], missing_thumbs,
               lambda r: f"prediction on image {r['image_id']}")
        if m else "<p>None.</p>"
    )  # fmt: skip
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="summary">{html.escape(summary_text)}</p>
<p class="key">In each picture: <span class="ann"></span>the annotation's outline,
<span class="pred"></span>the prediction that matches it best (any class).</p>
<p>Best match: the prediction of largest mask IoU with the annotation, of any class; class agrees:
the model's most confident class for the object is the annotated one (else: that class and its
score, in "other class"). Suspicion = 1 &minus; mask IoU &times; (1 &minus; class doubt) for an
annotation with a match, 1 without one; class doubt = how much higher the model scores another
class than the annotated one for the same object (0 when it agrees). Rank 1 is the most
suspicious. Click a column header to sort by it, again to reverse.</p>
<h2>Annotations ({n:,})</h2>
{_table("annotations", ANNOTATION_COLUMNS, annotations, annotation_thumbs,
        lambda r: f"annotation {r['id']}")}
<h2>Possibly missing instances ({m:,})</h2>
<p>Confident predictions that no annotation covers, one per object.</p>
{missing_part}
<script>{SCRIPT}</script>
</body>
</html>
"""
    path = output_dir / PAGE_FILE
    write_text_atomic(path, page)
    return path
