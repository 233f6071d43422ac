"""AddRequest: add's defaults in one record, its checks naming the Python parameter, and the
CLI spelling them as flags."""

import pytest

import protodb
from protodb.bank.store import open_bank
from protodb.cli.common import flag_errors
from protodb.errors import NotFoundError, ParameterError, ProtodbError
from protodb.synthesis.request import DEFAULTS, AddRequest


def test_defaults_and_none_takes_the_default():
    assert (DEFAULTS.n, DEFAULTS.parts, DEFAULTS.batch_size) == (32, 32, 8)
    assert (DEFAULTS.mask_source, DEFAULTS.seeds) == ("otsu", (0,))
    req = AddRequest.of(["sky"], n=None, seed=None, parts=4, batch_size=None)
    assert (req.n, req.seeds, req.parts, req.batch_size) == (32, (0,), 4, 8)
    assert AddRequest.of(["sky"], seed=[3, 1]).seeds == (3, 1)
    assert AddRequest.of(["sky", "sea"], seed=[0, 1]).validate().jobs() == [
        ("sky", 0), ("sky", 1), ("sea", 0), ("sea", 1),
    ]  # fmt: skip
    with pytest.raises(TypeError, match="no field 'colour'"):
        AddRequest.of(["sky"], colour="red")


@pytest.mark.parametrize(
    ("given", "parameter", "message"),
    [
        ({"batch_size": 0}, "batch_size", "batch_size=0 must be >= 1"),
        ({"seed": [1, 1]}, "seed", "seed=[1, 1] must list at least one seed, each once"),
        ({"kind": "solid"}, "kind", "kind='solid' is not one of stuff, thing"),
    ],
)
def test_errors_name_the_parameter(given, parameter, message):
    with pytest.raises(ParameterError, match=message.replace("[", r"\[")) as err:
        AddRequest.of(["sky"], **given).validate()
    assert err.value.parameter == parameter


def test_the_api_names_the_parameter_and_touches_no_bank(tmp_path):
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    with pytest.raises(ProtodbError, match="batch_size=0 must be >= 1"):
        db.add(["grass"], batch_size=0, progress=False)
    with pytest.raises(NotFoundError):
        open_bank(str(tmp_path / "bank"), create=False)


def test_the_cli_spells_a_parameter_as_its_flag():
    with pytest.raises(ProtodbError) as err, flag_errors({"batch_size": "--batch-size"}):
        AddRequest.of(["sky"], batch_size=0).validate()
    assert str(err.value) == "--batch-size 0 must be >= 1"
    with pytest.raises(ParameterError), flag_errors({"n": "--n"}):  # not mapped: as it is
        AddRequest.of(["sky"], kind="solid").validate()
