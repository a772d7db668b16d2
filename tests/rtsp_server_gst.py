"""A real RTSP camera stand-in: GStreamer's RTSP server serving an MP4 clip in real time.

Run by Debian's own ``/usr/bin/python3`` (the GObject bindings, ``python3-gi``, and
``gir1.2-gst-rtsp-server-1.0`` are Debian packages, not pip ones), never imported by the
project: ``tests/rtsp_camera.py`` starts it as a subprocess.

    /usr/bin/python3 tests/rtsp_server_gst.py --port P --clip CLIP.mp4 --codec h264|h265 [--audio] [--feeds N]

It serves ``rtsp://127.0.0.1:P/cam`` (TCP and UDP transport), and with ``--feeds N`` the same
at ``/cam2`` ... ``/camN`` too (several cameras' addresses on one server: the farm registers
each stream once), the clip's video stream copied
(no re-encode: the clip's keyframes are the camera's) and its AAC audio when ``--audio``. The
pipeline is paced by the clock, as a camera is; each client gets its own pipeline, from the
start of the clip. It prints ``ready`` once it listens, and runs until killed.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

MOUNT = "/cam"


def launch_line(clip: str, codec: str, audio: bool) -> str:
    # config-interval=-1: parameter sets in every keyframe's access unit, so a client that
    # joins or rejoins mid-stream can decode from the next keyframe (as IP cameras do). The
    # parser puts them inside the access unit; the payloader's own option would send them
    # before each slice, which splits a many-slice keyframe in two for FFmpeg.
    video = f"demux.video_0 ! queue ! {codec}parse config-interval=-1 ! rtp{codec}pay name=pay0 pt=96"
    sound = " demux.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97" if audio else ""
    return f"( filesrc location={clip} ! qtdemux name=demux {video}{sound} )"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264")
    parser.add_argument("--audio", action="store_true")
    parser.add_argument("--feeds", type=int, default=1)
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.clip, args.codec, args.audio))
    factory.set_shared(False)
    for n in range(1, args.feeds + 1):
        server.get_mount_points().add_factory(MOUNT + (str(n) if n > 1 else ""), factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
