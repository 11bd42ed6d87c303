import pytest

from npistack.normalize.names import name_key, name_variants, normalize_credentials


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("M.D.", ("MD",)),
        ("MD", ("MD",)),
        ("M. D.", ("MD",)),
        ("D.O.", ("DO",)),
        ("RN, MSN, CPNP", ("RN", "MSN", "CPNP")),
        ("MSW LICSW", ("MSW", "LICSW")),
        ("B.C.P.S., PH.D.", ("BCPS", "PHD")),
        ("FNP-C", ("FNP-C",)),
        ("", ()),
        ("PT, DPT", ("PT", "DPT")),
        ("MD/PHD", ("MD", "PHD")),
        ("m.d.", ("MD",)),
    ],
)
def test_credentials(raw: str, want: tuple[str, ...]) -> None:
    assert normalize_credentials(raw) == want


def test_name_key() -> None:
    assert name_key("O'Brien") == "OBRIEN"
    assert name_key("Smith-Jones") == "SMITH JONES"
    assert name_key("  josé  garcía ") == "JOSE GARCIA"
    assert name_key("AZAR/FILIPOV MD PA") == "AZAR FILIPOV MD PA"
    assert name_key("St. Joseph's") == "ST JOSEPHS"


def test_nicknames() -> None:
    assert "BOB" in name_variants("Robert")
    assert "ROBERT" in name_variants("bob")
