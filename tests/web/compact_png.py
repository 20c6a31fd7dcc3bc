"""Screenshots small enough for the docs (< 150 KB): a PNG re-encoded with a palette of at most
256 colours, like a GIF. Chromium decodes the screenshot (a blank page of its own, outside
the app's Content-Security-Policy), reduces each channel to 16 levels and maps every pixel to
the nearest of the 256 most frequent colours; Python writes the indexed PNG (zlib, level 9).
No image library is needed."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

_QUANTIZE = """async (png) => {
  const image = new Image()
  image.src = 'data:image/png;base64,' + png
  await image.decode()
  const canvas = document.createElement('canvas')
  canvas.width = image.width
  canvas.height = image.height
  const g = canvas.getContext('2d')
  g.drawImage(image, 0, 0)
  const rgba = g.getImageData(0, 0, image.width, image.height).data
  const n = image.width * image.height
  const keys = new Uint16Array(n)
  const counts = new Uint32Array(4096)
  for (let i = 0; i < n; i++) {
    const k = ((rgba[4 * i] >> 4) << 8) | ((rgba[4 * i + 1] >> 4) << 4) | (rgba[4 * i + 2] >> 4)
    keys[i] = k
    counts[k]++
  }
  const seen = []
  for (let k = 0; k < 4096; k++) if (counts[k]) seen.push(k)
  seen.sort((a, b) => counts[b] - counts[a])
  const palette = seen.slice(0, 256)
  const rgb = (k) => [((k >> 8) & 15) * 17, ((k >> 4) & 15) * 17, (k & 15) * 17]
  const index = new Int16Array(4096).fill(-1)
  palette.forEach((k, i) => { index[k] = i })
  for (const k of seen.slice(256)) {
    const [r, gr, b] = rgb(k)
    let best = 0
    let bestD = Infinity
    palette.forEach((p, i) => {
      const [pr, pg, pb] = rgb(p)
      const d = (r - pr) ** 2 + (gr - pg) ** 2 + (b - pb) ** 2
      if (d < bestD) { bestD = d; best = i }
    })
    index[k] = best
  }
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = index[keys[i]]
  let binary = ''
  for (let i = 0; i < n; i += 32768) binary += String.fromCharCode(...out.subarray(i, i + 32768))
  const palette3 = palette.map(rgb)
  return { width: image.width, height: image.height, palette: palette3, pixels: btoa(binary) }
}"""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


async def compact_png(page: Any, png: bytes) -> bytes:
    """``png`` (a screenshot) as an indexed PNG of at most 256 colours; ``page`` is a blank
    page (``about:blank``) used to decode it."""
    found = await page.evaluate(_QUANTIZE, base64.b64encode(png).decode())
    width, height = int(found["width"]), int(found["height"])
    pixels = base64.b64decode(found["pixels"])
    rows = b"".join(b"\x00" + pixels[y * width : (y + 1) * width] for y in range(height))
    palette = b"".join(bytes(c) for c in found["palette"])
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)),
            _chunk(b"PLTE", palette),
            _chunk(b"IDAT", zlib.compress(rows, 9)),
            _chunk(b"IEND", b""),
        )
    )
