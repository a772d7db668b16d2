"""A worker process loads each model once: the fork server's warm-up builds the default chain,
and a job on ordinary video (fever screening left out: ``tasks.jobs.screening_when_possible``)
runs that chain less ``thermal`` on the same loaded analyzers, not on a second copy of every
model (about 0.09 s of CPU and 40 MiB more in each pool process)."""

from workers import pipeline

DEFAULT = ("detect", "track", "recognize", "mask", "thermal")


def test_a_chain_without_thermal_runs_on_the_default_chains_analyzers():
    full = pipeline.analyzer_chain(DEFAULT, "{}")
    ordinary = pipeline.analyzer_chain(DEFAULT[:-1], "{}")
    assert [a.name for a in ordinary] == list(DEFAULT[:-1])
    assert all(mine is theirs for mine, theirs in zip(ordinary, full))


def test_analyzers_with_other_configs_are_their_own():
    gated = pipeline.analyzer_chain(("detect", "track"), '{"detect": {"gate": {"enabled": true}}}')
    every_frame = pipeline.analyzer_chain(("detect", "track"), '{"detect": {"gate": {"enabled": false}}}')
    assert gated[0] is not every_frame[0] and gated[1] is every_frame[1]
    assert gated[0].config.gate.enabled and not every_frame[0].config.gate.enabled
