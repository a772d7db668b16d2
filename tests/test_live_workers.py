"""LiveWorkerGate: an ingester's camera watches wait for a worker on the live queue, sharing
one look (a broadcast) at a time, and say once that they wait."""

from __future__ import annotations

import threading

from tasks.live_workers import LiveWorkerGate


class Workers:
    """Answers the gate's looks: none serves the live queue until ``start()``."""

    def __init__(self):
        self.looks = 0
        self.serving = threading.Event()

    def served(self) -> bool:
        self.looks += 1
        self.serving.wait(0.05)      # a look takes a while (a broadcast waits for replies)
        return self.serving.is_set()


def test_a_watch_waits_for_a_live_worker_and_goes_on_once_one_serves():
    workers, said = Workers(), []
    gate, stop = LiveWorkerGate(workers.served), threading.Event()
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(gate.wait(stop, lambda: said.append("waiting"))))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and said == ["waiting"], "it must wait, and say so once"
    workers.serving.set()
    waiter.join(5)
    assert outcome == [True]
    assert said == ["waiting"]


def test_the_cameras_taken_together_share_one_look():
    workers = Workers()
    workers.serving.set()
    gate, stop = LiveWorkerGate(workers.served), threading.Event()
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(gate.wait(stop))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert outcomes == [True] * 8
    assert workers.looks == 1


def test_a_stop_ends_the_wait():
    workers = Workers()
    gate, stop = LiveWorkerGate(workers.served), threading.Event()
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(gate.wait(stop)))
    waiter.start()
    stop.set()
    waiter.join(5)
    assert outcome == [False]
