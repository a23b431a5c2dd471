"""Keep the console for vid2vid's own progress: no diffusers/transformers loading bars or notices
(such as transformers' note that torchvision is absent, which it deliberately is), but the hub's
bars for a real download. Called before the first diffusers pipeline class is touched."""
from __future__ import annotations


def quiet_libraries() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    from huggingface_hub.utils import enable_progress_bars

    enable_progress_bars()      # ...but a real download shows its bytes, rate and time left (the hub's bars)
