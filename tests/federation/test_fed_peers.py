from federation.peers import PeerTable


def table():
    t = [0.0]
    pt = PeerTable(ttl=10, ban_base=5, ban_max=40, clock=lambda: t[0])
    return pt, t


def ann(models=("m",), seq=1):
    return {"models": {"chat": list(models)}, "prices": {"chat": 1}, "seq": seq, "ttl": 10}


def test_health_up_down_ban_and_recovery():
    pt, t = table()
    pt.record_announcement("a", ann())
    for _ in range(3):
        pt.record_failure("a", "x")
    assert pt.get("a").health == 70
    pt.record_success("a")
    assert pt.get("a").health == 80
    for _ in range(8):
        pt.record_failure("a")
    st = pt.get("a")
    assert st.health == 0 and pt.is_banned(st)
    assert pt.candidates("chat", "m") == []
    assert not pt.needs_probe(st)
    t[0] += 5.1
    assert pt.needs_probe(st)
    pt.record_probe("a", True, rtt_ms=3.0)
    assert st.health == 50 and st.rtt_ms == 3.0
    assert [s.peer_id for s in pt.candidates("chat", "m")] == ["a"]


def test_exponential_backoff_capped():
    pt, t = table()
    durations = []
    for _ in range(5):
        st = pt.get("a")
        st.health = 10
        pt.record_failure("a")
        durations.append(st.ban_until - t[0])
        t[0] = st.ban_until
    assert durations == [5, 10, 20, 40, 40]


def test_blocks_ttl_and_ordering():
    pt, t = table()
    for p in "abc":
        pt.record_announcement(p, ann())
    pt.get("b").health = 60
    pt.record_rtt("a", 9.0)
    pt.record_rtt("c", 2.0)
    assert [s.peer_id for s in pt.candidates("chat", "m")] == ["c", "a", "b"]
    pt.block("c")
    assert [s.peer_id for s in pt.candidates("chat", "m")] == ["a", "b"]
    pt.unblock("c")
    assert pt.candidates("chat", "other") == []
    t[0] += 11
    assert pt.candidates("chat", "m") == []
    pt.expire()
    snap = pt.snapshot()
    assert {r["peer_id"] for r in snap} == {"a", "b", "c"} and all(not r["fresh"] for r in snap)
    assert isinstance(snap[0]["models"], dict)
