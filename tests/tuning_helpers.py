"""Worker functions for the tuner tests (module level, so a spawned worker can import them)."""

from sepconv_codegen.tuning.measure import measure_candidate


def crash_unless_default(layer_data, target, knobs_data, repeat, check, threads):
    """Kills its worker process for every candidate but the default, as a segfaulting kernel would."""
    from sepconv_codegen.schedule.cpu import default_knobs
    from sepconv_codegen.spec import SeparableConv2D

    if knobs_data != default_knobs(SeparableConv2D.from_dict(layer_data), target).to_dict():
        import os

        os._exit(11)
    return measure_candidate(layer_data, target, knobs_data, repeat, check, threads)


def hang_on_unfused(layer_data, target, knobs_data, repeat, check, threads):
    if not knobs_data["fused"]:
        import time

        time.sleep(600)
    return measure_candidate(layer_data, target, knobs_data, repeat, check, threads)
