"""The protobuf wire format, read by hand: varints and the fields of one message.

Both hand-written model readers use it (the ONNX reader the engine builder needs where no
onnx package is installed, and the TensorFlow GraphDef reader), so neither needs protobuf.
"""


class Truncated(ValueError):
    """The bytes are not a whole protobuf message (cut short, or not protobuf at all)."""


def varint(buf, pos):
    """The base-128 varint at ``buf[pos]`` and the position after it."""
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise Truncated("varint past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise Truncated("varint longer than 10 bytes")


def fields(buf, start=0, end=None):
    """Yield (field number, wire type, value) of one message; value is an int (varint),
    or a slice of ``buf`` (length-delimited, fixed32/64): a memoryview in, memoryviews out."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise Truncated("field number 0")
        if wt == 0:
            v, pos = varint(buf, pos)
        elif wt == 1:
            v, pos = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            n, pos = varint(buf, pos)
            if pos + n > end:
                raise Truncated("a %d-byte field runs past its message" % n)
            v, pos = buf[pos:pos + n], pos + n
        elif wt == 5:
            v, pos = buf[pos:pos + 4], pos + 4
        else:
            raise Truncated("wire type %d" % wt)
        if pos > end:
            raise Truncated("field past the end")
        yield num, wt, v
