"""Every point of the CPU schedule space computes the same thing: a capped sample of each space,
plus the default, on small layers chosen to stress the tiling (odd sizes, strides, multipliers,
channels that are not a multiple of the vector width), against the reference."""

import re

import pytest

from sepconv_codegen import SeparableConv2D as L
from sepconv_codegen.builder import compile_kernel
from sepconv_codegen.schedule.cpu import default_knobs, search_space
from sepconv_codegen.schedule.knobs import Knobs
from sepconv_codegen.spec import SpecError
from sepconv_codegen.targets import resolve_target
from tests.conftest import assert_matches_reference, random_arrays

SAMPLE = 6  # points per layer besides the default; the seed changes which ones

LAYERS = {
    "odd_13x11_c7_o13": L(input_shape=(1, 13, 11, 7), out_channels=13),
    "stride2_mult3": L(input_shape=(1, 15, 15, 5), strides=2, channel_multiplier=3, out_channels=20),
    "dilation2_valid": L(input_shape=(1, 14, 10, 8), dilation=2, padding="VALID", out_channels=24),
    "bias_relu6_k5": L(input_shape=(2, 9, 9, 12), kernel_size=5, out_channels=9, bias=True,
                       activation="relu6"),
    "wide_c40_o72": L(input_shape=(1, 7, 7, 40), out_channels=72),
}


@pytest.fixture(scope="module")
def target():
    return resolve_target("llvm")


@pytest.mark.parametrize("name", LAYERS)
def test_space_sample_matches_reference(name, target):
    layer = LAYERS[name]
    space = search_space(layer, target, limit=SAMPLE + 1, seed=len(name))
    assert space[0] == default_knobs(layer, target)
    assert {k.fused for k in search_space(layer, target)} == {True, False}
    arrays = random_arrays(layer, seed=1)
    for knobs in space:
        kernel = compile_kernel(layer, target, knobs, "test")
        out = kernel(*arrays[:3], bias=arrays[3] if layer.bias else None)
        assert_matches_reference(layer, out, arrays)


@pytest.mark.parametrize(
    "knobs",
    [
        Knobs(tile_h=3, tile_w=5, px=5, oc=8, vec=8, order="channels_outer", pad="stage"),
        Knobs(tile_h=64, tile_w=64, px=16, oc=64, vec=8),  # tiles larger than the layer
        Knobs(tile_h=1, tile_w=1, px=1, oc=8, vec=8, fused=False, unroll=False),
        Knobs(tile_h=2, tile_w=7, px=3, oc=12, vec=4, pad="stage"),
        Knobs(tile_h=1, tile_w=8, px=8, oc=8, vec=8, pack=True),  # 20 channels: last panel padded
        Knobs(tile_h=2, tile_w=4, px=4, oc=16, vec=8, pack=True, fused=False, order="channels_outer"),
        Knobs(tile_h=1, tile_w=3, px=3, oc=8, vec=8, taps="inner", pad="stage"),
        Knobs(tile_h=1, tile_w=8, px=4, oc=8, vec=8, taps="inner", fused=False),
    ],
    ids=["prime_tiles_stage_pad", "oversized", "single_pixel_unfused", "vec4", "packed", "packed_unfused",
         "taps_inner_stage_pad", "taps_inner_unfused"],
)
def test_hand_picked_knobs(knobs, target):
    layer = LAYERS["stride2_mult3"]
    arrays = random_arrays(layer)
    out = compile_kernel(layer, target, knobs, "test")(*arrays[:3])
    assert_matches_reference(layer, out, arrays)


# C*M = 100: 13 channel vectors, a group of 8 then a ragged one of 5 (and 4 padded lanes).
# C*M = 1024 (float32, float16 summing in float32) and 512 (float64): 4 KB rows of the
# intermediate, which the schedule offsets by a cache line each.
GROUPED_LAYERS = {
    "c50_m2_ragged_groups": L(input_shape=(1, 9, 7, 50), channel_multiplier=2, out_channels=12, strides=2),
    "cm1024_aligned_rows": L(input_shape=(1, 5, 4, 512), channel_multiplier=2, out_channels=8, bias=True),
    "cm512_float64_aligned_rows": L(input_shape=(1, 4, 5, 512), out_channels=8, dtype="float64"),
    "cm1024_float16_aligned_rows": L(input_shape=(1, 3, 3, 1024), out_channels=16, dtype="float16",
                                     activation="relu"),
}


@pytest.mark.parametrize("name", GROUPED_LAYERS)
@pytest.mark.parametrize(
    "knobs",
    [
        Knobs(tile_h=1, tile_w=4, px=4, oc=8, vec=8, taps="grouped"),
        Knobs(tile_h=1, tile_w=12, px=6, oc=16, vec=8, taps="grouped", fused=False, flat=True, pack=True),
        Knobs(tile_h=2, tile_w=2, px=2, oc=8, vec=8, taps="grouped", pad="stage", order="channels_outer"),
        Knobs(tile_h=1, tile_w=6, px=3, oc=8, vec=8, flat=True),
    ],
    ids=["fused_rows", "unfused_flat_packed", "stage_pad", "taps_outer_flat"],
)
def test_grouped_taps_and_aligned_rows(name, knobs, target):
    layer = GROUPED_LAYERS[name]
    arrays = random_arrays(layer, seed=4)
    out = compile_kernel(layer, target, knobs, "test")(*arrays[:3], bias=arrays[3] if layer.bias else None)
    assert_matches_reference(layer, out, arrays)


@pytest.mark.parametrize(("layer", "aligned"), [
    (GROUPED_LAYERS["cm1024_aligned_rows"], True),
    (GROUPED_LAYERS["cm512_float64_aligned_rows"], True),
    (GROUPED_LAYERS["cm1024_float16_aligned_rows"], True),
    (L(input_shape=(1, 4, 4, 512), out_channels=8), False),  # 2 KB rows
    (GROUPED_LAYERS["c50_m2_ragged_groups"], False),
], ids=["f32_4k", "f64_4k", "f16_sums_f32_4k", "f32_2k", "f32_400b"])
def test_intermediate_rows_offset_only_at_4k_strides(layer, aligned):
    from sepconv_codegen.tvm_backend.schedule_cpu import schedule_cpu

    for knobs in (Knobs(tile_h=1, tile_w=4, px=4, oc=8, vec=8), Knobs(tile_h=1, tile_w=4, px=4, oc=8, vec=8,
                                                                       flat=True, fused=False)):
        assert ("buffer_dim_align" in schedule_cpu(layer, knobs).mod.script()) is aligned


def test_default_register_tile_fits_the_register_file(target):
    for layer in LAYERS.values():
        k = default_knobs(layer, target)
        vectors = k.oc // k.vec
        assert k.px * vectors + vectors + 1 <= target.vector_registers


FLAT = [
    Knobs(tile_h=1, tile_w=18, px=6, oc=16, vec=8, flat=True, pack=True, order="channels_outer"),
    Knobs(tile_h=1, tile_w=256, px=4, oc=8, vec=8, flat=True),  # one run longer than the output
    Knobs(tile_h=1, tile_w=20, px=5, oc=8, vec=8, flat=True, fused=False, taps="inner"),
    Knobs(tile_h=1, tile_w=12, px=4, oc=24, vec=8, flat=True, pad="stage"),
    Knobs(tile_h=1, tile_w=18, px=6, oc=16, vec=8, flat=True, taps="grouped"),
]


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("knobs", FLAT, ids=["padded_run_packed", "oversized_run", "unfused_taps_inner", "stage_pad",
                                         "taps_grouped"])
def test_flat_pixel_tiles(name, knobs, target):
    """Register tiles that run across rows, on a pixel axis padded to whole runs (the padding is
    computed from the last pixel and never stored)."""
    layer = LAYERS[name]
    arrays = random_arrays(layer, seed=2)
    out = compile_kernel(layer, target, knobs, "test")(*arrays[:3], bias=arrays[3] if layer.bias else None)
    assert_matches_reference(layer, out, arrays)


def test_flat_tiles_are_chosen_where_the_width_admits_no_wide_tile(target):
    # 14 pixels wide: along a row only 7x1 or 14x1 divide it; flat runs take 4-6 pixels x 2 vectors.
    k = default_knobs(L(input_shape=(1, 14, 14, 512), out_channels=512), target)
    assert k.flat and k.oc == 16 and k.tile_w % k.px == 0
    assert search_space(L(input_shape=(1, 14, 14, 64), out_channels=64), target)[0].flat


@pytest.mark.parametrize(
    "fields, message",
    [({"tile_h": 2}, "tile_h must be 1 when flat"), ({"tile_w": 30, "px": 4}, "px (4) must divide tile_w (30)")],
)
def test_flat_knobs_are_validated(fields, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        Knobs(**{"tile_h": 1, "tile_w": 28, "px": 4, "oc": 16, "vec": 8, "flat": True, **fields})


@pytest.mark.parametrize("split", [2, 4, 3])  # chunk counts that do or do not divide 9 or 3 blocks
def test_output_channel_chunks(split, target):
    layer = LAYERS["wide_c40_o72"]  # 72 channels: 9 blocks of 8
    arrays = random_arrays(layer, seed=3)
    for knobs in (Knobs(tile_h=1, tile_w=7, px=7, oc=8, vec=8, oc_split=split),
                  Knobs(tile_h=1, tile_w=20, px=4, oc=24, vec=8, flat=True, oc_split=split, pack=True)):
        out = compile_kernel(layer, target, knobs, "test")(*arrays[:3])
        assert_matches_reference(layer, out, arrays)


def test_few_tiles_get_channel_chunks(target):
    from sepconv_codegen.schedule.cpu import parallel_tasks

    deep = L(input_shape=(1, 7, 7, 1024), out_channels=1024)
    k = default_knobs(deep, target)
    assert k.oc_split > 1 and parallel_tasks(deep, k) >= 8
    assert all(parallel_tasks(deep, p) >= 2 for p in search_space(deep, target))
    assert default_knobs(L(input_shape=(1, 56, 56, 128), out_channels=128), target).oc_split == 1


def test_default_counts_the_padding_of_flat_runs(target):
    # 49 pixels: 6-pixel tiles need runs of 18 (54 computed pixels), 5-pixel tiles runs of 25 (50).
    from sepconv_codegen.schedule.cpu import parallel_tasks

    deep = L(input_shape=(1, 7, 7, 1024), out_channels=1024)
    k = default_knobs(deep, target)
    assert (k.flat, k.px, k.tile_w) == (True, 5, 25)
    assert k.oc_split == 4 and parallel_tasks(deep, k) == 8


def test_default_never_fuses_a_tile_split_into_channel_chunks(target):
    # A fused tile would compute its depthwise step once per chunk.
    layers = [*LAYERS.values(), L(input_shape=(1, 7, 7, 1024), out_channels=1024),
              L(input_shape=(1, 14, 14, 512), out_channels=512)]
    defaults = [default_knobs(layer, target) for layer in layers]
    assert any(k.oc_split > 1 for k in defaults) and any(k.fused for k in defaults)
    assert all(not k.fused for k in defaults if k.oc_split > 1)


@pytest.mark.parametrize("out_channels, heavy", [(64, True), (72, True), (80, False), (128, False)])
def test_depthwise_heavy_defaults_run_along_rows_unfused(out_channels, heavy, target):
    # The depthwise step is 9 / out_channels of the multiply-adds of a 3x3 layer.
    layer = L(input_shape=(1, 112, 112, 32), out_channels=out_channels)
    k = default_knobs(layer, target)
    assert (not k.flat and not k.fused) is heavy
    small = L(input_shape=(1, 9, 16, 8), out_channels=out_channels)  # the same rule, checked
    arrays = random_arrays(small, seed=4)
    out = compile_kernel(small, target, default_knobs(small, target), "test")(*arrays[:3])
    assert_matches_reference(small, out, arrays)


@pytest.mark.parametrize("out_channels", [728, 40, 200, 13])
def test_channel_counts_off_the_register_tile_keep_a_two_vector_tile(out_channels, target):
    # 728 (Xception) = 91 vectors of 8: no 2-4 vector block divides it. The packed pointwise step
    # computes the last block whole over zero filter channels, so the default keeps 16 channels
    # per register tile (AMD EPYC znver3, 19x19x728 -> 728, 1 thread: 8 channels per tile
    # 10.3 ms, 16 channels 5.2 ms; ONNX Runtime 5.4-5.7 ms).
    from sepconv_codegen.schedule.cpu import ragged

    layer = L(input_shape=(1, 19, 19, 64), out_channels=out_channels)
    k = default_knobs(layer, target)
    assert k.oc == 16 and k.pack
    points = search_space(layer, target)
    assert any(ragged(p.oc, out_channels) for p in points)
    assert not any(ragged(p.oc, out_channels) and not p.pack for p in points)


@pytest.mark.parametrize("knobs", [
    Knobs(tile_h=1, tile_w=18, px=6, oc=16, vec=8, flat=True, pack=True),
    Knobs(tile_h=1, tile_w=12, px=4, oc=24, vec=8, flat=True, pack=True, fused=False, oc_split=2),
    Knobs(tile_h=1, tile_w=9, px=3, oc=32, vec=8, pack=True, order="channels_outer"),
], ids=["16_of_40", "24_of_40_chunks", "32_of_40_rows"])
def test_ragged_channel_blocks_match_reference(knobs, target):
    layer = L(input_shape=(1, 9, 9, 12), out_channels=40, bias=True, activation="relu6")
    arrays = random_arrays(layer, seed=5)
    out = compile_kernel(layer, target, knobs, "test")(*arrays[:3], bias=arrays[3])
    assert_matches_reference(layer, out, arrays)


def test_a_filter_past_the_last_level_cache_is_read_once_per_run(target):
    # 1536 x 2048 floats = 12.6 MB: pixels_outer would stream it once per 5-pixel group.
    from sepconv_codegen.schedule.cpu import HUGE_FILTER_BYTES, parallel_tasks

    huge = L(input_shape=(1, 10, 10, 1536), out_channels=2048)
    k = default_knobs(huge, target)
    assert 1536 * 2048 * 4 > HUGE_FILTER_BYTES
    assert (k.order, k.flat, k.tile_w, k.fused) == ("channels_outer", True, 100, False)
    assert parallel_tasks(huge, k) >= 4
    below = default_knobs(L(input_shape=(1, 10, 10, 1024), out_channels=1536), target)  # 6.3 MB
    assert below.order == "pixels_outer"
    small = L(input_shape=(1, 6, 5, 16), out_channels=40)  # the same knobs, checked on a small layer
    arrays = random_arrays(small, seed=6)
    out = compile_kernel(small, target, k, "test")(*arrays[:3])
    assert_matches_reference(small, out, arrays)


@pytest.mark.parametrize("vectors, group", [(4, 4), (8, 8), (18, 6), (30, 6), (91, 7), (40, 8), (13, 8), (128, 8)])
def test_tap_groups_divide_the_channel_vectors_where_they_can(vectors, group):
    from sepconv_codegen.schedule.cpu import tap_group

    assert tap_group(vectors) == group


def test_grouped_taps_leave_no_partial_group_on_144_channels(target):
    # 18 vectors of 8 in groups of 8 left a partial third group whose channel test sat in the
    # innermost loop (56x56x144 -> 40, 5x5, stride 2: 0.57 ms on 1 thread; groups of 6: 0.32 ms).
    from sepconv_codegen.tvm_backend.schedule_cpu import schedule_cpu

    layer = L(input_shape=(1, 12, 12, 144), kernel_size=5, strides=2, out_channels=40)
    knobs = Knobs(tile_h=1, tile_w=6, px=3, oc=16, vec=8, fused=False, taps="grouped", pack=True)
    script = schedule_cpu(layer, knobs).mod.script()
    dw = script[script.index('T.sblock("dw_update")'):script.index('T.sblock("pw_init")')]
    assert "T.where" not in dw
    arrays = random_arrays(layer, seed=7)
    out = compile_kernel(layer, target, knobs, "test")(*arrays[:3])
    assert_matches_reference(layer, out, arrays)


def test_default_holds_every_output_channel_in_one_tile_when_it_can(target):
    # 24 channels: 4 px x 3 vectors takes all 16 registers, allowed only for a tile of all O.
    k = default_knobs(L(input_shape=(1, 56, 56, 144), out_channels=24), target)
    assert (k.px, k.oc) == (4, 24)
    wide = default_knobs(L(input_shape=(1, 14, 14, 512), out_channels=512), target)
    assert wide.oc == 16  # 4 x 3 vectors on 512 channels took 1.0-1.14x the time of 6 x 2


@pytest.mark.parametrize("channels, taps", [(100, "outer"), (104, "outer"), (144, "grouped"), (128, "grouped"),
                                            (40, "grouped")])
def test_default_taps_are_grouped_only_without_a_partial_group(channels, taps, target):
    # 100 and 104 channels: 13 vectors of 8, prime: no group size from 4 to 8 divides them.
    layer = L(input_shape=(1, 35, 35, channels), out_channels=300)
    assert default_knobs(layer, target).taps == taps


def test_large_outputs_take_the_longest_flat_run(target):
    # 147x147 = 21609 pixels: runs of 18 have the least padding (9 pixels), runs of 60 pad 51,
    # 0.2% of the output, and took 0.89-0.92x the time.
    from sepconv_codegen.schedule.cpu import LONG_RUNS_FROM

    big = L(input_shape=(1, 147, 147, 64), out_channels=128)
    assert 147 * 147 >= LONG_RUNS_FROM
    k = default_knobs(big, target)
    assert (k.flat, k.px, k.tile_w) == (True, 6, 60)
    small = default_knobs(L(input_shape=(1, 56, 56, 128), out_channels=128), target)  # 3136 pixels
    assert (small.flat, small.px, small.tile_w) == (True, 6, 24)  # 8 padding pixels, the fewest


# Tap orders other than the default's, at the tilings that change their loop nests. "pixels" on
# widths that 4 does not divide (13x11, 7x7, a 5-wide tile) leaves a partial block of pixels.
TAP_POINTS = {
    "channel_major_rows_fused": Knobs(tile_h=1, tile_w=4, px=4, oc=8, vec=8, taps="channel_major"),
    "channel_major_rows_unfused": Knobs(tile_h=2, tile_w=3, px=3, oc=16, vec=8, taps="channel_major", fused=False,
                                        pack=True),
    "channel_major_flat_fused": Knobs(tile_h=1, tile_w=18, px=6, oc=16, vec=8, taps="channel_major", flat=True,
                                      pack=True),
    "channel_major_flat_unfused_chunks": Knobs(tile_h=1, tile_w=20, px=5, oc=16, vec=8, taps="channel_major",
                                               flat=True, fused=False, pack=True, oc_split=2),
    "pixels_rows_fused": Knobs(tile_h=1, tile_w=8, px=4, oc=8, vec=8, taps="pixels"),
    "pixels_rows_unfused": Knobs(tile_h=2, tile_w=3, px=3, oc=16, vec=8, taps="pixels", fused=False, pack=True),
    "pixels_stage_pad_tail": Knobs(tile_h=1, tile_w=5, px=5, oc=8, vec=8, taps="pixels", pad="stage"),
    "pixels_flat_fused": Knobs(tile_h=1, tile_w=18, px=6, oc=16, vec=8, taps="pixels", flat=True, pack=True),
    "pixels_flat_unfused_chunks": Knobs(tile_h=1, tile_w=20, px=5, oc=16, vec=8, taps="pixels", flat=True,
                                        fused=False, pack=True, oc_split=2),
}


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("point", TAP_POINTS)
def test_tap_orders_match_reference(name, point, target):
    layer = LAYERS[name]
    arrays = random_arrays(layer, seed=8)
    out = compile_kernel(layer, target, TAP_POINTS[point], "test")(*arrays[:3],
                                                                  bias=arrays[3] if layer.bias else None)
    assert_matches_reference(layer, out, arrays)


def test_large_kernels_on_many_channels_walk_one_channel_group_at_a_time(target):
    assert default_knobs(L(input_shape=(1, 28, 28, 240), kernel_size=5, out_channels=240), target).taps \
        == "channel_major"
    for small in (L(input_shape=(1, 56, 56, 144), kernel_size=5, strides=2, out_channels=256),  # 29 KB
                  L(input_shape=(1, 14, 14, 1024), out_channels=1024)):  # 3x3
        assert default_knobs(small, target).taps == "grouped"


def test_pixel_taps_load_each_filter_vector_once_per_four_pixels(target):
    from sepconv_codegen.schedule.cpu import DW_PIXELS
    from sepconv_codegen.tvm_backend.schedule_cpu import schedule_cpu

    layer = L(input_shape=(1, 16, 16, 16), out_channels=24)
    script = schedule_cpu(layer, Knobs(tile_h=1, tile_w=16, px=4, oc=24, vec=8, fused=False, pack=True,
                                       taps="pixels")).mod.script()
    update = script.index('T.sblock("dw_update")')
    # the loops around the update, innermost last: the taps, then 4 pixels of one channel vector
    nest = re.findall(r"for ([\w, ]+) in T\.(\w+)\(([\d, ]+)\)", script[:update])[-3:]
    assert [(kind, extent) for _, kind, extent in nest] == [("grid", "3, 3"), ("unroll", str(DW_PIXELS)),
                                                           ("vectorized", "8")]
    assert "T.where" not in script[update:script.index('T.sblock("pw_init")')]


@pytest.mark.parametrize("shape, kernel, stride, out, taps", [
    ((1, 56, 56, 144), 3, 1, 24, "pixels"),   # MobileNetV2: rows of 56
    ((1, 112, 112, 96), 3, 2, 24, "pixels"),
    ((1, 28, 28, 240), 5, 1, 80, "pixels"),   # EfficientNet 5x5: was channel_major
    ((1, 112, 112, 32), 3, 1, 64, "pixels"),
    ((1, 14, 14, 384), 3, 1, 64, "grouped"),  # depthwise-heavy but flat runs
    ((1, 30, 30, 16), 3, 1, 24, "grouped"),   # rows of 30: no block of 4 pixels divides them
    ((1, 56, 56, 128), 3, 1, 128, "grouped"),  # not depthwise-heavy
])
def test_default_takes_pixel_taps_on_depthwise_heavy_rows(shape, kernel, stride, out, taps, target):
    layer = L(input_shape=shape, kernel_size=kernel, strides=stride, out_channels=out)
    knobs = default_knobs(layer, target)
    assert knobs.taps == taps
    if taps == "pixels":
        assert not knobs.flat and knobs.tile_w % 4 == 0


def test_aarch64_default_keeps_grouped_taps():
    from sepconv_codegen.schedule import aarch64

    layer = L(input_shape=(1, 56, 56, 144), out_channels=24)
    assert aarch64.default_knobs(layer, resolve_target("aarch64")).taps == "grouped"
