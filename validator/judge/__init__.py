"""Judging: metrics per check, paired statistics, the gate verdicts, evenness and
operating characteristics."""
