"""The rigs' one-session-at-a-time lock (tests/rig/session_lock.py)."""
from tests.rig import session_lock


def test_a_second_session_waits_then_gives_up_and_gets_the_rig_once_free(tmp_path):
    first = session_lock.hold(tmp_path / "rig", 0)
    assert first is not None and (tmp_path / "rig" / "session.lock").exists()
    assert session_lock.hold(tmp_path / "rig", 1.2) is None  # flock: a second open file description conflicts
    first.close()  # the holder exits
    again = session_lock.hold(tmp_path / "rig", 0)
    assert again is not None
    again.close()
