import pytest

from mtor_node.fair_queue import FairQueue, QueueFull


def make(max_size=100):
    return FairQueue(max_size, key=lambda t: t[1], user=lambda t: t[0])


def test_round_robin_between_users():
    q = make()
    for i in range(4):
        q.put(("alice", f"a{i}"))
    q.put(("bob", "b0"))
    q.put(("bob", "b1"))
    taken = [q.take()[1] for _ in range(6)]
    # bob is not starved behind alice's burst
    assert taken == ["a0", "b0", "a1", "b1", "a2", "a3"]
    assert q.take() is None and len(q) == 0


def test_positions_follow_service_order():
    q = make()
    assert q.put(("alice", "a0")) == 1
    assert q.put(("alice", "a1")) == 2
    assert q.put(("bob", "b0")) == 2  # bob's first goes before alice's second
    assert q.positions() == {"a0": 1, "b0": 2, "a1": 3}


def test_full_queue_refuses_with_a_message():
    q = make(max_size=2)
    q.put(("a", "1"))
    q.put(("b", "2"))
    with pytest.raises(QueueFull, match="full"):
        q.put(("c", "3"))


def test_busy_head_does_not_block_other_users():
    q = make()
    q.put(("alice", "busy-model"))
    q.put(("bob", "free-model"))
    assert q.take(lambda t: t[1] != "busy-model")[1] == "free-model"
    assert len(q) == 1


def test_remove():
    q = make()
    q.put(("alice", "a0"))
    q.put(("alice", "a1"))
    assert q.remove("a0") == ("alice", "a0")
    assert q.remove("nope") is None
    assert q.positions() == {"a1": 1}
