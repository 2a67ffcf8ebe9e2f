"""`python -m bench intruder` in the suite: every attack it knows is tried against the real parts; every one is
refused, and no secret is seen."""

from bench import intruder


async def test_the_intruder_is_refused_everything():
    result = await intruder.run(quick=True)
    assert result["attacks_tried"] == len(intruder.ATTACKS) >= 15
    assert result["secrets_seen"] == 0
    assert result["open"] == [], result["attacks"]
    assert result["attacks_refused"] == result["attacks_tried"]
