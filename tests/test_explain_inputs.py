"""`explain` on bad or extreme input: bounded memory whatever the layer, and options it cannot use refused."""

import tracemalloc

import pytest

from sepconv_codegen import SeparableConv2D
from sepconv_codegen.explain import explain_layer
from tests.conftest import TINY_SPEC, run_cli


def _peak_bytes(layer: SeparableConv2D) -> tuple[str, int]:
    tracemalloc.start()  # numpy reports its array buffers to tracemalloc
    try:
        text = explain_layer(layer)
        return text, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "fields, rank",
    [
        (dict(input_shape=(1, 8, 8, 99999999999999999)), 1),
        (dict(input_shape=(100000,) * 4), 1),
        (dict(input_shape=(1, 7, 7, 2048), out_channels=2048), 1),  # the float64 combined filter: 300 MB
        (dict(input_shape=(1, 8, 8, 4), channel_multiplier=8, out_channels=100000), 8),
        (dict(input_shape=(1, 8, 8, 4), kernel_size=(1, 300000)), 1),  # the demo's padded input: 57 MB
        (dict(input_shape=(1, 8, 8, 4), dilation=(1000000, 1)), 1),  # ... 384 MB
    ],
    ids=["huge-C", "huge-all", "C2048", "M8-huge-O", "huge-kernel", "huge-dilation"],
)
def test_explain_stays_within_a_few_mb_and_reports_the_rank_bound(fields, rank):
    layer = SeparableConv2D(**fields)
    text, peak = _peak_bytes(layer)
    assert peak < 8 * 2**20, f"explain allocated {peak / 2**20:.0f} MB"
    assert f"(here at most {rank}); with random filters it has rank {rank}." in text
    assert "difference between output channels\n  is 0;" in text


def test_explain_cli_on_a_huge_layer():
    done = run_cli("explain", "--input-shape", "100000,100000,100000,100000")
    assert done.returncode == 0, done.stderr
    assert "with random filters it has rank 1." in done.stdout


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    return path


def _refused(done, *words):
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not done.stdout.strip()
    for word in words:
        assert word in done.stderr, done.stderr


def test_layer_options_beside_a_spec_are_refused(spec):
    _refused(run_cli("explain", str(spec), "--layer", "second", "--out-channels", "5", "--strides", "3"),
             "--out-channels, --strides", "spec file")
    _refused(run_cli("explain", str(spec), "--bias"), "--bias")
    _refused(run_cli("explain", "--layer", "second"), "--layer 'second'", "no spec file")
    # Without a spec the options still describe the layer, with the same defaults as before.
    done = run_cli("explain", "--bias")
    assert done.returncode == 0, done.stderr
    assert "1x56x56x128 input" in done.stdout and "+ bias[k]" in done.stdout


def test_spec_path_that_is_a_directory(tmp_path):
    folder = tmp_path / "net.toml"
    folder.mkdir()
    _refused(run_cli("explain", str(folder)), "is a folder, not a .toml or .json spec")


def test_spec_whose_second_layer_is_not_a_table(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"layer": [{"name": "a", "input_shape": [1,8,8,4]}, "b"]}')
    _refused(run_cli("explain", str(path)), "layer 1 must be a table of fields, got 'b'")


@pytest.mark.parametrize(
    "fields, cheaper",
    [
        (dict(input_shape=(1, 16, 16, 32), out_channels=64), True),
        (dict(input_shape=(2, 5, 5, 3), kernel_size=1, channel_multiplier=4, out_channels=2), False),
        (dict(input_shape=(1, 13, 11, 3), kernel_size=(3, 2), channel_multiplier=4, out_channels=6), False),
    ],
    ids=["mobilenet-like", "1x1-kernel", "M-above-KH*KW"],
)
def test_explain_says_cheaper_only_when_it_is(fields, cheaper):
    layer = SeparableConv2D(**fields)
    text = explain_layer(layer)
    assert ("Why it is cheaper than conv2d" in text) == cheaper
    assert ("fewer MACs" in text) == cheaper
    assert ("NOT cheaper" in text) == (not cheaper)
    assert (layer.macs < layer.conv2d_macs) == cheaper
    if not cheaper:
        assert f"{layer.macs / layer.conv2d_macs:.1f}x the MACs of conv2d" in text


@pytest.mark.parametrize(
    "padding, note",
    [("SAME", True), (((2, 0), (1, 3)), False), (((1, 1), (1, 1)), False), ("VALID", False)],
    ids=["same-odd", "explicit-asymmetric", "explicit-symmetric", "valid"],
)
def test_explain_gives_tfs_odd_pixel_rule_for_same_only(padding, note):
    layer = SeparableConv2D(input_shape=(1, 8, 8, 4), kernel_size=(2, 4), padding=padding)
    assert ("TF puts the odd pixel at the bottom/right" in explain_layer(layer)) == note


def test_explain_takes_explicit_padding_on_the_command_line():
    done = run_cli("explain", "--input-shape", "1,8,8,4", "--padding", "1,1,0,2")
    assert done.returncode == 0, done.stderr
    assert "top 1, bottom 1, left 0, right 2 zeros" in done.stdout
    _refused(run_cli("explain", "--input-shape", "1,8,8,4", "--padding", "1,2"),
             "--padding '1,2'", "four integers")
    _refused(run_cli("explain", "--input-shape", "1,8,8,4", "--padding=-1,0,0,0"), "-1")
