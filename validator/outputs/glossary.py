"""One-line definitions of the report's terms (the report's glossary section; each
term's first use links to it) and the anchor each definition has."""

from __future__ import annotations

TERMS: dict[str, str] = {
    "_all": "the pseudo-dimension pooling every rubric dimension of a row into one score.",
    "max_drop": "the largest degradation a check tolerates, in the metric's unit "
                "(per slice and dimension when the config overrides it).",
    "degradation": "reference metric minus candidate metric on the same rows: positive "
                   "means the candidate agrees less with the human ratings.",
    "CI": "the paired bootstrap confidence interval of the degradation: the range the "
          "true loss lies in at the stated confidence.",
    "pp": "percentage points: the difference of two percentages (80% to 75% is 5 pp).",
    "policy confident": "a check fails only when the whole CI lies above max_drop, "
                        "passes when it lies below, and is inconclusive when it spans it.",
    "inconclusive": "the check cannot tell pass from fail: its CI spans max_drop, or too "
                    "few rated rows, or significance is lost after correction.",
    "underpowered": "an inconclusive check whose CI spans max_drop: more rated rows "
                    "would decide it, or, where its slice's rows almost never flip, more "
                    "scored (unrated) rows.",
    "Holm": "the Holm step-down correction of p-values for testing many checks at once, "
            "keeping the chance of any false failure within the false-fail budget.",
    "false-fail budget": "the chance, across all checks of a run, of failing a candidate "
                         "that loses nothing (the gate's family-wise error rate).",
    "detectable": "the smallest degradation this slice's rated rows could tell from zero "
                  "at the run's confidence (larger in small slices).",
    "flips": "rows whose rounded rating changed between reference and candidate: "
             "- moved away from the human rating, + toward it.",
    "human ceiling": "how well two human raters agree with each other on the slice: no "
                     "scorer is expected to beat it.",
    "rated rows": "rows with a human rating; only they can measure agreement.",
    "load average": "the machine's 1-minute load average when speed was measured; above "
                    "its core count the figures are provisional (slowed by other work).",
}


def anchor(term: str) -> str:
    """The definition's element id: ``g-max-drop``."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in term.lower()).strip("-")
    return f"g-{slug or 'all'}"
