"""Signed pickles: HMAC-SHA256 envelopes refused, before unpickling, unless the tag verifies."""

import io
import pickle
import sys
from pickle import UnpicklingError
from typing import Any, Callable, List

import pytest
from conftest import run_python

from fastfnpickle import signing

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

# A pickle that runs code when loaded: sets a flag in sys. Written by hand (protocol 0) so it
# is plainly a hostile payload, not something fastfnpickle produced.
HOSTILE = b"cbuiltins\nexec\n(Vimport sys; sys.ffp_hostile_ran = True\ntR."


def _make_closure() -> Callable[[int], int]:
    offset = 7

    def add(x: int) -> int:
        return x + offset
    return add


def test_hostile_payload_really_runs_code_when_unsigned() -> None:
    # The premise of the whole module: without a signature, loading is running code.
    sys.__dict__.pop("ffp_hostile_ran", None)
    pickle.loads(HOSTILE)
    assert sys.__dict__.pop("ffp_hostile_ran") is True


def test_round_trip_in_process_and_in_fresh_interpreter(impl: Any) -> None:
    data = impl.dumps(_make_closure())
    signed = signing.sign(data, KEY)
    assert signing.verify(signed, KEY) == data
    assert signing.loads(signed, KEY)(1) == 8
    out = run_python(f"""
        import sys
        from fastfnpickle import signing
        f = signing.loads(sys.stdin.buffer.read(), bytes.fromhex({KEY.hex()!r}))
        print(f(35))
        """, signed, env=impl.env())
    assert out.strip() == "42"


def test_dumps_loads_convenience() -> None:
    signed = signing.dumps(_make_closure(), KEY)
    assert signed.startswith(signing.MAGIC)
    assert signing.loads(signed, KEY)(0) == 7
    out = run_python(f"""
        import sys
        from fastfnpickle import signing
        print(signing.loads(sys.stdin.buffer.read(), bytes.fromhex({KEY.hex()!r}))(3))
        """, signed)
    assert out.strip() == "10"


def test_dump_load_reads_one_envelope_at_a_time() -> None:
    f = io.BytesIO()
    signing.dump([1, 2], f, KEY)
    signing.dump(_make_closure(), f, KEY)
    f.seek(0)
    assert signing.load(f, KEY) == [1, 2]
    assert signing.load(f, KEY)(1) == 8
    assert f.read() == b""


def test_sign_is_deterministic(impl: Any) -> None:
    data = impl.dumps(_make_closure())
    assert signing.sign(data, KEY) == signing.sign(data, KEY)
    assert signing.sign(data, KEY) != signing.sign(data, OTHER_KEY)


def test_wrong_key_refused_before_unpickling() -> None:
    sys.__dict__.pop("ffp_hostile_ran", None)
    signed = signing.sign(HOSTILE, OTHER_KEY)
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.loads(signed, KEY)
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.verify(signed, KEY)
    assert not hasattr(sys, "ffp_hostile_ran")


def test_swapped_payload_refused_before_unpickling() -> None:
    """An attacker keeps a genuine header and tag and substitutes the payload."""
    sys.__dict__.pop("ffp_hostile_ran", None)
    genuine = signing.sign(b"\x80\x05K\x01." + b"\x00" * (len(HOSTILE) - 5), KEY)
    forged = genuine[:signing.HEADER_SIZE] + HOSTILE
    assert len(forged) == len(genuine)
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.loads(forged, KEY)
    assert not hasattr(sys, "ffp_hostile_ran")


def test_every_single_bit_flip_is_refused(impl: Any) -> None:
    signed = signing.sign(impl.dumps(_make_closure()), KEY)
    refused = 0
    for i in range(len(signed)):
        for bit in (0, 3, 7):
            bad = bytearray(signed)
            bad[i] ^= 1 << bit
            with pytest.raises(UnpicklingError):
                signing.verify(bytes(bad), KEY)
            refused += 1
    assert refused == 3 * len(signed)


def test_every_truncation_and_extension_is_refused() -> None:
    signed = signing.dumps({"a": _make_closure()}, KEY)
    for n in range(len(signed)):
        with pytest.raises(UnpicklingError):
            signing.loads(signed[:n], KEY)
    with pytest.raises(UnpicklingError, match="extra bytes"):
        signing.loads(signed + b"\x00", KEY)


def test_unsigned_pickle_is_recognised_and_refused(impl: Any) -> None:
    with pytest.raises(UnpicklingError, match="unsigned.*plain pickle.*arbitrary code"):
        signing.loads(impl.dumps(_make_closure()), KEY)
    with pytest.raises(UnpicklingError, match="unsigned"):
        signing.loads(HOSTILE, KEY)
    with pytest.raises(UnpicklingError, match="unsigned"):
        signing.loads(b"", KEY)


def test_unknown_envelope_version_is_refused() -> None:
    signed = bytearray(signing.dumps(1, KEY))
    signed[len(signing.MAGIC)] = 2
    with pytest.raises(UnpicklingError, match="version 2"):
        signing.loads(bytes(signed), KEY)


def test_signed_bytes_are_not_a_loadable_pickle() -> None:
    # Handing an envelope to plain pickle.loads must fail at once, not run the payload.
    sys.__dict__.pop("ffp_hostile_ran", None)
    with pytest.raises(UnpicklingError):
        pickle.loads(signing.sign(HOSTILE, KEY))
    assert not hasattr(sys, "ffp_hostile_ran")


@pytest.mark.parametrize("key", ["a str key", 12345, None])
def test_key_must_be_bytes(key: Any) -> None:
    with pytest.raises(TypeError, match="key"):
        signing.dumps(1, key)
    with pytest.raises(TypeError, match="key"):
        signing.verify(signing.dumps(1, KEY), key)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        signing.sign(b"x", b"")
    with pytest.raises(ValueError, match="empty"):
        signing.loads(signing.dumps(1, KEY), b"")


def test_bytes_like_keys_are_equivalent() -> None:
    signed = signing.dumps([1], KEY)
    assert signing.loads(signed, bytearray(KEY)) == [1]
    assert signing.loads(signed, memoryview(KEY)) == [1]


# --------------------------------------------------------------------------------------------
# Out-of-band buffers are covered by the tag too.

def _oob_payload() -> Any:
    blob = bytearray(b"0123456789" * 100)
    return {"buf": pickle.PickleBuffer(blob), "f": _make_closure()}


def _signed_with_buffers() -> "tuple[bytes, List[pickle.PickleBuffer]]":
    buffers: List[pickle.PickleBuffer] = []
    signed = signing.dumps(_oob_payload(), KEY, protocol=5, buffer_callback=buffers.append)
    return signed, buffers


def test_out_of_band_buffers_round_trip() -> None:
    signed, buffers = _signed_with_buffers()
    assert len(buffers) == 1
    obj = signing.loads(signed, KEY, buffers=buffers)
    assert bytes(obj["buf"]) == b"0123456789" * 100
    assert obj["f"](1) == 8
    raw = b"".join(bytes(b.raw()) for b in buffers)
    out = run_python(f"""
        import sys
        from fastfnpickle import signing
        data = sys.stdin.buffer.read()
        signed, buf = data[:{len(signed)}], bytearray(data[{len(signed)}:])
        obj = signing.loads(signed, bytes.fromhex({KEY.hex()!r}), buffers=[buf])
        print(bytes(obj["buf"])[:10].decode(), obj["f"](2))
        """, signed + raw)
    assert out.split() == ["0123456789", "9"]


def test_modified_out_of_band_buffer_is_refused() -> None:
    signed, buffers = _signed_with_buffers()
    tampered = bytearray(buffers[0].raw())
    tampered[500] ^= 1
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.loads(signed, KEY, buffers=[tampered])


def test_missing_or_extra_buffers_are_refused() -> None:
    signed, buffers = _signed_with_buffers()
    with pytest.raises(UnpicklingError, match="1 out-of-band"):
        signing.loads(signed, KEY)
    with pytest.raises(UnpicklingError, match="1 out-of-band"):
        signing.loads(signed, KEY, buffers=buffers + buffers)


def test_buffers_kept_in_band_by_the_callback_are_not_counted() -> None:
    signed = signing.dumps(_oob_payload(), KEY, protocol=5, buffer_callback=lambda b: True)
    obj = signing.loads(signed, KEY)
    assert bytes(obj["buf"]) == b"0123456789" * 100


def test_top_level_key_keyword_signs_and_verifies() -> None:
    import io as _io

    import fastfnpickle

    key = b"k" * 32
    offset = 5
    f = lambda x: x + offset  # noqa: E731
    signed = fastfnpickle.dumps(f, key=key)
    assert fastfnpickle.loads(signed, key=key)(1) == 6
    with pytest.raises(fastfnpickle.UnpicklingError):
        fastfnpickle.loads(signed, key=b"x" * 32)
    with pytest.raises(fastfnpickle.UnpicklingError):
        fastfnpickle.loads(fastfnpickle.dumps(f), key=key)  # unsigned data is refused
    buf = _io.BytesIO()
    fastfnpickle.dump(f, buf, key=key)
    fastfnpickle.dump(f, buf, key=key)
    buf.seek(0)
    assert fastfnpickle.load(buf, key=key)(2) == 7 and fastfnpickle.load(buf, key=key)(3) == 8
    # Without a key, loads/load are the stdlib's.
    assert fastfnpickle.loads(fastfnpickle.dumps(f))(0) == 5
    out = run_python("""
        import sys, fastfnpickle
        print(fastfnpickle.loads(sys.stdin.buffer.read(), key=b"k" * 32)(10))
    """, signed)
    assert out.strip() == "15"
