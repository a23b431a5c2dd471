"""Windows' `msvcrt.locking`, emulated with POSIX record locks so the msvcrt lock backend's calls can
run on Linux: a non-blocking lock of `nbytes` from the file's current position that fails with
OSError while another process holds any of them, released by LK_UNLCK or by the holder's exit.
(One difference: two handles of one process do not exclude each other here; tests use processes.)"""
import errno
import fcntl
import os

LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4


def locking(fd: int, mode: int, nbytes: int) -> None:
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    if mode == LK_UNLCK:
        fcntl.lockf(fd, fcntl.LOCK_UN, nbytes, pos, os.SEEK_SET)
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, nbytes, pos, os.SEEK_SET)
    except OSError:
        raise OSError(errno.EACCES, "Permission denied") from None
