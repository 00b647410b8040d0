"""The layer IR: derived geometry and costs, and every bad input of SEMANTICS.md refused by name."""

import json
import re

import pytest

from sepconv_codegen import Network, SeparableConv2D, SpecError, load_spec, mobilenet_v1
from sepconv_codegen.spec import chain

BASE = dict(input_shape=(1, 8, 8, 4), out_channels=6)


@pytest.mark.parametrize(
    "size, kernel, stride, dilation, pads, out",
    [
        (224, 3, 2, 1, (0, 1), 112),  # SEMANTICS.md: (0, 1), not (1, 1)
        (112, 3, 1, 1, (1, 1), 112),
        (7, 4, 1, 1, (1, 2), 7),  # even kernel: the odd pixel goes to the bottom/right
        (10, 5, 1, 2, (4, 4), 10),  # dilation: effective kernel 9
        (9, 3, 2, 1, (1, 1), 5),
        (1, 3, 1, 1, (1, 1), 1),
        (6, 1, 2, 1, (0, 0), 3),
    ],
    ids=["224k3s2", "112k3s1", "7k4", "10k5d2", "9k3s2", "1x1", "6k1s2"],
)
def test_same_padding_matches_tensorflow(size, kernel, stride, dilation, pads, out):
    layer = SeparableConv2D(input_shape=(1, size, size, 3), kernel_size=kernel, strides=stride,
                            dilation=dilation, padding="same")
    assert layer.pads == (pads, pads)
    assert layer.output_shape[1:3] == (out, out)


def test_valid_and_explicit_padding():
    valid = SeparableConv2D(input_shape=(1, 10, 9, 2), kernel_size=(3, 2), strides=2, padding="Valid")
    assert valid.pads == ((0, 0), (0, 0)) and valid.output_shape[1:3] == (4, 4)
    explicit = SeparableConv2D(input_shape=(1, 5, 5, 2), padding=((1, 0), (2, 3)))
    assert explicit.output_shape[1:3] == (4, 8)
    tf_form = SeparableConv2D(input_shape=(1, 5, 5, 2), padding=[[0, 0], [1, 0], [2, 3], [0, 0]])
    assert tf_form.pads == explicit.pads


def test_costs_match_the_semantics_example():
    layer = SeparableConv2D(input_shape=(1, 10, 10, 256), out_channels=256)
    assert layer.param_count == 67_840 and layer.conv2d_param_count == 589_824
    assert layer.macs == 100 * 67_840 and layer.conv2d_macs == 100 * 589_824
    multi = SeparableConv2D(input_shape=(2, 5, 5, 3), channel_multiplier=4, out_channels=7, bias=True)
    assert multi.depthwise_filter_shape == (3, 3, 3, 4)
    assert multi.pointwise_filter_shape == (1, 1, 12, 7)
    assert multi.param_count == 9 * 12 + 12 * 7 + 7


def test_spelling_variants_are_normalised():
    layer = SeparableConv2D(input_shape=[1, 4, 4, 2], kernel_size=3, strides=[1, 2, 2, 1],
                            padding="valid", activation="ReLU6")
    assert layer.strides == (2, 2) and layer.padding == "VALID" and layer.activation == "relu6"
    assert SeparableConv2D(**BASE, activation="linear").activation is None
    assert SeparableConv2D(**BASE).out_channels == 6


BAD = [
    ("input_shape", dict(input_shape=(8, 8, 4)), "rank 4"),
    ("input_shape", dict(input_shape=(1, 0, 8, 4)), "input_shape[1]"),
    ("input_shape", dict(input_shape=(1, 8, 8, -3)), "input_shape[3]"),
    ("kernel_size", dict(kernel_size=0), "kernel_size"),
    ("kernel_size", dict(kernel_size=(3, 3, 3)), "kernel_size"),
    ("channel_multiplier", dict(channel_multiplier=0), "channel_multiplier"),
    ("out_channels", dict(out_channels=-1), "out_channels"),
    ("strides", dict(strides=0), "strides"),
    ("strides", dict(strides=(1, -2)), "strides"),
    ("strides", dict(strides=(1, 1, 1)), "strides"),
    ("strides", dict(strides=(2, 2, 2, 2)), "strides"),
    ("strides", dict(strides=True), "strides"),
    ("dilation", dict(dilation=0), "dilation"),
    ("dilation", dict(dilation=(1,)), "dilation"),
    ("padding", dict(padding="FULL"), "padding"),
    ("padding", dict(padding=((1, -1), (0, 0))), "padding"),
    ("padding", dict(padding=((1,), (0, 0))), "padding"),
    ("padding", dict(padding=[[1, 0], [1, 1], [0, 0], [0, 0]]), "padding"),
    ("padding", dict(input_shape=(1, 2, 2, 1), kernel_size=3, padding="VALID"), "empty output"),
    ("padding", dict(input_shape=(1, 4, 4, 1), kernel_size=3, dilation=2, padding="valid"), "empty output"),
    ("dtype", dict(dtype="int8"), "dtype"),
    ("dtype", dict(dtype="bfloat16"), "dtype"),
    ("bias", dict(bias="yes"), "bias"),
    ("activation", dict(activation="gelu"), "activation"),
    ("name", dict(name="a/b"), "name"),
    ("name", dict(name=""), "name"),
]


@pytest.mark.parametrize("field, change, words", BAD, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD)])
def test_bad_input_is_a_spec_error_naming_field_and_value(field, change, words):
    with pytest.raises(SpecError) as info:
        SeparableConv2D(**{**BASE, **change})
    message = str(info.value)
    assert words in message
    assert field in message or "padding" in message


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_dilation_with_stride_computes_the_formula():
    # TF refuses (or silently miscomputes) this; the formula is well defined and we compute it.
    layer = SeparableConv2D(input_shape=(1, 9, 9, 2), strides=2, dilation=2, padding="VALID")
    assert layer.output_shape[1:3] == (3, 3)


def test_network_shapes_must_chain():
    a = SeparableConv2D(name="a", input_shape=(1, 8, 8, 4), out_channels=8)
    b = SeparableConv2D(name="b", input_shape=(1, 8, 8, 6), out_channels=8)
    with pytest.raises(SpecError, match="does not match"):
        Network((a, b))
    with pytest.raises(SpecError, match="unique"):
        Network((a, a.replace(input_shape=[1, 8, 8, 8])))
    with pytest.raises(SpecError, match="at least one"):
        Network(())


def test_mobilenet_v1_blocks():
    net = mobilenet_v1()
    assert len(net) == 13
    assert net.layers[0].input_shape == (1, 112, 112, 32)
    assert net.layers[-1].output_shape == (1, 7, 7, 1024)
    assert abs(net.macs * 2 / 1e9 - 1.1138) < 1e-3


def test_mobilenet_v1_width_is_keras_alpha():
    # keras.applications.MobileNet(alpha=...) keeps int(filters * alpha) channels in every layer.
    for width in (0.25, 0.5, 0.75, 0.2, 1 / 32, 2):
        net = mobilenet_v1(width=width, resolution=96, batch=2)
        assert net.layers[0].input_shape == (2, 48, 48, int(32 * width))
        assert [layer.out_channels for layer in net][:2] == [int(64 * width), int(128 * width)]
        assert net.layers[-1].output_shape == (2, 3, 3, int(1024 * width))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(width=0), "width must be a number of at least 1/32"),
        (dict(width=-1), "got -1"),
        (dict(width=0.03), "got 0.03"),
        (dict(width=float("nan")), "got nan"),
        (dict(width="0.5"), "got '0.5'"),
        (dict(batch=0), "batch must be a positive integer, got 0"),
        (dict(resolution=2.5), "resolution must be a positive integer, got 2.5"),
        (dict(batch=True), "batch must be a positive integer, got True"),
    ],
)
def test_mobilenet_v1_refuses_bad_arguments_by_name(kwargs, words):
    with pytest.raises(SpecError, match=re.escape(words)):
        mobilenet_v1(**kwargs)


def test_toml_and_json_spec_files(tmp_path):
    toml = tmp_path / "net.toml"
    toml.write_text(
        'name = "tiny"\n[defaults]\nkernel_size = 3\n'
        '[[layer]]\nname = "one"\ninput_shape = [1, 9, 9, 3]\nchannel_multiplier = 2\nout_channels = 8\n'
        '[[layer]]\nname = "two"\nstrides = 2\nout_channels = 16\nbias = true\nactivation = "relu"\n'
    )
    net = load_spec(toml)
    assert net.name == "tiny" and [l.name for l in net] == ["one", "two"]
    assert net.layers[1].input_shape == (1, 9, 9, 8) and net.layers[1].output_shape == (1, 5, 5, 16)
    as_json = tmp_path / "net.json"
    as_json.write_text(json.dumps({"name": "tiny", "layer": [l.to_dict() for l in net]}))
    assert load_spec(as_json) == net


@pytest.mark.parametrize(
    "text, words",
    [
        ('[[layer]]\nname = "x"\n', "input_shape"),
        ('[[layer]]\ninput_shape = [1, 4, 4, 2]\nstride = 2\n', "unknown field 'stride'"),
        ('[[layer]]\ninput_shape = [1, 4, 4, 2]\nstrides = 0\n', "strides"),
        ("[[layer]\n", "not valid TOML"),
        ('layers = "no"\n', "layer"),
        ('colour = 1\n[[layer]]\ninput_shape = [1, 4, 4, 2]\n', "unknown top-level key"),
    ],
)
def test_bad_spec_files(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=words):
        load_spec(path)


def test_unchained_specs_hold_independent_layers(tmp_path):
    path = tmp_path / "parts.toml"
    path.write_text('chained = false\n[defaults]\nout_channels = 8\n'
                    '[[layer]]\nname = "a"\ninput_shape = [1, 9, 9, 4]\n'
                    '[[layer]]\nname = "b"\ninput_shape = [2, 5, 5, 16]\ndtype = "float16"\n')
    net = load_spec(path)
    assert not net.chained and [layer.input_shape for layer in net] == [(1, 9, 9, 4), (2, 5, 5, 16)]
    assert [layer.dtype for layer in net] == ["float32", "float16"]
    path.write_text('chained = false\n[[layer]]\ninput_shape = [1, 9, 9, 4]\n[[layer]]\nout_channels = 4\n')
    with pytest.raises(SpecError, match=r"layer 1 \(layer1\) must give input_shape .* chained = false"):
        load_spec(path)
    path.write_text('chained = "no"\n[[layer]]\ninput_shape = [1, 9, 9, 4]\n')
    with pytest.raises(SpecError, match="spec: chained must be true or false, got 'no'"):
        load_spec(path)
    same = SeparableConv2D(**BASE, name="x")
    with pytest.raises(SpecError, match="'x' appears twice"):
        Network((same, same), chained=False)
    with pytest.raises(SpecError, match="does not match the output"):
        Network((same, same.replace(name="y")))


def test_chain_infers_input_shapes():
    net = chain((1, 16, 16, 8), [{"out_channels": 16}, {"strides": 2, "out_channels": 32}])
    assert net.layers[1].input_shape == (1, 16, 16, 16)


@pytest.mark.parametrize("name", ["mobilenet_v1.toml", "rgb_multiplier.toml", "xception_middle.json",
                                  "beyond_mobilenet.toml"])
def test_example_specs_load(name):
    from tests.conftest import ROOT

    net = load_spec(ROOT / "examples" / name)
    assert len(net) >= 1
    if name == "mobilenet_v1.toml":
        assert net.layers == mobilenet_v1().layers


# ---- numpy values, trailing newlines, malformed spec files ---------------------------------------

np = pytest.importorskip("numpy")


def test_numpy_dtypes_are_normalised_to_their_name_and_others_refused():
    for dtype in [np.dtype("float32"), np.float32, np.float16, np.dtype("float64")]:
        layer = SeparableConv2D(**BASE, dtype=dtype)
        assert layer.dtype == np.dtype(dtype).name and type(layer.dtype) is str
        assert json.loads(json.dumps(layer.to_dict()))["dtype"] == layer.dtype
        assert layer.workload_key.startswith(np.dtype(dtype).name + "_")
    for dtype in [np.int8, np.dtype("int8"), float, np.array(["float32"]), ["float32"]]:
        with pytest.raises(SpecError, match="dtype must be one of"):
            SeparableConv2D(**BASE, dtype=dtype)


NUMPY_BAD = [
    ("input_shape", dict(input_shape=np.array([1.0, 8, 8, 4])), "input_shape[0]"),
    ("input_shape", dict(input_shape=np.array([True] * 4)), "input_shape[0]"),
    ("input_shape", dict(input_shape=np.array([[1, 8, 8, 4]])), "rank 4"),
    ("kernel_size", dict(kernel_size=np.array([3.0, 3.0])), "kernel_size"),
    ("strides", dict(strides=np.float64(2)), "strides"),
    ("dilation", dict(dilation=np.array([1, 1, 1])), "dilation"),
    ("out_channels", dict(out_channels=np.float32(3)), "out_channels"),
    ("channel_multiplier", dict(channel_multiplier=np.bool_(True)), "channel_multiplier"),
    ("padding", dict(padding=np.array([[1.0, 1], [1, 1]])), "array([[1., 1.], [1., 1.]])"),
    ("padding", dict(padding=[[0.0, 0], [1, 1], [1, 1], [0, 0]]), "batch or channel"),
    ("bias", dict(bias=np.array([True])), "bias"),
]


def test_numpy_integers_are_accepted_like_python_ints_and_floats_bools_refused():
    layer = SeparableConv2D(
        input_shape=np.array([1, 8, 8, 4]), kernel_size=np.array([3, 3]), channel_multiplier=np.uint8(2),
        out_channels=np.int32(5), strides=np.int64(2), dilation=np.array([1, 1]),
        padding=np.array([[1, 1], [1, 1]]), bias=np.bool_(True),
    )
    plain = SeparableConv2D(input_shape=(1, 8, 8, 4), kernel_size=3, channel_multiplier=2, out_channels=5,
                            strides=2, padding=((1, 1), (1, 1)), bias=True)
    assert layer == plain and layer.output_shape == plain.output_shape
    assert json.dumps(layer.to_dict()) == json.dumps(plain.to_dict())
    tf_form = SeparableConv2D(input_shape=(1, 8, 8, 4), strides=np.array([1, 2, 2, 1]),
                              padding=np.array([[0, 0], [1, 1], [1, 1], [0, 0]]))
    assert tf_form.strides == (2, 2) and tf_form.pads == ((1, 1), (1, 1))
    for field, change, words in NUMPY_BAD:  # still refused, by name, on one line
        with pytest.raises(SpecError) as info:
            SeparableConv2D(**{**BASE, **change})
        message = str(info.value)
        assert field in message and words in message and "\n" not in message, (field, message)


def test_a_name_with_a_newline_is_refused():
    for name in ["blk\n", "a" * 64 + "\n", "\nblk"]:
        with pytest.raises(SpecError, match="name must be"):
            SeparableConv2D(**BASE, name=name)


def test_chain_refuses_a_block_that_is_not_a_table():
    with pytest.raises(SpecError, match="layer 1 must be a table of fields, got 3"):
        chain((1, 8, 8, 4), [{}, 3])


@pytest.mark.parametrize(
    "suffix, text, words",
    [
        (".toml", "layer = [{input_shape = [1,8,8,4]}, 3]\n", "layer 1 must be a table of fields, got 3"),
        (".json", '{"layer": [{"name": "a", "input_shape": [1,8,8,4]}, "b"]}',
         "layer 1 must be a table of fields, got 'b'"),
        (".json", '{"layer": [{"input_shape": [1,8,8,4]}, {}, null]}',
         "layer 2 must be a table of fields, got None"),
        (".toml", ('[[layer]]\nname = "first"\ninput_shape = [1, 8, 8, 4]\n'
                   '[[layers]]\nname = "second"\ninput_shape = [1, 16, 16, 4]\n'), "both 'layer' and 'layers'"),
        (".toml", "layers = [{input_shape = [1,8,8,4]}]\nlayer = [{input_shape = [1,8,8,4]}]\n",
         "both 'layer' and 'layers'"),
        (".json", '{"layer": [{"name": "blk\\n", "input_shape": [1,8,8,4]}]}', "name must be"),
        (".toml", "[[layer]]\ninput_shape = 5\n", "rank 4"),
    ],
    ids=["toml-second-int", "json-second-str", "json-third-null", "both-tables", "both-inline", "name-newline",
         "shape-int"],
)
def test_malformed_spec_files_are_refused(tmp_path, suffix, text, words):
    path = tmp_path / ("bad" + suffix)
    path.write_text(text)
    with pytest.raises(SpecError, match=words.replace("(", r"\(").replace("[", r"\[")):
        load_spec(path)


def test_a_directory_spec_path_says_it_is_a_directory(tmp_path):
    folder = tmp_path / "net.toml"
    folder.mkdir()
    with pytest.raises(SpecError, match="is a folder, not a .toml or .json spec"):
        load_spec(folder)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


class _TensorShape:
    """What tf.TensorShape offers: as_list(), a ValueError when the rank is unknown."""

    def __init__(self, dims):
        self._dims = dims

    def as_list(self):
        if self._dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape.")
        return list(self._dims)


class _IntTensor:
    """What an eager int tensor offers: conversion to numpy."""

    def __init__(self, values):
        self._values = values

    def __array__(self, dtype=None, copy=None):
        return np.array(self._values, dtype=dtype)


def test_shapes_from_tensor_libraries_are_accepted():
    assert SeparableConv2D(input_shape=_TensorShape([1, 8, 8, 4])).input_shape == (1, 8, 8, 4)
    layer = SeparableConv2D(input_shape=_IntTensor([1, 8, 8, 4]), strides=_IntTensor([2, 2]))
    assert layer.input_shape == (1, 8, 8, 4) and layer.strides == (2, 2)
    with pytest.raises(SpecError, match=r"input_shape\[0\] \(N\) must be a positive integer, got None"):
        SeparableConv2D(input_shape=_TensorShape([None, 8, 8, 4]))
    for unknown in (_TensorShape(None), _IntTensor(3)):
        with pytest.raises(SpecError, match="input_shape must have rank 4"):
            SeparableConv2D(input_shape=unknown)


@pytest.mark.parametrize("keras, ours", [("depth_multiplier", "channel_multiplier"),
                                         ("filters", "out_channels"), ("use_bias", "bias")])
def test_keras_argument_names_point_to_ours(keras, ours):
    with pytest.raises(SpecError, match=f"unknown field '{keras}' \\(Keras's name for {ours}; known: "):
        SeparableConv2D(**BASE, **{keras: 2})
    with pytest.raises(SpecError, match="unknown field 'bogus' \\(known: activation, bias"):
        SeparableConv2D(**BASE, bogus=1)
    with pytest.raises(SpecError, match="input_shape \\(N, H, W, C\\) is required"):
        SeparableConv2D(out_channels=3)


def test_a_network_name_must_be_a_string():
    layer = SeparableConv2D(**BASE)
    for bad in (5, "", None):
        with pytest.raises(SpecError, match="network name must be a non-empty string"):
            Network([layer], name=bad)
