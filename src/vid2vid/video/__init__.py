"""Video in and out through PyAV (the FFmpeg libraries): probe, decode, encode."""

# File name endings taken as videos (a folder given to `vid2vid run`, the page's uploads).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
