"""Judging: paired statistics, the gate's verdicts (and the ISA rule), evenness, the
majority-rating baseline and operating characteristics."""
