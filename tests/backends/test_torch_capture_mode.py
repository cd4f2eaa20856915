"""The torch backend captures its CUDA graph forbidding unsafe calls in its own thread only
(other threads, such as a video decoder's, keep working), and on a torch without the option
captures as before. On the CPU, with a stand-in for ``torch.cuda.graph``."""
import types

from trtssd.backends import torch_backend


def _torch(accepts_mode):
    seen = []

    def graph(g, **kw):
        if kw and not accepts_mode:
            raise TypeError("graph() got an unexpected keyword argument 'capture_error_mode'")
        seen.append((g, kw))
        return "capture of %s" % g
    return types.SimpleNamespace(cuda=types.SimpleNamespace(graph=graph)), seen


def test_the_capture_is_thread_local_where_torch_has_the_option():
    torch, seen = _torch(True)
    assert torch_backend._capturing(torch, "g") == "capture of g"
    assert seen == [("g", {"capture_error_mode": "thread_local"})]


def test_an_older_torch_captures_as_before():
    torch, seen = _torch(False)
    assert torch_backend._capturing(torch, "g") == "capture of g"
    assert seen == [("g", {})]
