"""Decoding untrusted image files and bytes (predict's inputs, ImageData lists, image folders,
encoded Datums): only the formats netcli documents are tried, never every decoder Pillow has
(an EPS named .png would reach Ghostscript); an image over Pillow's decompression-bomb limit
(Image.MAX_IMAGE_PIXELS) is an error, also where Pillow only warns; only regular files are
opened, without blocking (a FIFO named .png is refused, not waited on). Needs Pillow."""
from __future__ import annotations

import io
import os
import stat
import warnings

# Pillow's names for the formats netcli reads, and the file names it takes for images.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
GREY_MODES = ("1", "L", "I", "I;16")


class ImageError(ValueError):
    """Why an image cannot be read, in one line (the caller names the file)."""


def open_regular(path):
    """A binary file object for `path` if it is a regular file; a FIFO, device or folder is an
    ImageError. Opened without blocking and checked on the open descriptor (no race with a rename)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "a device or socket"
            raise ImageError(f"not a regular file ({kind})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def decode(source, mode="auto"):
    """A path or bytes -> a loaded Pillow image in `mode`: "L", "RGB", or "auto" (grey images
    as "L", others as "RGB"). Every failure is an ImageError."""
    from PIL import Image
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            f = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open_regular(source)
            with f, Image.open(f, formats=FORMATS) as im:
                if im.width * im.height == 0:
                    raise ImageError(f"an empty image ({im.width}x{im.height})")
                if mode == "auto":
                    mode = "L" if im.mode in GREY_MODES else "RGB"
                return im.convert(mode)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"more pixels than Pillow's decompression-bomb limit of {limit:,} "
                         "(PIL.Image.MAX_IMAGE_PIXELS)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"not an image in a format netcli reads ({', '.join(FORMATS)})") from None
    except MemoryError:
        raise
    except Exception as e:       # a decoder's own complaint (truncated, garbled): one line
        raise ImageError(f"{type(e).__name__}: {' '.join(str(e).split())[:160]}" if not isinstance(e, OSError)
                         else ' '.join(str(e).split())[:160]) from None
