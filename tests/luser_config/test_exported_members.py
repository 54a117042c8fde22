import luser_config


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in dir(luser_config) if not n.startswith("_")}
    submodules = {"cli", "manager", "schema", "sources"}
    assert set(luser_config.__all__) == public - submodules
