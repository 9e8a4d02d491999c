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
    pt.get("a").connected = True  # reachability shown: failures cost 10 each
    for _ in range(3):
        pt.record_failure("a", "x")
    assert pt.get("a").health == 70
    pt.record_success("a")
    assert pt.get("a").health == 80
    for _ in range(8):
        pt.record_failure("a")
    st = pt.get("a")
    assert st.health == 0 and pt.is_banned(st)
    assert pt.serving("chat", "m") == []
    assert not pt.needs_probe(st)
    t[0] += 5.1
    assert pt.needs_probe(st)
    pt.record_probe("a", True, rtt_ms=3.0)
    assert st.health == 50 and st.rtt_ms == 3.0
    assert [s.peer_id for s in pt.serving("chat", "m")] == ["a"]


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


def test_blocks_ttl_and_no_ordering():
    pt, t = table()
    for p in "abc":
        pt.record_announcement(p, ann())
        pt.get(p).trusted = True  # learned from bootstrap/DHT/PEX: dialable
    pt.get("b").health = 60
    pt.record_rtt("a", 9.0)
    pt.record_rtt("c", 2.0)
    # membership only: the order is federation.market.route's (docs/protocol.md §6)
    assert {s.peer_id for s in pt.serving("chat", "m")} == {"a", "b", "c"}
    pt.block("c")
    assert {s.peer_id for s in pt.serving("chat", "m")} == {"a", "b"}
    views = {v.peer_id: v for v in pt.views("chat")}
    assert views["c"].blocked and not views["a"].blocked and views["b"].health == 60
    assert views["c"].rtt_ms == 2.0 and views["a"].reachable and views["a"].fresh
    assert views["a"].ask.serves("chat", "m") and views["a"].ask.table.prices == {"chat": 1}
    assert list(pt.views("embed")) == []
    pt.unblock("c")
    assert pt.serving("chat", "other") == []
    t[0] += 11
    assert pt.serving("chat", "m") == []
    assert all(not v.fresh for v in pt.views())
    pt.expire()
    assert list(pt.views()) == []  # no announcement, nothing asked
    snap = pt.snapshot()
    assert {r["peer_id"] for r in snap} == {"a", "b", "c"} and all(not r["fresh"] for r in snap)
    assert isinstance(snap[0]["models"], dict)


def test_an_unproven_peer_gets_one_try():
    pt, t = table()
    pt.record_announcement("fake", ann())
    st = pt.get("fake")
    assert not pt.is_proven(st) and st.health == 100
    pt.record_failure("fake", "unreachable")
    assert st.health == 0 and pt.is_banned(st)
    assert pt.serving("chat", "m") == []


def test_a_stranger_heard_only_on_gossip_is_no_candidate():
    pt, t = table()
    pt.record_announcement("stranger", ann())
    assert pt.serving("chat", "m") == []
    pt.get("stranger").trusted = True
    assert [s.peer_id for s in pt.serving("chat", "m")] == ["stranger"]


def test_bounded_lru_with_pins():
    t = [0.0]
    pt = PeerTable(ttl=10, clock=lambda: t[0], max_peers=100)
    pt.pin("me")
    pt.get("me")
    pt.record_announcement("worker", ann())
    pt.record_success("worker")  # delivered work: pinned for a while
    pt.get("conn").connected = True
    pt.block("blocked")
    for i in range(2000):
        t[0] += 0.001
        pt.record_announcement(f"sybil{i}", ann())
    assert len(pt) <= 100 and pt.evicted >= 1900
    for p in ("me", "worker", "conn", "blocked"):
        assert pt.known(p), p
    assert pt.is_blocked("blocked")
    assert pt.known("sybil1999") and not pt.known("sybil0")  # least recently used went first


def test_the_ask_is_read_once_per_announcement():
    pt, t = table()
    pt.record_announcement("a", ann())
    first = pt.get("a").ask
    assert [v.ask for v in pt.views("chat")] == [first] and next(pt.views()).ask is first  # not re-read per view
    pt.record_announcement("a", {**ann(seq=2), "prices": {"chat": 7}, "surge": 2.0})
    again = next(pt.views("chat")).ask
    assert again is not first and again.table.prices == {"chat": 7} and again.surge == 2.0
