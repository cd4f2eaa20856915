"""NvdecSource's host side on the CPU: a fake PyNvVideoCodec (a demuxer of numbered packets, a
decoder that holds one picture back like B-frame reordering and gives it on the flush) and
the fake pycuda driver (device memory is host memory). Checks the pitched plane copies, the
order and count of frames, the ring's hand-out and give-back, a live source's drops, host
frames for a CPU layer, and that every buffer is freed. Not NVDEC: the GPU test compares the
real decoder's frames with FFmpeg's."""
import contextlib
import ctypes
import sys
import types

import numpy as np
import pytest

from support import fake_cuda

W, H, N, PITCH = 48, 32, 7, 64


def picture(k):
    """Frame k as the decoder's pitched NV12 surface (H*3/2 rows of PITCH bytes) and as the
    (H*3/2, W) array it should become."""
    rng = np.random.RandomState(k)
    surface = rng.randint(0, 256, size=(H * 3 // 2, PITCH)).astype(np.uint8)
    return surface, np.ascontiguousarray(surface[:, :W])


class Pic(object):
    def __init__(self, k):
        self.k = k
        self.surface, self.want = picture(k)
        self.__cuda_array_interface__ = {"data": (self.surface.ctypes.data, False),
                                         "shape": (H * 3 // 2, W), "strides": (PITCH, 1),
                                         "typestr": "|u1", "version": 3}


class Demuxer(object):
    def __init__(self, filename):
        self.filename = filename

    def Width(self):
        return W

    def Height(self):
        return H

    def FrameRate(self):
        return 30.0

    def GetNvCodecId(self):
        return 4

    def __iter__(self):
        return iter(range(N))


class Decoder(object):
    """Pictures come out one packet late; an empty PacketData flushes the last."""
    live = []

    def __init__(self, **kw):
        assert kw["usedevicememory"] is True and kw["cudastream"]
        self.held = None
        Decoder.live.append(self)

    def Decode(self, packet):
        if isinstance(packet, PacketData):
            out, self.held = ([self.held] if self.held is not None else []), None
            return out
        out = [self.held] if self.held is not None else []
        self.held = Pic(packet)
        return out


class PacketData(object):
    pass


class Memcpy2D(object):
    """pycuda's Memcpy2D on host memory (rows copied one by one)."""
    def set_src_device(self, ptr):
        self.src = int(ptr)

    def set_dst_device(self, ptr):
        self.dst = int(ptr)

    def set_dst_host(self, arr):
        assert arr.flags.c_contiguous
        self.dst = arr.ctypes.data

    def __call__(self, stream=None, aligned=True):
        assert self.src_pitch >= self.width_in_bytes and self.dst_pitch >= self.width_in_bytes
        for r in range(self.height):
            ctypes.memmove(self.dst + r * self.dst_pitch, self.src + r * self.src_pitch,
                           self.width_in_bytes)


class Context(object):
    handle = 1234


class FakeCudaContext(object):
    made = []

    def __init__(self, device=0):
        self._ctx = Context()
        self.closed = False
        FakeCudaContext.made.append(self)

    @contextlib.contextmanager
    def active(self):
        yield self

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch, tmp_path):
    drv = fake_cuda.install(monkeypatch, "direct", {})
    drv.Memcpy2D = Memcpy2D
    import trtssd.gpu.cuda as tcuda
    monkeypatch.setattr(tcuda, "CudaContext", FakeCudaContext)
    mod = types.ModuleType("PyNvVideoCodec")
    mod.CreateDemuxer, mod.CreateDecoder, mod.PacketData = Demuxer, Decoder, PacketData
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", mod)
    clip = tmp_path / "v.mp4"
    clip.write_bytes(b"not read by the fake")
    FakeCudaContext.made[:] = []
    return types.SimpleNamespace(drv=drv, clip=str(clip))


def test_device_frames_in_order_copied_from_pitched_surfaces(fake):
    from trtssd.io.nvdec import NvdecSource
    src = NvdecSource(fake.clip)
    assert (src.width, src.height, src.fps, src.pixel_format) == (W, H, 30.0, "NV12")
    got = []
    while True:
        f = src.read()
        if f is None:
            break
        assert f.image.shape == (H * 3 // 2, W)
        got.append(f.image.copy_to_host())
        f.done()
    assert len(got) == N                      # the held-back picture came with the flush
    for k, a in enumerate(got):
        assert np.array_equal(a, picture(k)[1]), k
    src.close()
    assert FakeCudaContext.made[0].closed and src._ring is None
    src.close()                               # twice is harmless


def test_the_decoder_starts_when_the_buffers_are_given_not_at_the_first_read(fake):
    """provide_buffers (the run's setup) decodes up to the first picture, so the decoder's
    start-up is not timed as the first frame's capture; the frames still come in order,
    each once, the first included."""
    from trtssd.io.nvdec import NvdecSource
    src = NvdecSource(fake.clip)
    dec = Decoder.live[-1]
    assert dec.held is None                   # opening alone decodes nothing
    src.provide_buffers(None, None, 3)
    assert dec.held is not None and len(src._pending) == 1   # two packets in, one out
    got = []
    while True:
        f = src.read()
        if f is None:
            break
        got.append(f.image.copy_to_host())
        f.done()
    assert len(got) == N
    for k, a in enumerate(got):
        assert np.array_equal(a, picture(k)[1]), k
    src.provide_buffers(None, None, 3)        # at the end: nothing more is decoded
    assert src.read() is None
    src.close()


def test_ring_hands_out_each_buffer_once_until_given_back(fake):
    from trtssd.io.nvdec import NvdecSource
    src = NvdecSource(fake.clip, buffers=2)
    stop = __import__("threading").Event()
    assert src.provide_buffers(None, None, 3, stop)
    held = [src.read() for _ in range(3)]
    ptrs = set(int(f.image.ptr) for f in held)
    assert len(ptrs) == 3 and not src._ring._free
    stop.set()
    assert src.read() is None                 # a file waits for a buffer; a stop ends that
    stop.clear()
    held[1].done()
    f = src.read()
    assert int(f.image.ptr) == int(held[1].image.ptr)
    assert np.array_equal(f.image.copy_to_host(), picture(3)[1])
    for x in held + [f]:
        x.done()
    assert src._ring.all_free
    src.close()


def test_live_source_drops_when_every_buffer_is_out(fake):
    from trtssd.io.nvdec import NvdecSource
    src = NvdecSource(fake.clip, live=True, buffers=2)
    src.provide_buffers(None, None, 2)
    a, b = src.read(), src.read()
    a.done()
    # b is still out and a came back: the next picture takes a's buffer
    c = src.read()
    assert np.array_equal(c.image.copy_to_host(), picture(2)[1]) and src.skipped == 0
    d = src.read()                            # both buffers out now: pictures are dropped
    assert d is None and src.skipped == N - 3  # ... to the end of this short file
    for x in (b, c):
        x.done()
    src.close()


def test_host_frames_for_a_cpu_layer(fake):
    from trtssd.io.nvdec import NvdecSource
    src = NvdecSource(fake.clip)
    src.device_frames = False
    made, freed = [], []

    def alloc(shape):
        made.append(np.zeros(shape, np.uint8))
        return made[-1]
    src.provide_buffers(alloc, freed.append, 4)
    f = src.read()
    assert isinstance(f.image, np.ndarray) and any(f.image is m for m in made)
    assert np.array_equal(f.image, picture(0)[1])
    f.done()
    out = np.zeros((H * 3 // 2, W), np.uint8)
    g = src.read(out=out)
    assert g.image is out and np.array_equal(out, picture(1)[1])
    src.close()
    assert len(freed) == len(made) == 4


def test_the_pipeline_asks_for_device_or_host_frames(fake):
    from trtssd.io.nvdec import NvdecSource
    from trtssd.pipeline.base import frame_pool
    from trtssd.pipeline.slots import DeviceLayer

    class GpuLike(DeviceLayer):
        reads_device_frames = True
    for layer, device in ((DeviceLayer(), False), (GpuLike(), True)):
        src = NvdecSource(fake.clip)
        pool = frame_pool(layer, src, 3)
        assert src.device_frames is device
        f = src.read()
        assert hasattr(f.image, "__cuda_array_interface__") is device
        f.done()
        pool.close()
        assert src._ring is None
        src.close()


def test_odd_sizes_are_refused(fake, monkeypatch):
    from trtssd.core.errors import InputError
    from trtssd.io.nvdec import NvdecSource
    monkeypatch.setattr(Demuxer, "Width", lambda self: 47)
    with pytest.raises(InputError) as e:
        NvdecSource(fake.clip)
    assert "even" in str(e.value)
    assert FakeCudaContext.made[-1].closed
