"""Worker functions for the tuner tests (module level, so a spawned worker can import them)."""

from sepconv_codegen.tuning.measure import measure_candidate


def crash_on_unfused(layer_data, target, knobs_data, repeat, check, threads):
    """Kills its worker process for every unfused candidate, as a segfaulting kernel would."""
    if not knobs_data["fused"]:
        import os

        os._exit(11)
    return measure_candidate(layer_data, target, knobs_data, repeat, check, threads)


def hang_on_unfused(layer_data, target, knobs_data, repeat, check, threads):
    if not knobs_data["fused"]:
        import time

        time.sleep(600)
    return measure_candidate(layer_data, target, knobs_data, repeat, check, threads)
