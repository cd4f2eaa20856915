"""A real RTSP server on 127.0.0.1 for the tests (GStreamer's gst-rtsp-server through
PyGObject): ``python rtsp_server.py PORT SECONDS`` serves ``rtsp://127.0.0.1:PORT/clip``, a
160x120 MJPEG clip at 15 FPS (videotestsrc, a moving ball), prints ``ready`` and exits by
itself after SECONDS (bounded), or when killed. Run by the test with whichever Python has
``gi`` (this one, or the system's python3 with Debian's python3-gi)."""
import sys


def main(port, seconds):
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=160,"
                       "height=120,framerate=15/1 ! jpegenc quality=80 ! rtpjpegpay name=pay0 "
                       "pt=26 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        sys.exit("cannot listen on 127.0.0.1:%d" % port)
    loop = GLib.MainLoop()
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
