"""The class corrections (--fix-classes): the annotations whose class the model disputes, and,
with a reference, whether correcting them fixes more of its classes than it breaks."""

import math
from typing import Any, Dict, Mapping

from .audited import AuditedFile
from .options import RefineOptions

# The class corrections are made when the reference shows them fixing more than breaking at
# this level (`sign_test`), the usual one-sided 5 %.
CLASS_TEST_LEVEL = 0.05


def disputes(score, options: RefineOptions) -> bool:
    """Whether the model disputes an annotation's class with at least options.class_score."""
    return score.class_agrees is False and score.other_class_score >= options.class_score


def sign_test(fixed: int, broken: int) -> float:
    """P(X >= fixed) for X ~ Binomial(fixed + broken, 1/2): the chance of fixing at least that
    many of the decided classes if a correction were as likely to break a class as to fix it
    (1.0 when nothing was decided)."""
    n = fixed + broken
    return sum(math.comb(n, k) for k in range(fixed, n + 1)) / 2**n


def class_evidence(audited: AuditedFile, reference_classes: Mapping[int, int],
                   options: RefineOptions) -> Dict[str, Any]:
    """The class corrections judged on the reference: among the annotations the reference pairs
    (`reference_classes`, id -> the reference's category_id) and the model disputes
    (`disputes`), those the reference gives the model's class (fixed), the annotation's (broken)
    or another one; corrections are made ("fix") only when the sign test of fixed against broken
    gives p <= CLASS_TEST_LEVEL: a fix must be shown, not guessed from one or two classes
    (5 fixed and 0 broken are the fewest that pass; 1 and 0 do not)."""
    categories = {a["id"]: a["category_id"] for a in audited.gt["annotations"]}
    fixed = broken = other = 0
    for ann_id, reference_class in reference_classes.items():
        score = audited.scores.get(ann_id)
        if score is None or not disputes(score, options):
            continue
        if reference_class == score.other_category_id:
            fixed += 1
        elif reference_class == categories[ann_id]:
            broken += 1
        else:
            other += 1
    disputed = fixed + broken + other
    p_value = sign_test(fixed, broken)
    outcome = (f"on the reference the model disputes {disputed} of {len(reference_classes)} "
               f"classes at >= {options.class_score:g}: its class would fix {fixed}, break "
               f"{broken} (sign test p = {p_value:.2g})")
    fix = p_value <= CLASS_TEST_LEVEL
    reason = outcome + ("" if fix else ": classes kept")
    return {"fix": fix, "reason": reason, "paired": len(reference_classes),
            "disputed": disputed, "fixed": fixed, "broken": broken, "other": other,
            "p_value": round(p_value, 6)}
