"""Statistics of a grid of runs over seeds: means and spreads, the share of what BCE loses to
noise that a loss recovers, gains paired by seed, the verdict against the goal, and the tables."""

import math
from statistics import mean, stdev
from typing import Dict, List, Optional, Sequence

from .levels import base_level

# The columns of the tables; the box AP is summarized too, for the refinement's goal.
METRICS = (("segm", "AP"), ("segm", "AP75"), ("boundary", "AP"))
SUMMARIZED = METRICS + (("bbox", "AP"),)
# The goal: recover this share of the boundary AP that BCE loses to noise ...
GOAL_SHARE = 0.30
# ... by more than this many seed-to-seed standard deviations.
GOAL_STDS = 2.0
# A refinement's goal: recover these shares of what BCE loses to noise, each beyond GOAL_STDS.
REFINE_GOALS = (("boundary/AP", 0.5), ("bbox/AP", 0.3))


def summarize(records: Sequence[Dict]) -> Dict[str, Dict[str, Dict[str, Dict[str, float]]]]:
    """{level: {loss: {"segm/AP": {"mean", "std", "n"}, ...}}} over seeds."""
    summary: Dict = {}
    for record in records:
        cell = summary.setdefault(record["level"], {}).setdefault(record["loss"], {})
        for task, metric in SUMMARIZED:
            value = record["results"].get(task, {}).get(metric)
            if value is not None and math.isfinite(value):
                cell.setdefault(f"{task}/{metric}", []).append(value)
    for level in summary.values():
        for loss, cell in level.items():
            for key, values in cell.items():
                cell[key] = {"mean": mean(values), "n": len(values),
                             "std": stdev(values) if len(values) > 1 else float("nan")}
    return summary


def recovered_share(
    summary, level: str, loss: str, key: str, reference: str = "clean"
) -> Optional[float]:
    """(AP_loss - AP_bce_noisy) / (AP_bce_reference - AP_bce_noisy) at `level`, or None if unknown.

    `reference` is the level trained on the unchanged annotations (clean, or a user's as_is);
    at a refined level (`mid_refined`) AP_bce_noisy is BCE's on the noisy annotations it was
    refined from (`mid`)."""
    try:
        bce_clean = summary[reference]["bce"][key]["mean"]
        bce_noisy = summary[base_level(level)]["bce"][key]["mean"]
        value = summary[level][loss][key]["mean"]
    except KeyError:
        return None
    lost = bce_clean - bce_noisy
    return None if lost <= 0 else (value - bce_noisy) / lost


def mask_loss_ceiling(summary, key: str = "boundary/AP") -> Optional[float]:
    """The share of what BCE loses at mid that clean masks win back, the rest of mid kept:

        (AP_bce(mid_no_outlines) - AP_bce(mid)) / (AP_bce(clean) - AP_bce(mid)).

    A mask loss can at best undo the outline noise, so this bounds the share any mask loss can
    recover at mid. None until the three BCE cells are there (or if BCE loses nothing at mid).
    """
    try:
        clean, mid, no_outlines = (summary[level]["bce"][key]["mean"]
                                   for level in ("clean", "mid", "mid_no_outlines"))
    except KeyError:
        return None
    lost = clean - mid
    return None if lost <= 0 else (no_outlines - mid) / lost


def beats_bce(
    summary, level: str, loss: str, key: str = "boundary/AP", reference: str = "clean"
) -> Optional[bool]:
    """Whether `loss` recovers GOAL_SHARE of what BCE loses at `level`, beyond seed noise.

    True when the recovered share is at least GOAL_SHARE and the gain over BCE at the same level,
    AP_loss - AP_bce_noisy, exceeds GOAL_STDS x the pooled seed-to-seed standard deviation of the
    two cells, sqrt((std_loss^2 + std_bce^2) / 2). None when that cannot be told (a cell missing,
    fewer than 2 seeds, or BCE losing nothing to noise).
    """
    share = recovered_share(summary, level, loss, key, reference)
    beyond = None if share is None else beyond_seed_noise(summary, level, loss, key)
    return None if beyond is None else share >= GOAL_SHARE and beyond


def beyond_seed_noise(summary, level: str, loss: str, key: str) -> Optional[bool]:
    """Whether AP_loss - AP_bce_noisy exceeds GOAL_STDS x the pooled seed-to-seed standard
    deviation of the two cells, sqrt((std_loss^2 + std_bce^2) / 2) (BCE's cell at the level's
    base level); None with fewer than 2 seeds in either."""
    own, bce = summary[level][loss][key], summary[base_level(level)]["bce"][key]
    if own["n"] < 2 or bce["n"] < 2:
        return None
    pooled_std = math.sqrt((own["std"] ** 2 + bce["std"] ** 2) / 2)
    return own["mean"] - bce["mean"] > GOAL_STDS * pooled_std


def paired_gains(records: Sequence[Dict], level: str, loss: str, key: str = "boundary/AP",
                 reference: str = "bce") -> List[float]:
    """AP_loss - AP_reference at `level` per seed run by both (the reference loss is bce unless
    given): the seed's noise and training draw cancel. At a refined level, against the reference
    on the noisy annotations it was refined from."""
    task, metric = key.split("/")
    cells = {(level, loss): "own", (base_level(level), reference): "bce"}
    by_seed: Dict = {}
    for r in records:
        value = r["results"].get(task, {}).get(metric)
        cell = cells.get((r["level"], r["loss"]))
        if cell and value is not None and math.isfinite(value):
            by_seed.setdefault(r["seed"], {})[cell] = value
    return [v["own"] - v["bce"] for _, v in sorted(by_seed.items()) if len(v) == 2]


def markdown(
    summary, losses, levels, records: Sequence[Dict] = (), reference: str = "clean"
) -> str:
    lines = []
    for level in levels:
        if level not in summary:
            continue
        lines += [f"### noise: {level}", "",
                  "| loss | mask AP | mask AP75 | boundary AP | boundary AP vs BCE (paired by seed) | recovered "
                  "(mask AP) | recovered (boundary AP) | goal | seeds |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        for loss in losses:
            cell = summary[level].get(loss)
            if not cell:
                continue
            cells = [format_mean_std(cell.get(f"{task}/{metric}")) for task, metric in METRICS]
            gains = paired_gains(records, level, loss) if loss != "bce" or level != base_level(level) else []
            delta = format_values(gains, "+") if gains else ""
            shares = [recovered_share(summary, level, loss, key, reference)
                      if level != reference else None for key in ("segm/AP", "boundary/AP")]
            seeds = max((v["n"] for v in cell.values()), default=0)
            verdict = (beats_bce(summary, level, loss, reference=reference)
                       if level != reference and (loss != "bce" or level != base_level(level))
                       else None)
            goal = {True: "met", False: "not met", None: ""}[verdict]
            lines.append(f"| {loss} | " + " | ".join(cells) + f" | {delta} | "
                         + " | ".join("" if s is None else f"{100 * s:.0f}%" for s in shares)
                         + f" | {goal} | {seeds} |")
        lines.append("")
    ceilings = ["n/a" if c is None else f"{100 * c:.0f}%"
                for c in (mask_loss_ceiling(summary, key) for key in ("segm/AP", "boundary/AP"))]
    if ceilings[1] != "n/a":
        lines += [f"At most a mask loss can win back: BCE trained with clean masks but the rest of "
                  f"mid (its boxes, deletions and flips; level mid_no_outlines) recovers "
                  f"{ceilings[0]} of the mask AP and {ceilings[1]} of the boundary AP that BCE "
                  "loses at mid.", ""]
    lines.append(f"goal: recovers at least {100 * GOAL_SHARE:.0f}% of the boundary AP that BCE "
                 f"loses to noise, by more than {GOAL_STDS:g} x the pooled seed-to-seed standard "
                 "deviation of the loss and BCE at that level (needs 2 or more seeds).")
    if records:
        lines += ["", *per_seed_table(records, losses, levels)]
    return "\n".join(lines)


def per_seed_table(records: Sequence[Dict], losses, levels) -> List[str]:
    """One row per (level, loss): box AP / mask AP / boundary AP of each seed."""
    seeds = sorted({r["seed"] for r in records})
    runs = {(r["level"], r["loss"], r["seed"]): r["results"] for r in records}
    lines = ["Per seed, box AP / mask AP / boundary AP:", "",
             "| noise | loss | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---|" * len(seeds)]
    for level in levels:
        for loss in losses:
            if not any((level, loss, s) in runs for s in seeds):
                continue
            cells = [" / ".join(_ap(runs[level, loss, s], task) for task in ("bbox", "segm", "boundary"))
                     if (level, loss, s) in runs else "" for s in seeds]
            lines.append(f"| {level} | {loss} | " + " | ".join(cells) + " |")
    return lines


def _ap(results: Dict, task: str) -> str:
    value = results.get(task, {}).get("AP")
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f}"


def format_values(values: Sequence[Optional[float]], sign: str = "") -> str:
    """'mean ± sample std' of the finite values, the mean alone for one ('+' in `sign` shows the
    mean's sign); 'n/a' for none."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:{sign}.1f}"
    return f"{mean(values):{sign}.1f} ± {stdev(values):.1f}"


def format_mean_std(value) -> str:
    if not value:
        return "n/a"
    if value["n"] < 2:
        return f"{value['mean']:.1f}"
    return f"{value['mean']:.1f} ± {value['std']:.1f}"


def _best_candidate(summary, records, losses, level: str, key: str):
    """(mean paired gain, loss, gains, pooled std) of the loss other than bce of largest mean
    gain over bce at `level`, among those beyond GOAL_STDS x the pooled std if any; None if
    no loss was paired with bce."""
    cells = summary.get(level, {})
    if "bce" not in cells or key not in cells["bce"]:
        return None
    candidates = []
    for loss in losses:
        if loss == "bce" or key not in cells.get(loss, {}):
            continue
        gains = paired_gains(records, level, loss, key)
        own, bce = cells[loss][key], cells["bce"][key]
        pooled_std = (math.sqrt((own["std"] ** 2 + bce["std"] ** 2) / 2)
                      if own["n"] > 1 and bce["n"] > 1 else math.nan)
        if gains:
            candidates.append((mean(gains), loss, gains, pooled_std))
    if not candidates:
        return None
    beating = [c for c in candidates if c[0] > GOAL_STDS * c[3]]  # NaN compares False
    return max(beating or candidates, key=lambda c: c[0])


def best_loss(summary, records, losses, level: str, key: str = "boundary/AP") -> Optional[str]:
    """The loss the verdict names at `level`: beyond seed noise if one is, else the best by mean
    paired gain (None when only bce was trained there)."""
    best = _best_candidate(summary, records, losses, level, key)
    return None if best is None else best[1]


def verdict(
    summary, records: Sequence[Dict], losses, levels, reference: str = "clean",
    key: str = "boundary/AP",
) -> List[str]:
    """One line per level a user can act on: the loss to train with, or that none beats BCE.

    A loss beats BCE at a level when, over 2 or more seeds, its mean gain over BCE (`key`, paired
    by seed) exceeds GOAL_STDS x the pooled seed-to-seed standard deviation of the two cells; of
    those, the largest mean gain wins. With one seed nothing can be told apart from seed noise.
    """
    lines = []
    for level in levels:
        best = _best_candidate(summary, records, losses, level, key)
        if best is None:
            continue
        gain, loss, gains, pooled_std = best
        spread = f" ± {stdev(gains):.1f}" if len(gains) > 1 else ""
        best = f"{loss} {gain:+.1f}{spread} {key.replace('/', ' ')} over bce (paired, " \
               f"{len(gains)} seed{'s' if len(gains) > 1 else ''})"
        share = recovered_share(summary, level, loss, key, reference) if level != reference else None
        if share is not None:
            best += f", {100 * share:.0f}% of what bce loses to noise"
        if math.isnan(pooled_std):
            lines.append(f"- {level}: cannot tell apart from seed noise with one seed (best: "
                         f"{best}); run 2 or more seeds")
        elif gain > GOAL_STDS * pooled_std:
            lines.append(f"- {level}: use {loss}: {best}, beyond {GOAL_STDS:g} x the pooled seed "
                         f"std ({GOAL_STDS * pooled_std:.1f})")
        else:
            lines.append(f"- {level}: no loss beats bce beyond seed noise (best: {best}; "
                         f"{GOAL_STDS:g} x the pooled seed std is {GOAL_STDS * pooled_std:.1f}): "
                         "keep bce")
    return lines


def refinement_goals(
    summary, records: Sequence[Dict], levels: Sequence[str], losses, reference: str = "clean"
) -> List[str]:
    """Markdown rows, per refined level and loss: the share of the box, mask and boundary AP that
    BCE loses to noise which training on the refined annotations recovers, with the paired gain
    over BCE on the noisy ones, and whether REFINE_GOALS are met (each share at least its goal and
    the gain beyond GOAL_STDS x the pooled seed std; if not, which are missed)."""
    keys = ("bbox/AP", "segm/AP", "boundary/AP")
    lines = ["| refined | loss | " + " | ".join(f"{k.replace('/', ' ')} recovered (gain, paired)"
                                                for k in keys) + " | goal | seeds |",
             "|---|---|" + "---:|" * len(keys) + "---|---:|"]
    goals = dict(REFINE_GOALS)
    for level in levels:
        for loss in losses:
            cell = summary.get(level, {}).get(loss)
            if not cell:
                continue
            shown, met, missed = [], [], []
            for key in keys:
                share = recovered_share(summary, level, loss, key, reference)
                gains = paired_gains(records, level, loss, key)
                gain = format_values(gains, "+") if gains else ""
                shown.append(("n/a" if share is None else f"{100 * share:.0f}%") + f" ({gain})")
                if key in goals:
                    beyond = beyond_seed_noise(summary, level, loss, key) if key in cell else None
                    met.append(None if share is None or beyond is None
                               else share >= goals[key] and beyond)
                    if met[-1] is False:
                        missed.append(key.replace("/", " "))
            goal = ("" if None in met else "met" if all(met)
                    else "not met: " + ", ".join(missed))
            seeds = max(v["n"] for v in cell.values())
            lines.append(f"| {level} | {loss} | " + " | ".join(shown) + f" | {goal} | {seeds} |")
    lines += ["", "goal: at least " + " and ".join(
        f"{100 * share:.0f}% of the {key.replace('/', ' ')}" for key, share in REFINE_GOALS)
        + f" that BCE loses to noise recovered, each gain beyond {GOAL_STDS:g} x the pooled "
        "seed-to-seed standard deviation (needs 2 or more seeds)."]
    return lines
