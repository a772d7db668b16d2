"""Live cameras: read a stream (``source``), cut it into short segment files as it arrives
(``segmenter``, with ``transcode`` where the stream's keyframes are too far apart), and join
the analysed segments' tracks as they come back (``stitch``). No Celery or Flask here.
"""
