"""Statistics of a grid over seeds: means over seeds, the recovered share, paired gains, the goal
verdict and the tables."""
import math

import pytest

from noisy_mask.experiments import stats


def record(level, loss, seed, boundary_ap, mask_ap=30.0):
    results = {"segm": {"AP": mask_ap, "AP75": mask_ap - 5}, "boundary": {"AP": boundary_ap}}
    return dict(level=level, loss=loss, seed=seed, results=results)


def grid(bce_clean, bce_mid, other_mid, loss="svls"):
    """Records of three seeds: bce clean, bce mid and `loss` mid, boundary AP per seed."""
    records = []
    for seed in range(3):
        records.append(record("clean", "bce", seed, bce_clean[seed]))
        records.append(record("mid", "bce", seed, bce_mid[seed]))
        records.append(record("mid", loss, seed, other_mid[seed]))
    return records


def test_summary_is_mean_and_sample_std_over_seeds():
    summary = stats.summarize(grid([10, 12, 14], [8, 8, 8], [9, 9, 9]))
    cell = summary["clean"]["bce"]["boundary/AP"]
    assert cell["n"] == 3
    assert cell["mean"] == pytest.approx(12.0)
    assert cell["std"] == pytest.approx(2.0)  # sqrt(((-2)^2 + 0 + 2^2) / (3 - 1))
    assert summary["mid"]["svls"]["segm/AP75"]["mean"] == pytest.approx(25.0)


def test_non_finite_metrics_are_left_out():
    records = [record("clean", "bce", 0, float("nan")), record("clean", "bce", 1, 4.0)]
    cell = stats.summarize(records)["clean"]["bce"]["boundary/AP"]
    assert cell["n"] == 1 and cell["mean"] == 4.0 and math.isnan(cell["std"])


def test_recovered_share_is_the_share_of_the_loss_to_noise():
    # BCE loses 12 - 9 = 3 points; the loss gets back 10.5 - 9 = 1.5 of them.
    summary = stats.summarize(grid([12, 12, 12], [9, 9, 9], [10.5, 10.5, 10.5]))
    assert stats.recovered_share(summary, "mid", "svls", "boundary/AP") == pytest.approx(0.5)
    assert stats.recovered_share(summary, "mid", "bce", "boundary/AP") == pytest.approx(0.0)
    assert stats.recovered_share(summary, "hard", "svls", "boundary/AP") is None


def test_goal_needs_the_share_and_a_gain_beyond_seed_noise():
    # Share 1.5 / 3 = 50 %, gain 1.5 > 2 x pooled std 0.5 = 1.0 (std of [8.5, 9, 9.5] is 0.5).
    met = stats.summarize(grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11]))
    assert stats.beats_bce(met, "mid", "svls") is True
    # The same means with a seed-to-seed std of 1.5: 1.5 > 2 x 1.5 fails.
    noisy = stats.summarize(grid([12, 12, 12], [7.5, 9, 10.5], [9, 10.5, 12]))
    assert stats.beats_bce(noisy, "mid", "svls") is False
    # Beyond the noise but recovering only 0.6 / 3 = 20 % of the loss.
    small = stats.summarize(grid([12, 12, 12], [9, 9, 9], [9.6, 9.6, 9.6]))
    assert stats.beats_bce(small, "mid", "svls") is False
    # BCE loses nothing to noise: no share, no verdict.
    none = stats.summarize(grid([9, 9, 9], [9, 9, 9], [10, 10, 10]))
    assert stats.beats_bce(none, "mid", "svls") is None


def test_goal_needs_two_seeds():
    records = [record("clean", "bce", 0, 12), record("mid", "bce", 0, 9), record("mid", "svls", 0, 12)]
    assert stats.beats_bce(stats.summarize(records), "mid", "svls") is None
    records[-1] = record("mid", "svls", 0, 9.5)  # a share of 1/6, below the goal: still unknown
    assert stats.beats_bce(stats.summarize(records), "mid", "svls") is None
    assert "| not met |" not in stats.markdown(stats.summarize(records), ["bce", "svls"], ["mid"])


def test_paired_gains_are_per_seed_differences():
    records = grid([12, 12, 12], [8, 9, 13], [9, 11, 13])
    assert stats.paired_gains(records, "mid", "svls") == [1, 2, 0]
    # A seed that only one of the two ran is left out.
    assert stats.paired_gains(records[:-1], "mid", "svls") == [1, 2]


def test_markdown_reports_share_and_verdict():
    records = grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11])
    text = stats.markdown(stats.summarize(records), ["bce", "svls"], ["clean", "mid"], records)
    svls_row = next(line for line in text.splitlines() if line.startswith("| svls"))
    assert svls_row.split(" | ")[1:] == [
        "30.0 ± 0.0", "25.0 ± 0.0", "10.5 ± 0.5", "+1.5 ± 0.0", "", "50%", "met", "3 |"]


def test_markdown_lists_every_seed():
    records = grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11])[:-1]  # svls mid seed 2 missing
    records[0]["results"]["bbox"] = {"AP": 40.31}
    text = stats.markdown(stats.summarize(records), ["bce", "svls"], ["clean", "mid"], records)
    rows = text.split("Per seed, box AP / mask AP / boundary AP:")[1].strip().splitlines()
    assert rows[0] == "| noise | loss | seed 0 | seed 1 | seed 2 |"
    assert rows[2] == "| clean | bce | 40.3 / 30.0 / 12.0 | n/a / 30.0 / 12.0 | n/a / 30.0 / 12.0 |"
    assert rows[4] == "| mid | svls | n/a / 30.0 / 10.0 | n/a / 30.0 / 10.5 |  |"
    assert len(rows) == 5


def test_mask_loss_ceiling_is_the_share_clean_masks_win_back():
    records = grid([12, 14, 16], [8, 9, 10], [9, 9, 9])
    summary = stats.summarize(records)
    assert stats.mask_loss_ceiling(summary) is None  # no mid_no_outlines yet
    records += [record("mid_no_outlines", "bce", seed, ap) for seed, ap in enumerate([9, 10, 11])]
    summary = stats.summarize(records)
    # BCE: clean 14, mid 9, mid_no_outlines 10 -> (10 - 9) / (14 - 9) = 20%
    assert stats.mask_loss_ceiling(summary) == pytest.approx(0.2)
    text = stats.markdown(summary, ["bce", "svls"], ["clean", "mid", "mid_no_outlines"], records)
    assert "recovers n/a of the mask AP and 20% of the boundary AP that BCE loses at mid" in text


def test_verdict_names_the_loss_that_beats_bce_beyond_seed_noise():
    # mid: bce [8.5, 9, 9.5] (std 0.5), svls [10, 10.5, 11] (std 0.5): paired gains 1.5 each,
    # pooled std 0.5, 1.5 > 2 x 0.5; share (10.5 - 9) / (12 - 9) = 50 %.
    records = grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11])
    lines = stats.verdict(stats.summarize(records), records, ["bce", "svls"], ["clean", "mid"])
    assert lines == [
        "- mid: use svls: svls +1.5 ± 0.0 boundary AP over bce (paired, 3 seeds), 50% of what "
        "bce loses to noise, beyond 2 x the pooled seed std (1.0)"
    ]


def test_verdict_keeps_bce_when_no_gain_is_beyond_seed_noise():
    # bce [7.5, 9, 10.5] and svls [9, 10.5, 12] both have std 1.5: gain 1.5 < 2 x 1.5 = 3.0.
    records = grid([12, 12, 12], [7.5, 9, 10.5], [9, 10.5, 12])
    (line,) = stats.verdict(stats.summarize(records), records, ["bce", "svls"], ["mid"])
    assert line.startswith("- mid: no loss beats bce beyond seed noise (best: svls +1.5")
    assert line.endswith("2 x the pooled seed std is 3.0): keep bce")


def test_verdict_prefers_a_loss_beyond_noise_over_a_larger_noisy_gain():
    # "gce" gains more on average (+3) but varies by 4 points; "svls" gains +1.5 steadily.
    records = grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11])
    records += [record("mid", "gce", s, v) for s, v in enumerate([8, 12, 16])]
    (line,) = stats.verdict(stats.summarize(records), records, ["bce", "svls", "gce"], ["mid"])
    assert line.startswith("- mid: use svls:")


def test_verdict_with_one_seed_says_it_cannot_tell_and_uses_the_reference_level():
    records = [record("as_is", "bce", 0, 20.0), record("as_is", "dice", 0, 21.0),
               record("mid", "bce", 0, 14.0), record("mid", "dice", 0, 17.0)]
    lines = stats.verdict(stats.summarize(records), records, ["bce", "dice"], ["as_is", "mid"],
                          reference="as_is")
    # mid: dice wins back (17 - 14) / (20 - 14) = 50 % of what bce loses.
    assert lines == [
        "- as_is: cannot tell apart from seed noise with one seed (best: dice +1.0 boundary AP "
        "over bce (paired, 1 seed)); run 2 or more seeds",
        "- mid: cannot tell apart from seed noise with one seed (best: dice +3.0 boundary AP "
        "over bce (paired, 1 seed), 50% of what bce loses to noise); run 2 or more seeds",
    ]


def test_refined_level_is_measured_against_bce_on_the_noisy_annotations():
    """clean bce box / boundary AP 60 / 40 on every seed; mid bce 50, 52, 48 / 20, 22, 18 (std 2);
    bce on mid refined 54, 55, 53 / 32, 33, 31 (std 1): gains 4 ± 1 box and 12 ± 1 boundary, of
    the 10 and 20 lost: 40% and 60%, beyond 2 x sqrt((2^2 + 1^2) / 2) = 3.2 both: the goal (30%
    box, 50% boundary) met. dice on it: box 51, 53, 49 (10%): not met; its boundary AP 30 on
    every seed (50%, gain 10 beyond 2 x sqrt((2^2 + 0) / 2) = 2.8): met."""
    records = []
    cells = {("clean", "bce"): ([60] * 3, [40] * 3), ("mid", "bce"): ([50, 52, 48], [20, 22, 18]),
             ("mid_refined", "bce"): ([54, 55, 53], [32, 33, 31]),
             ("mid_refined", "dice"): ([51, 53, 49], [30, 30, 30])}
    for (level, loss), (boxes, boundaries) in cells.items():
        for seed in range(3):
            r = record(level, loss, seed, boundaries[seed])
            r["results"]["bbox"] = {"AP": boxes[seed]}
            records.append(r)
    summary = stats.summarize(records)
    assert stats.recovered_share(summary, "mid_refined", "bce", "bbox/AP") == pytest.approx(0.4)
    assert stats.recovered_share(summary, "mid_refined", "bce", "boundary/AP") == pytest.approx(0.6)
    assert stats.paired_gains(records, "mid_refined", "bce", "bbox/AP") == [4, 3, 5]
    assert stats.paired_gains(records, "mid_refined", "dice") == [10, 8, 12]
    assert stats.beyond_seed_noise(summary, "mid_refined", "bce", "bbox/AP") is True
    rows = stats.refinement_goals(summary, records, ["mid_refined"], ["bce", "dice"])
    assert rows[2] == ("| mid_refined | bce | 40% (+4.0 ± 1.0) | n/a (+0.0 ± 0.0) | "
                       "60% (+12.0 ± 1.0) | met | 3 |")
    assert rows[3] == ("| mid_refined | dice | 10% (+1.0 ± 0.0) | n/a (+0.0 ± 0.0) | "
                       "50% (+10.0 ± 2.0) | not met: bbox AP | 3 |")
    # The main table shows bce's own gain at a refined level, not at a noise level.
    table = stats.markdown(summary, ["bce", "dice"], ["mid", "mid_refined"], records)
    mid_refined = table[table.index("### noise: mid_refined"):]
    assert "| bce | 30.0 ± 0.0 | 25.0 ± 0.0 | 32.0 ± 1.0 | +12.0 ± 1.0 |" in mid_refined
    assert stats.best_loss(summary, records, ["bce"], "mid") is None
    noisy = grid([40] * 3, [20, 22, 18], [21, 23, 19])  # svls +1: not beyond noise, the best
    assert stats.best_loss(stats.summarize(noisy), noisy, ["bce", "svls"], "mid") == "svls"
