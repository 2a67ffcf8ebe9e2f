"""`python -m bench intruder` in the suite: every attack it knows is tried against the real parts; all but the
one the project has not closed yet (screens are not paired) are refused, and no secret is seen."""

from bench import intruder


async def test_the_intruder_is_refused_everything_but_an_unpaired_screen():
    result = await intruder.run(quick=True)
    assert result["attacks_tried"] == len(intruder.ATTACKS) >= 15
    assert result["secrets_seen"] == 0
    assert result["open"] == ["unpaired_screen_watches"], result["attacks"]
    assert result["attacks_refused"] == result["attacks_tried"] - 1
