"""Video in and out through PyAV (the FFmpeg libraries): probe, decode, encode."""
